"""Run retrievers over judged queries and report the metrics (table, JSON, Markdown, PNG chart)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from towersearch.data.io import atomic_path, write_json
from towersearch.data.judgements import Judgements
from towersearch.evaluation.metrics import METRICS, POOL_METRICS, mean_metrics, query_metrics
from towersearch.search.retriever import Retriever

DEPTH = 100


@dataclass
class Evaluation:
    """Metrics per retriever, averaged over the evaluated queries, plus per-query values."""

    queries: int
    metrics: dict[str, dict[str, float]]
    per_query: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict, repr=False)
    skipped_queries: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The ``evaluate --json`` shape."""
        return {"queries": self.queries, "metrics": self.metrics}

    def subset(self, queries: Sequence[str]) -> Evaluation:
        """Metrics recomputed over a subset of the evaluated queries (e.g. the cold-start ones)."""
        keep = [q for q in queries if any(q in pq for pq in self.per_query.values())]
        metrics = {name: mean_metrics([pq[q] for q in keep if q in pq]) for name, pq in self.per_query.items()}
        per_query = {name: {q: pq[q] for q in keep if q in pq} for name, pq in self.per_query.items()}
        return Evaluation(queries=len(keep), metrics=metrics, per_query=per_query)


def evaluate(
    retrievers: Mapping[str, Retriever],
    judgements: Judgements,
    *,
    relevant_grade: float = 1.0,
    batch_size: int = 256,
) -> Evaluation:
    """Run each retriever on every judged query that has at least one relevant product.

    Queries whose judged products all grade below ``relevant_grade`` are left out (they have no defined recall)
    and counted in ``skipped_queries``.
    """
    queries = sorted(q for q, g in judgements.items() if any(v >= relevant_grade for v in g.values()))
    skipped = len(judgements) - len(queries)
    metrics: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    for name, retriever in retrievers.items():
        start = time.perf_counter()
        rows: dict[str, dict[str, float]] = {}
        for i in range(0, len(queries), batch_size):
            batch = queries[i : i + batch_size]
            for query, hits in zip(batch, retriever.search(batch, k=DEPTH), strict=True):
                ranked = [h.product_id for h in hits]
                rows[query] = query_metrics(ranked, judgements[query], relevant_grade)
        seconds[name] = time.perf_counter() - start
        per_query[name] = rows
        metrics[name] = mean_metrics(list(rows.values()))
    return Evaluation(len(queries), metrics, per_query, skipped, seconds)


def markdown_rows(metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
    """A Markdown table's lines, one row per retriever: the standard metrics, and the pool metrics where every row
    has them (rows read from an older result file may not)."""
    pool = [m for m in POOL_METRICS if all(m in values for values in metrics.values())]
    columns = [*METRICS, *pool]
    lines = ["| retriever | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for name, values in metrics.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[m]:.4f}" for m in columns) + " |")
    return lines


def markdown_table(evaluation: Evaluation, title: str | None = None) -> str:
    """The metrics as a Markdown table, one row per retriever."""
    lines = [f"### {title}", ""] if title else []
    lines += markdown_rows(evaluation.metrics)
    lines.append("")
    lines.append(f"{evaluation.queries} queries.")
    return "\n".join(lines) + "\n"


def bar_chart(evaluation: Evaluation, path: str | Path, title: str = "towersearch evaluation") -> None:
    """A grouped bar chart (PNG) of every metric for every retriever."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(evaluation.metrics)
    x = np.arange(len(METRICS))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for i, name in enumerate(names):
        values = [evaluation.metrics[name][m] for m in METRICS]
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(x, METRICS)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(f"{title} ({evaluation.queries} queries)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_report(evaluation: Evaluation, out_dir: str | Path, extra: Mapping[str, Any] | None = None) -> list[Path]:
    """Write ``metrics.json``, ``metrics.md`` and ``metrics.png`` into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**evaluation.as_dict(), "skipped_queries": evaluation.skipped_queries, **(extra or {})}
    write_json(out / "metrics.json", payload)
    with atomic_path(out / "metrics.md") as tmp:
        tmp.write_text(markdown_table(evaluation), encoding="utf-8")
    bar_chart(evaluation, out / "metrics.png")
    return [out / "metrics.json", out / "metrics.md", out / "metrics.png"]

"""Shared helpers of the benchmark scripts: baselines beside a trained model, and saving results."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from towersearch.data import Catalog, Judgements
from towersearch.encoders import load_encoder
from towersearch.evaluation.report import Evaluation, evaluate, markdown_rows
from towersearch.model import model_feedback, model_fusion, model_text_config
from towersearch.search.dense import DenseRetriever
from towersearch.search.factory import compose
from towersearch.search.lexical import DEFAULT_FIELDS as BM25_FIELDS
from towersearch.search.lexical import BM25Retriever
from towersearch.search.ranker import Ranker
from towersearch.text import TextConfig

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(os.environ.get("TOWERSEARCH_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
"""The shared real data (``../shared/data`` beside the repository, or ``$TOWERSEARCH_SHARED_DATA``)."""
TRAINING_KEYS = ("pairs", "stages", "steps", "interpolation", "feedback", "fusion", "ranker")
"""What a benchmark's result file keeps of the training summary: the data, the stages and every choice training made."""


def compare(
    catalog: Catalog,
    judgements: Judgements,
    models: dict[str, Path | None],
    *,
    bm25_fields: tuple[str, ...] = BM25_FIELDS,
    untrained_text: TextConfig | None = None,
    relevant_grade: float = 1.0,
) -> Evaluation:
    """BM25 plus, for each model (None = untrained base), its dense, hybrid and (with a ranker) ranked retrievers,
    composed as ``evaluate`` composes them. ``bm25 without spelling`` (plain bm25s) is reported beside them for
    reference."""
    bm25 = BM25Retriever(catalog.products, fields=bm25_fields)
    plain = BM25Retriever(catalog.products, fields=bm25_fields, spelling=False)
    retrievers: dict[str, Any] = {"bm25": bm25, "bm25 without spelling": plain}
    for name, path in models.items():
        text = untrained_text if (path is None and untrained_text is not None) else model_text_config(path)
        encoder = load_encoder(path)  # ONNX Runtime when the model holds a matching export, as `evaluate` does
        dense = DenseRetriever.from_products(encoder, catalog.products, text, feedback=model_feedback(path))
        ranker = Ranker.load(path) if path is not None else None
        built = compose(bm25, dense, model_fusion(path), ranker=ranker, products=catalog.products)
        for kind in ("dense", "hybrid", "ranked"):
            if kind in built:
                retrievers[f"{name} {kind}"] = built[kind]
    return evaluate(retrievers, judgements, relevant_grade=relevant_grade)


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {platform.system()}, Python {platform.python_version()}"


def save(name: str, evaluation: Evaluation, extra: dict[str, Any]) -> None:
    """Write ``results/<name>.json`` and ``results/<name>.md`` and print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        **evaluation.as_dict(),
        **extra,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [f"# {name}", "", f"{evaluation.queries} queries; {payload['date']}; {payload['machine']}", ""]
    lines += markdown_rows(evaluation.metrics)
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


def with_overrides(config: Any, overrides: dict) -> Any:
    """``config`` with each ``key`` (a TrainConfig field) or ``section.key`` (``pairs.cold_start``) replaced."""
    top = {k: v for k, v in overrides.items() if "." not in k}
    nested: dict[str, dict] = {}
    for key, value in overrides.items():
        if "." in key:
            section, name = key.split(".", 1)
            nested.setdefault(section, {})[name] = value
    return replace(config, **top, **{s: replace(getattr(config, s), **v) for s, v in nested.items()})

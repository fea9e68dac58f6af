"""Ablation on the demo store: what each ingredient of the ITEMS recipe adds, same seed and step budget.

    python benchmarks/bench_ablation.py [--max-steps 300] [--products 5000] [--work /tmp/ablation] [--only NAME ...]

Every variant trains from all-MiniLM-L6-v2 on the demo store's log and is judged on its held-out queries, dense
and hybrid (RRF with BM25), beside BM25 and the untrained model. Cold-start retrieval is measured separately on
the judged queries whose exact (grade-3) products all have no interaction in the log. Finished variants are kept
in ``--work`` so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import RESULTS, machine
from towersearch.data import load_catalog, load_judgements, load_log
from towersearch.data.demo import DemoConfig, generate_demo_store
from towersearch.evaluation.metrics import METRICS
from towersearch.evaluation.report import evaluate
from towersearch.index.lexical import BM25Retriever
from towersearch.model import UNTRAINED_TEXT, load_model, model_text_config
from towersearch.search.dense import DenseRetriever
from towersearch.search.hybrid import Fusion, HybridRetriever
from towersearch.text import TextConfig
from towersearch.training.pairs import PairConfig
from towersearch.training.train import TrainConfig, train

VARIANTS: dict[str, dict] = {
    "shared, vanilla in-batch negatives": dict(towers="shared", cascade=False, hardness_strength=0.0, hard_negatives=0),
    "+ self-adversarial weighting": dict(towers="shared", cascade=False, hard_negatives=0),
    "+ hard negatives": dict(towers="shared", cascade=False),
    "distinct towers, no cascade": dict(towers="distinct", cascade=False),
    "full cascade (default)": dict(),
    "full cascade, no product-text expansion": dict(text=TextConfig(fields=("name",), markers=False)),
    "full cascade, no cold-start augmentation": dict(pairs=PairConfig(cold_start=False)),
}


def cold_start_queries(judgements: dict, events: list) -> list[str]:
    """Judged queries whose grade-3 products all lack any interaction in the log."""
    seen = {e.product_id for e in events}
    return [
        q for q, g in judgements.items() if (exact := [p for p, v in g.items() if v >= 3]) and not seen & set(exact)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/towersearch-ablation"))
    parser.add_argument("--only", nargs="*", default=None, help="Run only these variants.")
    args = parser.parse_args()
    data = args.work / "data"
    if not (data / "judgements.csv").exists():
        generate_demo_store(data, DemoConfig(n_products=args.products, seed=args.seed))
    catalog = load_catalog(data / "catalog.csv")
    events, _ = load_log(data / "log.csv")
    judgements, _ = load_judgements(data / "judgements.csv")
    cold = cold_start_queries(judgements, events)
    bm25 = BM25Retriever(catalog.products)

    rows: dict[str, dict] = {}
    done_file = args.work / "rows.json"
    if done_file.exists():
        rows = json.loads(done_file.read_text())

    def record(name: str, retrievers: dict, extra: dict | None = None) -> None:
        result = evaluate(retrievers, judgements)
        cold_result = result.subset(cold)
        rows[name] = {
            kind: {**result.metrics[kind], "cold_start_ndcg@10": cold_result.metrics[kind]["ndcg@10"]}
            for kind in retrievers
        } | (extra or {})
        done_file.write_text(json.dumps(rows, indent=2))
        print(name, json.dumps(rows[name]), flush=True)

    if "BM25" not in rows:
        record("BM25", {"bm25": bm25})
    if "untrained all-MiniLM-L6-v2" not in rows:
        dense = DenseRetriever.from_products(load_model(), catalog.products, UNTRAINED_TEXT)
        record("untrained all-MiniLM-L6-v2", {"dense": dense, "hybrid": HybridRetriever(bm25, dense)})
    for name, overrides in VARIANTS.items():
        if name in rows or (args.only and name not in args.only):
            continue
        model_dir = args.work / "models" / name.replace(" ", "_").replace(",", "").replace("+", "plus")
        config = TrainConfig(max_steps=args.max_steps, seed=args.seed, progress=False, **overrides)
        start = time.perf_counter()
        summary = train(catalog, model_dir, events=events, config=config)
        seconds = time.perf_counter() - start
        dense = DenseRetriever.from_products(load_model(model_dir), catalog.products, model_text_config(model_dir))
        record(
            name,
            {
                "dense": dense,
                "hybrid": HybridRetriever(bm25, dense, fusion=Fusion.from_dict(summary["fusion"]["chosen"])),
            },
            {
                "fusion": summary["fusion"],
                "train_seconds": round(seconds, 1),
                "steps": summary["steps"],
                "pairs": summary["pairs"],
            },
        )

    columns = [*METRICS, "cold_start_ndcg@10"]
    lines = [
        "# Ablation on the demo store",
        "",
        f"{len(judgements)} held-out queries ({len(cold)} cold-start); {args.products} products, seed {args.seed}, "
        f"{args.max_steps} steps per trained variant; {time.strftime('%Y-%m-%d')}; {machine()}",
        "",
        "| variant | retriever | " + " | ".join(columns) + " |",
        "| --- | --- |" + " ---: |" * len(columns),
    ]
    for name, row in rows.items():
        for kind, values in row.items():
            if kind in ("bm25", "dense", "hybrid"):
                lines.append(f"| {name} | {kind} | " + " | ".join(f"{values[c]:.4f}" for c in columns) + " |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ablation.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "ablation.json").write_text(json.dumps({"max_steps": args.max_steps, "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

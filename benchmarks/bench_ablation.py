"""Ablation on the demo store: what each ingredient of the ITEMS recipe adds, same seed and step budget.

    python benchmarks/bench_ablation.py [--max-steps 300] [--products 5000] [--seeds 0] [--parallel 1]
        [--work /tmp/ablation] [--only NAME ...] [--base-model DIR] [--device cpu|cuda]

Every variant trains from all-MiniLM-L6-v2 on the demo store's log and is judged on its held-out queries, dense
and hybrid (with the fusion calibrated in training), beside BM25 and the untrained model. Cold-start retrieval is
measured separately on the judged queries whose exact (grade-3) products all have no interaction in the log.
``--seeds`` trains each variant once per training seed (the store stays seed 0) and the table shows the mean;
``--parallel`` trains that many at once (useful on a GPU). Finished runs are kept in ``--work`` so an interrupted
run picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path

from common import RESULTS, machine
from towersearch.data import load_catalog, load_judgements, load_log
from towersearch.data.demo import DemoConfig, generate_demo_store
from towersearch.evaluation.metrics import METRICS
from towersearch.evaluation.report import evaluate
from towersearch.model import UNTRAINED_TEXT, load_model, model_feedback, model_text_config
from towersearch.search.dense import DenseRetriever
from towersearch.search.hybrid import Fusion, HybridRetriever
from towersearch.search.lexical import BM25Retriever
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
BASELINES = ("BM25", "untrained all-MiniLM-L6-v2")


def cold_start_queries(judgements: dict, events: list) -> list[str]:
    """Judged queries whose grade-3 products all lack any interaction in the log."""
    seen = {e.product_id for e in events}
    return [
        q for q, g in judgements.items() if (exact := [p for p, v in g.items() if v >= 3]) and not seen & set(exact)
    ]


def measure(data: Path, retrievers: dict) -> dict:
    judgements, _ = load_judgements(data / "judgements.csv")
    events, _ = load_log(data / "log.csv")
    result = evaluate(retrievers, judgements)
    cold_result = result.subset(cold_start_queries(judgements, events))
    return {
        kind: {**result.metrics[kind], "cold_start_ndcg@10": cold_result.metrics[kind]["ndcg@10"]}
        for kind in retrievers
    }


def run_one(job: tuple) -> tuple[str, int, dict]:
    """Train (or, for a baseline, just load) one variant with one training seed and measure it."""
    name, seed, data, work, max_steps, base_model, device = job
    import torch

    torch.set_num_threads(2 if device != "cpu" else max(1, torch.get_num_threads()))
    catalog = load_catalog(data / "catalog.csv")
    bm25 = BM25Retriever(catalog.products)
    if name == "BM25":
        return name, seed, measure(data, {"bm25": bm25})
    if name == "untrained all-MiniLM-L6-v2":
        dense = DenseRetriever.from_products(load_model(base_model, device=device), catalog.products, UNTRAINED_TEXT)
        return name, seed, measure(data, {"dense": dense, "hybrid": HybridRetriever(bm25, dense)})
    events, _ = load_log(data / "log.csv")
    model_dir = work / "models" / f"{name.replace(' ', '_').replace(',', '').replace('+', 'plus')}-{seed}"
    config = TrainConfig(max_steps=max_steps, seed=seed, progress=False, device=device, **VARIANTS[name])
    start = time.perf_counter()
    summary = train(catalog, model_dir, events=events, config=config, base_model=base_model)
    seconds = time.perf_counter() - start
    model = load_model(model_dir, device=device)
    dense = DenseRetriever.from_products(
        model, catalog.products, model_text_config(model_dir), feedback=model_feedback(model_dir)
    )
    fusion = Fusion.from_dict(summary["fusion"]["chosen"])
    row = measure(data, {"dense": dense, "hybrid": HybridRetriever(bm25, dense, fusion=fusion)})
    extra = {"fusion": summary["fusion"], "train_seconds": round(seconds, 1), "steps": summary["steps"]}
    return name, seed, row | extra | {"pairs": summary["pairs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Training seeds (the store is seed 0).")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--base-model", default=None, help="Base model folder (default: all-MiniLM-L6-v2).")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path("/tmp/towersearch-ablation"))
    parser.add_argument("--out", type=Path, default=RESULTS, help="Folder for ablation.{md,json}.")
    parser.add_argument("--only", nargs="*", default=None, help="Run only these variants.")
    args = parser.parse_args()
    data = args.work / "data"
    if not (data / "judgements.csv").exists():
        generate_demo_store(data, DemoConfig(n_products=args.products, seed=0))
    judgements, _ = load_judgements(data / "judgements.csv")
    events, _ = load_log(data / "log.csv")
    cold = cold_start_queries(judgements, events)

    done_file = args.work / "runs.json"
    runs: dict[str, dict[str, dict]] = json.loads(done_file.read_text()) if done_file.exists() else {}
    names = [*BASELINES, *(n for n in VARIANTS if not args.only or n in args.only)]
    jobs = [
        (name, seed, data, args.work, args.max_steps, args.base_model, args.device)
        for name in names
        for seed in (args.seeds[:1] if name in BASELINES else args.seeds)
        if str(seed) not in runs.get(name, {})
    ]
    with mp.get_context("spawn").Pool(args.parallel, maxtasksperchild=1) as pool:
        for name, seed, row in pool.imap_unordered(run_one, jobs):
            runs.setdefault(name, {})[str(seed)] = row
            done_file.write_text(json.dumps(runs, indent=2))
            ndcg = {k: round(v["ndcg@10"], 4) for k, v in row.items() if k in ("bm25", "dense", "hybrid")}
            print(name, seed, ndcg, flush=True)

    columns = [*METRICS, "cold_start_ndcg@10"]
    lines = [
        "# Ablation on the demo store",
        "",
        f"{len(judgements)} held-out queries ({len(cold)} cold-start); {args.products} products (store seed 0); "
        f"{args.max_steps} steps per trained variant; mean over training seeds {args.seeds} "
        f"(± the spread between seeds where there are several); {time.strftime('%Y-%m-%d')}; {machine()}, "
        f"{args.device}",
        "",
        "| variant | retriever | " + " | ".join(columns) + " |",
        "| --- | --- |" + " ---: |" * len(columns),
    ]
    for name in names:
        seeds = runs.get(name, {})
        for kind in ("bm25", "dense", "hybrid"):
            if not seeds or kind not in next(iter(seeds.values())):
                continue
            cells = []
            for c in columns:
                values = [row[kind][c] for row in seeds.values()]
                spread = f" ± {(max(values) - min(values)) / 2:.4f}" if len(values) > 1 else ""
                cells.append(f"{statistics.mean(values):.4f}{spread}")
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.md").write_text("\n".join(lines) + "\n")
    payload = {
        "max_steps": args.max_steps,
        "seeds": args.seeds,
        "device": args.device,
        "machine": machine(),
        "runs": runs,
    }
    (args.out / "ablation.json").write_text(json.dumps(payload, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

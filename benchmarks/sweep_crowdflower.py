"""Training options on real queries: CrowdFlower, several seeded query splits, one row per (variant, split).

    python benchmarks/sweep_crowdflower.py [--variants default no-hard-negatives ...] [--seeds 0 1]
        [--max-steps 600] [--parallel 1] [--name sweep_crowdflower]

Each run trains on one half of the queries (judgements → search log) and is judged on the other half, like
``bench_crowdflower.py``. Besides the hybrid with the calibrated fusion, every fusion candidate is scored on the
judged half, which shows how RRF, the score blend and the union blend compare on real queries (those oracle numbers
are tuned on the test queries and are reported as such, never as the pipeline's result). ``--parallel`` runs that many
trainings at once (useful on a GPU). Needs ``../shared/data/crowdflower``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, SHARED, machine  # noqa: E402
from towersearch.training.pairs import PairConfig  # noqa: E402
from towersearch.training.ranking import RankerConfig  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "fp32 steps": {"precision": "fp32"},
    "single shared vanilla": {"cascade": False, "towers": "shared", "hardness_strength": 0.0, "hard_negatives": 0},
    "single shared": {"cascade": False, "towers": "shared", "hard_negatives": 0},
    "single distinct": {"cascade": False, "towers": "distinct", "hard_negatives": 0},
    "no hard negatives": {"hard_negatives": 0},
    "hard negatives 3": {"hard_negatives": 3},
    "hard negatives skip 10": {"negative_skip": 10},
    "logged negatives": {"logged_negatives": True},
    "shown not negative": {"shown_not_negative": True},
    "cascade shared": {"towers": "shared"},
    "lr 1e-4": {"learning_rate": 1e-4, "stage2_learning_rate": 4e-5},
    "stage2 lr 5e-5": {"stage2_learning_rate": 5e-5},
    "batch 64": {"batch_size": 64},
    "stage1 share 0.8": {"stage1_share": 0.8},
    "alpha 0": {"hardness_strength": 0.0},
    "symmetric loss": {"loss_directions": "symmetric"},
    "guided negatives": {"guided_negatives": True},
    "bm25 negatives": {"negative_source": "bm25"},
    "model and bm25 negatives": {"negative_source": "both"},  # the default since it was measured
    "model negatives": {"negative_source": "model"},
    "typos 0.3": {"pairs": PairConfig(typo_share=0.3)},
    "synthetic ratio 1": {"pairs": PairConfig(synthetic_ratio=1.0)},
    "ranker share 0.4": {"ranker": RankerConfig(share=0.4, min_queries=40)},
}


def prepare(work: Path, seed: int) -> Path:
    from towersearch.data.importers.crowdflower import import_crowdflower

    folder = work / f"data-{seed}"
    if not (folder / "judgements.csv").is_file():
        import_crowdflower(SHARED / "crowdflower", folder, seed=seed)
    return folder


def load(folder: Path):
    from towersearch.data import load_catalog, load_judgements, load_log

    catalog = load_catalog(folder / "catalog.csv")
    events, _ = load_log(folder / "log.csv")
    judgements, _ = load_judgements(folder / "judgements.csv")
    return catalog, events, judgements


def score(model, catalog, judgements, text, chosen=None, model_dir: Path | None = None) -> dict[str, float]:
    """NDCG@10 of dense, the chosen fusion, every fusion candidate and (when ``model_dir`` holds one) the ranking
    stage on the judged half."""
    from towersearch.evaluation.report import evaluate
    from towersearch.model import model_feedback
    from towersearch.search.dense import DenseRetriever
    from towersearch.search.factory import compose
    from towersearch.search.hybrid import Fusion, HybridRetriever
    from towersearch.search.lexical import BM25Retriever
    from towersearch.search.ranker import Ranker
    from towersearch.training.validation import RememberedLists, fusion_candidates

    bm25 = RememberedLists(BM25Retriever(catalog.products))
    dense = RememberedLists(
        DenseRetriever.from_products(model, catalog.products, text, feedback=model_feedback(model_dir))
    )
    retrievers: dict[str, Any] = {"bm25": bm25, "dense": dense}
    retrievers["hybrid"] = HybridRetriever(bm25, dense, fusion=chosen or Fusion())
    for fusion in fusion_candidates():
        retrievers[fusion.label] = HybridRetriever(bm25, dense, fusion=fusion)
    ranker = Ranker.load(model_dir) if model_dir is not None else None
    if ranker is not None:
        built = compose(bm25.inner, dense.inner, chosen or Fusion(), ranker=ranker, products=catalog.products)
        retrievers["ranked"] = built["ranked"]
    result = evaluate(retrievers, judgements)
    return {name: round(m["ndcg@10"], 4) for name, m in result.metrics.items()}


def run_one(job: tuple[str, int, int, str, str | None, str]) -> dict[str, Any]:
    variant, seed, max_steps, work, base_model, device = job
    import torch

    torch.set_num_threads(2)
    from towersearch.model import load_model, model_text_config
    from towersearch.search.hybrid import Fusion
    from towersearch.training.train import TrainConfig, train

    catalog, events, judgements = load(Path(work) / f"data-{seed}")
    started = time.perf_counter()
    if variant == "untrained":
        from towersearch.model import UNTRAINED_TEXT

        model = load_model(base_model, device=device)
        scores = score(model, catalog, judgements, UNTRAINED_TEXT)
        return {"variant": variant, "seed": seed, "ndcg@10": scores, "seconds": round(time.perf_counter() - started)}
    config = TrainConfig(max_steps=max_steps, seed=seed, progress=False, device=device, **VARIANTS[variant])
    out = Path(work) / "models" / f"{variant.replace(' ', '_')}-{seed}"
    summary = train(catalog, out, events=events, config=config, base_model=base_model)
    chosen = Fusion.from_dict(summary["fusion"]["chosen"])
    scores = score(load_model(out, device=device), catalog, judgements, model_text_config(out), chosen, out)
    return {
        "variant": variant,
        "seed": seed,
        "ndcg@10": scores,
        "fusion": summary["fusion"],
        "interpolation": summary.get("interpolation"),
        "ranker": {k: v for k, v in summary.get("ranker", {}).items() if k != "importance_gain"},
        "pairs": summary["pairs"],
        "steps": summary["steps"],
        "seconds": round(time.perf_counter() - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--base-model", default=None, help="Base model folder (default: all-MiniLM-L6-v2).")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/towersearch-sweep"))
    parser.add_argument("--name", default="sweep_crowdflower")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Folder for the result files.")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    for seed in args.seeds:
        prepare(args.work, seed)
    jobs = [("untrained", s, 0, str(args.work), args.base_model, device) for s in args.seeds]
    jobs += [(v, s, args.max_steps, str(args.work), args.base_model, device) for v in args.variants for s in args.seeds]
    rows: list[dict[str, Any]] = []
    args.out.mkdir(parents=True, exist_ok=True)
    with mp.get_context("spawn").Pool(args.parallel, maxtasksperchild=1) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            rows.append(row)
            n = row["ndcg@10"]
            print(f"{row['variant']:>24} seed {row['seed']}: dense {n['dense']:.4f} hybrid {n['hybrid']:.4f} "
                  f"ranked {n.get('ranked', float('nan')):.4f} ({row['seconds']} s)", flush=True)  # fmt: skip
            write(args, device, rows)
    print(write(args, device, rows))


def write(args, device: str, rows: list[dict[str, Any]]) -> str:
    """Save the rows and a Markdown table of means over the seeds; return the table."""
    payload = {
        "benchmark": args.name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "device": device,
        "max_steps": args.max_steps,
        "seeds": args.seeds,
        "rows": rows,
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    by_variant: dict[str, list[dict[str, float]]] = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row["ndcg@10"])
    columns = ["bm25", "dense", "hybrid", "ranked", "best rrf (oracle)", "best blend (oracle)", "best union (oracle)"]
    lines = [
        f"# {args.name}",
        "",
        f"CrowdFlower, NDCG@10 on the judged half, mean over splits {args.seeds}; {args.max_steps} steps; "
        f"{payload['date']}; {payload['machine']}, {device}",
        "",
        "| variant | splits | " + " | ".join(columns) + " |",
        "| --- | ---: |" + " ---: |" * len(columns),
    ]
    for variant, scores in by_variant.items():
        cells = []
        for column in columns:
            if column.startswith("best"):
                prefix = column.split()[1] + "@"
                values = [max((v for k, v in s.items() if k.startswith(prefix)), default=float("nan")) for s in scores]
            else:
                values = [s.get(column, float("nan")) for s in scores]
            cells.append(f"{statistics.mean(values):.4f}")
        lines.append(f"| {variant} | {len(scores)} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    (args.out / f"{args.name}.md").write_text(table)
    return table


if __name__ == "__main__":
    main()

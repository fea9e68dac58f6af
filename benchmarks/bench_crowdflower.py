"""Real queries: CrowdFlower. Train on one half of the queries (judgements → search log), judge the other half.

    python benchmarks/bench_crowdflower.py [--max-steps 600] [--seed 0] [--name crowdflower] [--query-generator M:F]

Reports BM25, the untrained model and their fusion beside the trained towers (dense, hybrid and, when the log is
large enough for one, the ranking stage), all on the same held-out half. Needs ``../shared/data/crowdflower``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import SHARED, TRAINING_KEYS, compare, save
from towersearch.data import load_catalog, load_judgements, load_log
from towersearch.data.importers.crowdflower import import_crowdflower
from towersearch.training.pairs import load_generator
from towersearch.training.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="crowdflower")
    parser.add_argument("--work", type=Path, default=None, help="Keep data and model here (default: a temp dir).")
    parser.add_argument("--query-generator", default=None, help="module:function, as train's --query-generator.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="towersearch-cf-"))
    split = import_crowdflower(SHARED / "crowdflower", work / "data", seed=args.seed)
    catalog = load_catalog(work / "data" / "catalog.csv")
    events, _ = load_log(work / "data" / "log.csv")
    judgements, _ = load_judgements(work / "data" / "judgements.csv")
    config = TrainConfig(max_steps=args.max_steps, seed=args.seed)
    start = time.perf_counter()
    generator = load_generator(args.query_generator) if args.query_generator else None
    summary = train(catalog, work / "model", events=events, config=config, generator=generator)
    seconds = time.perf_counter() - start
    evaluation = compare(catalog, judgements, {"untrained": None, "trained": work / "model"})
    best_untrained = max(evaluation.metrics[r]["ndcg@10"] for r in ("bm25", "untrained dense", "untrained hybrid"))
    ratio = evaluation.metrics["trained hybrid"]["ndcg@10"] / best_untrained
    trained = {name: m["ndcg@10"] for name, m in evaluation.metrics.items() if name.startswith("trained")}
    ratios = {name: round(value / best_untrained, 4) for name, value in trained.items()}
    print(f"NDCG@10 / best untrained: {ratios}; training {seconds:.0f} s")
    save(
        args.name,
        evaluation,
        {
            "split": split,
            "query_generator": args.query_generator,
            "train_seconds": round(seconds, 1),
            "hybrid_vs_best_untrained": round(ratio, 4),
            "vs_best_untrained": ratios,
            "training": {k: summary.get(k) for k in TRAINING_KEYS},
        },
    )


if __name__ == "__main__":
    main()

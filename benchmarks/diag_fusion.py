"""Every fusion candidate of a trained model, scored on its held-out log queries and on judged queries.

    python benchmarks/diag_fusion.py DATA_DIR MODEL_DIR [--relevant-grade 1.33] [--seed 0] [--name NAME]

DATA_DIR holds ``catalog.csv``, ``log.csv`` (the log the model was trained on) and ``judgements.csv``. The log is
split as ``train`` split it (validation and ranker queries, with ``--seed`` = the training seed), so the held-out
scores are what the fusion calibration saw, for every candidate it tries (``rrf@w``, ``blend@a``, ``union@a``). The
towers are fixed: nothing is trained. Scores on judged queries are tuned on the test queries if
used to pick a candidate, so they are diagnostics, never a pipeline result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS  # noqa: E402
from towersearch.data import load_catalog, load_judgements, load_log  # noqa: E402
from towersearch.evaluation.report import evaluate  # noqa: E402
from towersearch.model import load_model, model_feedback, model_text_config  # noqa: E402
from towersearch.search.dense import DenseRetriever  # noqa: E402
from towersearch.search.hybrid import HybridRetriever  # noqa: E402
from towersearch.search.lexical import BM25Retriever  # noqa: E402
from towersearch.training.config import TrainConfig  # noqa: E402
from towersearch.training.ranking import split_ranker_queries  # noqa: E402
from towersearch.training.validation import (  # noqa: E402
    RememberedLists,
    engaged_judgements,
    fusion_candidates,
    split_validation,
    tolerance,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("--relevant-grade", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="The training seed (it drew the held-out queries).")
    parser.add_argument("--name", default=None, help="Write results/NAME.json.")
    args = parser.parse_args()

    catalog = load_catalog(args.data / "catalog.csv")
    events = load_log(args.data / "log.csv")[0]
    judged = load_judgements(args.data / "judgements.csv")[0]
    config = TrainConfig(seed=args.seed)
    events, validation = split_validation(
        events, max_queries=config.validation_queries, max_share=config.validation_share, seed=args.seed
    )
    _, ranker_events = split_ranker_queries(events, config.ranker, args.seed)
    held_out = {**validation, **engaged_judgements(ranker_events)}
    model = load_model(args.model)
    bm25 = BM25Retriever(catalog.products)
    text = model_text_config(args.model)
    dense = DenseRetriever.from_products(
        model, catalog.products, text, progress=True, feedback=model_feedback(args.model)
    )
    lexical_memo, dense_memo = RememberedLists(bm25), RememberedLists(dense)
    retrievers = {"bm25": lexical_memo, "dense": dense_memo}
    for fusion in fusion_candidates():
        retrievers[fusion.label] = HybridRetriever(lexical_memo, dense_memo, fusion=fusion)
    out = {"data": str(args.data), "model": str(args.model), "seed": args.seed}
    for name, judgements, grade in (("held_out", held_out, 1.0), ("judged", judged, args.relevant_grade)):
        result = evaluate(retrievers, judgements, relevant_grade=grade)
        out[name] = {"queries": result.queries, **{k: round(m["ndcg@10"], 4) for k, m in result.metrics.items()}}
        print(name, out[name], flush=True)
    out["tie"] = round(tolerance(out["held_out"]["queries"]), 5)
    best = max((v, k) for k, v in out["held_out"].items() if "@" in k)
    print(f"best on held-out queries: {best[1]} ({best[0]}); judged {out['judged'][best[1]]}")
    if args.name:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

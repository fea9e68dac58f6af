"""Every fusion candidate of a trained model, scored on its held-out log queries and on judged queries.

    python benchmarks/diag_fusion.py DATA_DIR MODEL_DIR [--relevant-grade 1.33] [--seed 0] [--name NAME]

DATA_DIR holds ``catalog.csv``, ``log.csv`` (the log the model was trained on) and ``judgements.csv``. The log is
split as ``train`` split it (validation and ranker queries, with ``--seed`` = the training seed), so the held-out
scores are what the fusion calibration saw. Besides the calibration's candidates (``rrf@w``, ``blend@a``), it scores
a variant not in the product, ``union@a``: every candidate of either list scored by both retrievers (its BM25 score
and its cosine), each min-max normalised over that union, then blended, instead of a product missing from a list
scoring 0 there. The towers are fixed: nothing is trained. Scores on judged queries are tuned on the test queries if
used to pick a candidate, so they are diagnostics, never a pipeline result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS  # noqa: E402
from towersearch.data import load_catalog, load_judgements, load_log  # noqa: E402
from towersearch.evaluation.report import evaluate  # noqa: E402
from towersearch.model import load_model, model_text_config  # noqa: E402
from towersearch.search.dense import DenseRetriever  # noqa: E402
from towersearch.search.hybrid import HybridRetriever  # noqa: E402
from towersearch.search.lexical import BM25Retriever  # noqa: E402
from towersearch.search.retriever import Hit  # noqa: E402
from towersearch.training.config import TrainConfig  # noqa: E402
from towersearch.training.ranking import split_ranker_queries  # noqa: E402
from towersearch.training.validation import (  # noqa: E402
    _Cached,
    engaged_judgements,
    fusion_candidates,
    split_validation,
    tolerance,
)

UNION_ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class UnionBlend:
    """The ``union@alpha`` variant (see the module docstring)."""

    def __init__(self, bm25: BM25Retriever, dense: DenseRetriever, alpha: float, memo: dict) -> None:
        self.bm25, self.dense, self.alpha, self.memo = bm25, dense, alpha, memo

    def _scored(self, query: str):
        if query not in self.memo:
            vector = self.dense.encoder.encode([query])[0]
            lexical = self.bm25.search_rows([query], 100)[0]
            dense = self.dense.search_vectors_rows(vector[None, :], 100)[0]
            union = np.unique(np.concatenate([lexical[0], dense[0]]))
            bm25 = self.bm25.score_rows(query, union).astype(np.float64)
            cosine = (self.dense.embeddings[union] @ vector).astype(np.float64)
            self.memo[query] = (union, _min_max(bm25), _min_max(cosine))
        return self.memo[query]

    def search(self, queries, k: int = 10) -> list[list[Hit]]:
        out = []
        for query in queries:
            union, bm25, cosine = self._scored(query)
            score = (1 - self.alpha) * bm25 + self.alpha * cosine
            order = np.argsort(-score, kind="stable")[:k]
            out.append([Hit(self.dense.product_ids[union[i]], float(score[i])) for i in order])
        return out


def _min_max(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return x
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.ones_like(x)


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
    dense = DenseRetriever.from_products(model, catalog.products, model_text_config(args.model), progress=True)
    lexical_memo, dense_memo, union_memo = _Cached(bm25), _Cached(dense), {}
    retrievers = {"bm25": lexical_memo, "dense": dense_memo}
    for fusion in fusion_candidates():
        retrievers[fusion.label] = HybridRetriever(lexical_memo, dense_memo, fusion=fusion)
    for alpha in UNION_ALPHAS:
        retrievers[f"union@{alpha:g}"] = UnionBlend(bm25, dense, alpha, union_memo)
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

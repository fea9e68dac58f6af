"""Real shoppers' queries: Home Depot. Train on the log made from the ratings of most search terms, judge the rest.

    python benchmarks/bench_homedepot.py [--max-steps 600] [--seed 0] [--eval-queries 2000] [--work DIR]

One run: BM25, the untrained model (dense) and their default fusion (hybrid); then ``train`` with its defaults and
every trained retriever (dense, hybrid, ranked), all on the same held-out search terms (``--relevant-grade 1.33``:
a rating of at least 2.33, what the log counts as a click). With ``--ablation`` it also re-trains the ranking stage
on the same towers without each feature group and reports ranked NDCG@10 for each. Needs
``../shared/data/homedepot``; results go to ``results/homedepot.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import RESULTS, SHARED, TRAINING_KEYS, compare, save, with_overrides
from towersearch.data import load_catalog, load_judgements, load_log
from towersearch.data.importers.homedepot import import_homedepot
from towersearch.training.train import TrainConfig, train

RELEVANT = 1.33
UNTRAINED = ("untrained dense", "untrained hybrid")
GROUPS = {
    "lexical scores": ("bm25", "bm25_name", "rank_bm25"),
    "tower scores": ("dense", "rank_dense"),
    "fusion": ("fused", "rank_fused"),
    "term and number matches": (
        "name_coverage",
        "text_coverage",
        "phrase_in_name",
        "number_match",
        "query_terms",
        "name_terms",
    ),  # fmt: skip
    "product engagement": ("product_ctr", "product_cvr", "product_impressions"),
    "neighbour queries": ("department_affinity", "category_affinity", "neighbour_engagement"),
}


def ablation(work: Path, catalog, events, judgements, config: TrainConfig) -> dict[str, float]:
    """Ranked NDCG@10 with each feature group left out (same towers, same held-out queries)."""
    from towersearch.evaluation.report import evaluate
    from towersearch.model import load_model, model_feedback, model_fusion, model_text_config
    from towersearch.search.dense import DenseRetriever
    from towersearch.search.factory import compose
    from towersearch.search.features import FEATURES
    from towersearch.search.lexical import BM25Retriever
    from towersearch.training.ranking import split_ranker_queries
    from towersearch.training.train import fit_ranker
    from towersearch.training.validation import split_validation

    model_dir = work / "model"
    model = load_model(model_dir)
    dense = DenseRetriever.from_products(
        model, catalog.products, model_text_config(model_dir), feedback=model_feedback(model_dir)
    )
    fusion = model_fusion(model_dir)
    events, validation = split_validation(
        events, max_queries=config.validation_queries, max_share=config.validation_share, seed=config.seed
    )
    tower_events, ranker_events = split_ranker_queries(events, config.ranker, config.seed)
    bm25 = BM25Retriever(catalog.products)
    out = {}
    for group, names in {"all features": (), **GROUPS}.items():
        features = tuple(f for f in FEATURES if f not in names)
        cfg = replace(config, ranker=replace(config.ranker, features=features))
        ranker, _ = fit_ranker(model, catalog, tower_events, ranker_events, validation, cfg, fusion, dense=dense)
        built = compose(bm25, dense, fusion, ranker=ranker, products=catalog.products)
        result = evaluate({"ranked": built["ranked"]}, judgements, relevant_grade=RELEVANT)
        out[group if not names else f"without {group}"] = round(result.metrics["ranked"]["ndcg@10"], 4)
        print(group, out)
    return out


def _result_file(name: str | Path) -> Path:
    """A result file named as the README or an earlier run wrote it: absolute, ``results/…`` or ``benchmarks/…``."""
    path = Path(name)
    for candidate in (path, RESULTS.parent / path, RESULTS.parent.parent / path, RESULTS / path.name):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"--baseline: no result file {name}")


def untrained_from(baseline: Path, split: dict) -> dict[str, float]:
    """The untrained retrievers' NDCG@10 of an earlier run on ``split``, following the run it took them from."""
    seen = set()
    path = _result_file(baseline)
    while path.resolve() not in seen:
        seen.add(path.resolve())
        earlier = json.loads(path.read_text())
        if earlier.get("split") != split:
            raise SystemExit(f"--baseline: {path} was measured on another split")
        if earlier.get("untrained_ndcg@10"):
            return earlier["untrained_ndcg@10"]
        if all(n in earlier["metrics"] for n in UNTRAINED):
            return {n: earlier["metrics"][n]["ndcg@10"] for n in UNTRAINED}
        if not earlier.get("untrained_from"):
            break
        path = _result_file(earlier["untrained_from"])
    raise SystemExit(f"--baseline: {baseline} holds no untrained retrievers (nor does a run it took them from)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-queries", type=int, default=2000)
    parser.add_argument("--name", default="homedepot")
    parser.add_argument("--ablation", action="store_true", help="Also retrain the ranker without each feature group.")
    parser.add_argument("--skip-train", action="store_true", help="Reuse WORK/model from an earlier run.")
    parser.add_argument("--work", type=Path, default=None, help="Keep data and model here (default: a temp dir).")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=JSON", help="TrainConfig overrides (section.key for pairs, …)."
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="A result file of an earlier run on the same split: take the untrained retrievers from it "
        "instead of encoding the catalogue with the base model again.",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="towersearch-hd-"))
    split = import_homedepot(SHARED / "homedepot", work / "data", eval_queries=args.eval_queries, seed=args.seed)
    catalog = load_catalog(work / "data" / "catalog.csv")
    events, _ = load_log(work / "data" / "log.csv")
    judgements, _ = load_judgements(work / "data" / "judgements.csv")
    carried = untrained_from(args.baseline, split) if args.baseline else {}  # checked before hours of training
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = with_overrides(TrainConfig(max_steps=args.max_steps, seed=args.seed), overrides)
    start = time.perf_counter()
    if args.skip_train:
        summary = json.loads((work / "model" / "training_summary.json").read_text())
    else:
        summary = train(catalog, work / "model", events=events, config=config)
    seconds = time.perf_counter() - start
    models = {"trained": work / "model"} if args.baseline else {"untrained": None, "trained": work / "model"}
    evaluation = compare(catalog, judgements, models, relevant_grade=RELEVANT)
    ndcg = {name: m["ndcg@10"] for name, m in evaluation.metrics.items()}
    ndcg.update(carried)
    best_untrained = max(ndcg[r] for r in ("bm25", *UNTRAINED))
    ratios = {name: round(ndcg[name] / best_untrained, 4) for name in ndcg if name.startswith("trained")}
    print(f"NDCG@10 / best untrained: {ratios}; training {seconds:.0f} s")
    plain = {name: round(ndcg[name] / ndcg["bm25 without spelling"], 4) for name in ratios}
    extra = {
        "split": split,
        "overrides": overrides,
        "untrained_from": str(args.baseline) if args.baseline else None,
        "relevant_grade": RELEVANT,
        "train_seconds": summary.get("seconds") if args.skip_train else round(seconds, 1),
        "untrained_ndcg@10": {n: ndcg[n] for n in UNTRAINED},  # so that this result can be a later --baseline
        "vs_best_untrained": ratios,
        "vs_bm25_without_spelling": plain,  # for reference: the best untrained retriever includes query spelling
        "training": {k: summary.get(k) for k in TRAINING_KEYS},
    }
    if args.ablation:
        extra["ranker_ablation_ndcg@10"] = ablation(work, catalog, events, judgements, config)
    save(args.name, evaluation, extra)
    if args.ablation:
        with open(RESULTS / f"{args.name}.md", "a") as fh:
            fh.write("\n| ranker features | ranked ndcg@10 |\n| --- | ---: |\n")
            for group, value in extra["ranker_ablation_ndcg@10"].items():
                fh.write(f"| {group} | {value:.4f} |\n")


if __name__ == "__main__":
    main()

"""Training the learned ranking stage (LightGBM LambdaMART) on log queries the towers never saw.

Tower scores on the towers' own training queries are over-confident, so a seeded share of the log's engaged
queries is held out of tower training (:func:`split_ranker_queries`). After the towers are trained, each held-out
query runs through the hybrid retriever; its top candidates get the features of
:mod:`towersearch.search.features` and a graded label from the log (purchase 3, add-to-cart 2, click 1, shown or
not shown 0), and LightGBM's ``lambdarank`` objective learns to order them, by default under monotone constraints
(:data:`~towersearch.search.features.DIRECTIONS`: a higher retrieval score, more query terms matched or more
engagement never lowers a candidate, so a few hundred queries cannot teach the trees a dip in the fused score that
new queries would not share). The queries are split into ``folds`` folds; one booster per fold trains on the other
folds and stops early on its own, and the ranker scores with their mean (bagging: where boosting stops on a few
hundred queries swings from a handful of rounds to a few hundred, and the mean of several such boosters is steadier
than any one; ``repeats`` draws the folds again for more boosters). With fewer than ``early_stopping_queries``
queries, one booster trains a fixed ``small_rounds`` on all of them instead. The fusion-calibration queries then
compare the ranker with plain hybrid, and the ranker becomes the default retriever only if it is not worse there.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from towersearch.data.catalog import Catalog
from towersearch.data.judgements import Judgements
from towersearch.data.schema import LogEvent, normalize_query, split_category
from towersearch.errors import ConfigError
from towersearch.search.features import DIRECTIONS, FEATURES, FeatureExtractor, RankingContext, usable_features
from towersearch.search.hybrid import HybridRetriever
from towersearch.search.ranker import Ranker
from towersearch.training.pairs import aggregate_events


@dataclass(frozen=True)
class RankerConfig:
    """Options of the ranking stage (``towersearch train --ranker …``)."""

    enabled: bool = field(default=True, metadata={"help": "Train the learned ranking stage after the towers."})
    share: float = field(default=0.2, metadata={"help": "Share of the log's engaged queries held out to train it."})
    max_queries: int = field(default=3000, metadata={"help": "At most this many held-out ranker queries."})
    min_queries: int = field(default=50, metadata={"help": "Fewer engaged queries than this: no ranker."})
    small_log_share: float = field(
        default=0.0,
        metadata={
            "help": "When share holds out fewer than min_queries, hold out this share instead (e.g. 0.4) if that "
            "reaches min_queries, so a small log still gets a ranker whose towers train on fewer queries; 0: off."
        },
    )
    candidates: int = field(default=100, metadata={"help": "Fused candidates it re-ranks (N)."})
    features: tuple[str, ...] = field(
        default=tuple(FEATURES), metadata={"help": "Features it reads (comma-separated)."}
    )
    num_leaves: int = field(default=31, metadata={"help": "LightGBM leaves per tree."})
    learning_rate: float = field(default=0.05, metadata={"help": "LightGBM learning rate."})
    rounds: int = field(default=500, metadata={"help": "Most boosting rounds (early stopping picks fewer)."})
    min_data_in_leaf: int = field(default=50, metadata={"help": "LightGBM min_data_in_leaf."})
    early_stopping_queries: int = field(
        default=200,
        metadata={
            "help": "With fewer ranker queries than this, one booster does not stop early on a fold of them (too "
            "few to judge by) but runs small_rounds on all of them."
        },
    )
    folds: int = field(
        default=5,
        metadata={
            "help": "Boosters of the ranker, each early-stopped on its own 1/folds of the ranker queries and trained "
            "on the rest; search averages their scores (1: one booster, early-stopped on a tenth)."
        },
    )
    small_rounds: int = field(
        default=100, metadata={"help": "Boosting rounds without early stopping (at most rounds)."}
    )
    repeats: int = field(
        default=1,
        metadata={
            "help": "Seeded draws of the ranker queries into folds, each adding folds early-stopped boosters to the "
            "mean (3: three times the boosters, a steadier mean, three times the ranker's predict cost)."
        },
    )
    monotone: bool = field(
        default=True,
        metadata={
            "help": "Constrain the score to move with the retrieval scores, matches and engagement features "
            "(never down as they grow; ranks the other way), LightGBM's advanced monotone constraints."
        },
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.share < 1.0:
            raise ConfigError(f"ranker share must be in [0, 1), got {self.share}")
        if not 0.0 <= self.small_log_share < 1.0:
            raise ConfigError(f"ranker small_log_share must be in [0, 1), got {self.small_log_share}")
        if self.folds < 1 or self.repeats < 1:
            raise ConfigError(f"ranker folds and repeats must be >= 1, got {self.folds}, {self.repeats}")
        if self.small_rounds < 1 or self.rounds < 1:
            raise ConfigError(f"ranker rounds and small_rounds must be >= 1, got {self.rounds}, {self.small_rounds}")
        if self.candidates < 2:
            raise ConfigError(f"ranker candidates must be >= 2, got {self.candidates}")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features:
            raise ConfigError(f"unknown ranker features {unknown or '(none)'}; allowed: {', '.join(FEATURES)}")


def split_ranker_queries(
    events: Sequence[LogEvent], config: RankerConfig, seed: int
) -> tuple[list[LogEvent], list[LogEvent]]:
    """Split the log by query: ``(tower_events, ranker_events)``. Only engaged queries are held out: ``share`` of
    them, or on a log too small for that to reach ``config.min_queries``, ``small_log_share`` of them; with fewer
    than ``min_queries`` either way, nothing is (the ranker is then skipped)."""
    engaged = sorted({normalize_query(e.query) for e in events if e.event != "impression"})
    n = min(config.max_queries, int(len(engaged) * config.share))
    if n < config.min_queries:
        n = min(config.max_queries, int(len(engaged) * config.small_log_share))
    if not config.enabled or n < config.min_queries:
        return list(events), []
    chosen = set(random.Random(seed + 7919).sample(engaged, n))
    tower, ranker = [], []
    for e in events:
        (ranker if normalize_query(e.query) in chosen else tower).append(e)
    return tower, ranker


def log_labels(events: Sequence[LogEvent]) -> dict[str, dict[str, float]]:
    """Graded labels per (normalised query, product): purchase 3, add-to-cart 2, click 1, impression only 0."""
    labels: dict[str, dict[str, float]] = defaultdict(dict)
    for (query, pid), s in aggregate_events(events).items():
        labels[query][pid] = 3.0 if s.purchases else 2.0 if s.add_to_carts else 1.0 if s.clicks else 0.0
    return dict(labels)


def build_context(events: Sequence[LogEvent], catalog: Catalog, encode, *, neighbours: int = 10) -> RankingContext:
    """Engagement of the towers' training log: per-product counts, and per engaged query the departments,
    categories and products it went to, with the query's vector (``encode``: queries → vectors)."""
    stats = aggregate_events(events)
    by_id = {p.product_id: p for p in catalog.products}
    product: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    per_query: dict[str, dict[str, float]] = defaultdict(dict)
    for (query, pid), s in stats.items():
        counts = product[pid]
        counts[0] += max(s.impressions, s.clicks)
        counts[1] += s.clicks
        counts[2] += s.conversions
        weight = s.clicks + s.conversions
        if weight > 0:
            per_query[query][pid] = per_query[query].get(pid, 0.0) + weight
    queries = sorted(per_query)
    departments, categories, products = [], [], []
    for q in queries:
        engaged = per_query[q]
        total = sum(engaged.values())
        dep: dict[str, float] = defaultdict(float)
        cat: dict[str, float] = defaultdict(float)
        for pid, w in engaged.items():
            p = by_id.get(pid)
            if p is None:
                continue
            if p.department:
                dep[p.department.casefold()] += w / total
            path = " > ".join(split_category(p.category.casefold()))
            if path:
                cat[path] += w / total
        departments.append(dict(dep))
        categories.append(dict(cat))
        products.append({pid: w / total for pid, w in engaged.items()})
    ids = sorted(product)
    vectors = encode(queries) if queries else None
    return RankingContext(
        ids,
        np.array([product[i][0] for i in ids]),
        np.array([product[i][1] for i in ids]),
        np.array([product[i][2] for i in ids]),
        queries,
        vectors if vectors is not None else np.zeros((0, 1), dtype=np.float32),
        departments,
        categories,
        products,
        neighbours,
    )


def _groups(
    hybrid: HybridRetriever,
    extractor: FeatureExtractor,
    labels: dict[str, dict[str, float]],
    depth: int,
    batch: int = 256,
) -> tuple[np.ndarray, np.ndarray, list[int], list[str]]:
    """Feature rows, labels and group sizes for the queries of ``labels`` that have a positive among candidates."""
    queries = sorted(q for q, g in labels.items() if any(v > 0 for v in g.values()))
    xs, ys, sizes, kept = [], [], [], []
    ids = hybrid.product_ids
    for start in range(0, len(queries), batch):
        chunk = queries[start : start + batch]
        vectors = hybrid.dense.encoder.encode(chunk)
        for q, vector, head in zip(chunk, vectors, hybrid.fused_candidates(chunk, depth, vectors), strict=True):
            y = np.array([labels[q].get(ids[r], 0.0) for r in head.rows.tolist()])
            if not (y > 0).any():
                continue
            xs.append(extractor.features(q, vector, head, depth))
            ys.append(y)
            sizes.append(len(head))
            kept.append(q)
    if not xs:
        return np.zeros((0, len(FEATURES)), dtype=np.float32), np.zeros(0), [], []
    return np.vstack(xs), np.concatenate(ys), sizes, kept


def fold_draws(n: int, folds: int, seed: int, repeats: int = 1) -> list[np.ndarray]:
    """``repeats`` seeded assignments of ``n`` queries to ``folds`` folds (at most ``n``; fold number per query).
    With one fold, a tenth of the queries (fold 0) stops the booster trained on the rest. The first draw depends on
    ``seed`` alone, so ``repeats=1`` is the single draw of earlier versions."""
    folds = min(folds, n)
    draws = []
    for repeat in range(repeats):
        order = list(range(n))
        random.Random(seed + 1_000_003 * repeat).shuffle(order)
        fold = np.zeros(n, dtype=np.int64)
        if folds == 1:
            fold[order[max(1, n // 10) :]] = 1
        else:
            fold[order] = np.arange(n) % folds
        draws.append(fold)
    return draws


def lambdamart_params(config: RankerConfig, seed: int = 0) -> dict[str, Any]:
    """LightGBM parameters of the ranking stage: ``lambdarank`` on NDCG@10, deterministic, and the monotone
    constraints of :data:`~towersearch.search.features.DIRECTIONS` over ``config.features`` unless turned off."""
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "min_data_in_leaf": config.min_data_in_leaf,
        "feature_fraction": 0.9,
        "lambdarank_truncation_level": 20,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 0,
        "verbose": -1,
    }
    if config.monotone:
        params["monotone_constraints"] = [DIRECTIONS.get(f, 0) for f in config.features]
        params["monotone_constraints_method"] = "advanced"
    return params


def train_ranker(
    hybrid: HybridRetriever,
    extractor: FeatureExtractor,
    ranker_events: Sequence[LogEvent],
    config: RankerConfig,
    *,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Ranker | None, dict[str, Any]]:
    """Fit LightGBM LambdaMART on the held-out ranker queries; ``(None, summary)`` when there is too little signal."""
    import lightgbm as lgb

    started = time.perf_counter()
    labels = log_labels(ranker_events)
    x, y, sizes, queries = _groups(hybrid, extractor, labels, config.candidates)
    summary: dict[str, Any] = {"queries": len(labels), "queries_with_positive_candidates": len(queries)}
    if len(queries) < config.min_queries:
        summary["skipped"] = f"only {len(queries)} held-out queries have a positive among the candidates"
        return None, summary
    config = replace(config, features=usable_features(config.features, extractor))
    columns = [list(FEATURES).index(f) for f in config.features]
    x = x[:, columns]
    params = lambdamart_params(config, seed)
    callbacks = [lgb.log_evaluation(50)] if progress else []
    names = list(config.features)
    if len(queries) < config.early_stopping_queries:  # a fold would be a handful of queries: fixed rounds on all
        dtrain = lgb.Dataset(x, y, group=sizes, feature_name=names, free_raw_data=False)
        boosters = [
            lgb.train(params, dtrain, num_boost_round=min(config.small_rounds, config.rounds), callbacks=callbacks)
        ]
        train_g, valid_g, scores, draws = sizes, [], [], 1
    else:
        boosters, scores, draws = [], [], config.repeats
        folds = min(config.folds, len(queries))  # one fold: one booster, stopped on fold 0
        for fold, k in itertools.product(fold_draws(len(queries), folds, seed, draws), range(folds)):
            held = fold == k
            rows = np.repeat(held, sizes)
            train_g = [size for size, h in zip(sizes, held, strict=True) if not h]
            valid_g = [size for size, h in zip(sizes, held, strict=True) if h]
            dtrain = lgb.Dataset(x[~rows], y[~rows], group=train_g, feature_name=names, free_raw_data=False)
            dvalid = lgb.Dataset(x[rows], y[rows], group=valid_g, reference=dtrain)
            booster = lgb.train(
                params,
                dtrain,
                num_boost_round=config.rounds,
                valid_sets=[dvalid],
                callbacks=[lgb.early_stopping(50, verbose=False), *callbacks],
            )
            boosters.append(booster)
            scores.append(float(booster.best_score["valid_0"]["ndcg@10"]))
    rounds = [int(b.best_iteration or b.current_iteration()) for b in boosters]
    gains = np.sum([b.feature_importance(importance_type="gain") for b in boosters], axis=0)
    total = float(gains.sum()) or 1.0
    summary.update(
        {
            "train_queries": len(train_g),
            "monotone": config.monotone,
            "folds": len(boosters) // draws,
            "repeats": draws,
            "early_stopping_queries": len(valid_g),
            "rows": int(len(y)),
            "rounds": round(float(np.mean(rounds))),
            "fold_rounds": rounds,
            "early_stopping_ndcg@10": round(float(np.mean(scores)), 4) if scores else None,
            "importance_gain": {
                f: round(float(g) / total, 4)
                for f, g in sorted(zip(config.features, gains, strict=True), key=lambda t: -t[1])
            },
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    ranker = Ranker(boosters, list(config.features), config.candidates, extractor.context, {"training": summary})
    return ranker, summary


def choose_default(
    ranked: dict[str, float], hybrid: dict[str, float], *, resamples: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[bool, float]:
    """Whether the ranker should be the default retriever, from per-query NDCG@10 on the validation queries.

    The ranker must beat hybrid on average and by more than chance: a one-sided paired bootstrap over the queries
    (``resamples`` draws) must put the probability that it is not better below ``alpha``. A few hundred validation
    queries decide it, so a small lead is not enough. Returns ``(default, p_value)``.
    """
    queries = sorted(set(ranked) & set(hybrid))
    if not queries:
        return False, 1.0
    diff = np.array([ranked[q] - hybrid[q] for q in queries])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    p_value = float((means <= 0).mean())
    return bool(diff.mean() > 0 and p_value < alpha), round(p_value, 4)


def validation_metrics(retrievers: dict[str, Any], judgements: Judgements) -> tuple[dict[str, float], dict]:
    """NDCG@10 per retriever on held-out judgements, and per query (``{retriever: {query: ndcg@10}}``)."""
    from towersearch.evaluation.report import evaluate

    result = evaluate(retrievers, judgements)
    per_query = {name: {q: m["ndcg@10"] for q, m in rows.items()} for name, rows in result.per_query.items()}
    return {name: round(m["ndcg@10"], 4) for name, m in result.metrics.items()}, per_query

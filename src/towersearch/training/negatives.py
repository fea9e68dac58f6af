"""Hard negatives for the towers' second stage: logged ones (shown for a query, never engaged with) and mined ones.

Mining runs ``sentence_transformers.util.mine_hard_negatives`` over the whole catalogue with the stage-1 model and
keeps what is close in text but on another shelf; a query's logged negatives, when the log has them, come first.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from towersearch.data.catalog import Catalog
from towersearch.data.schema import LogEvent
from towersearch.text import product_text, query_text
from towersearch.training.config import TrainConfig
from towersearch.training.pairs import Pair, aggregate_events

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from towersearch.search.lexical import BM25Retriever

Row = tuple[str, str, str]
"""A hard-negative row of texts: (query, positive, negative)."""


def skipped_products(events: Iterable[LogEvent]) -> dict[str, list[str]]:
    """Per normalised query, the products shown for it (impressions) that nobody clicked, carted or bought.

    These are negatives the shoppers (or judges, in a log made from judgements) chose themselves, usually harder
    and surer than mined ones: a product no model can score as a hidden positive.
    """
    skipped: dict[str, list[str]] = {}
    for (query, pid), s in sorted(aggregate_events(events).items()):
        if s.impressions and not s.clicks and not s.conversions:
            skipped.setdefault(query, []).append(pid)
    return skipped


def logged_negatives(
    targets: Sequence[Pair], skipped: Mapping[str, Sequence[str]], catalog: Catalog, config: TrainConfig
) -> tuple[list[Row], list[Pair]]:
    """Rows for the ``targets`` whose query has skipped products in the catalogue (``config.hard_negatives`` per
    pair, taking a query's skipped products in turn), and the targets left without any, to be mined."""
    text = config.text
    known = {p.product_id for p in catalog}
    pools = {q: [pid for pid in pids if pid in known] for q, pids in skipped.items()}
    turn: Counter[str] = Counter()
    rows: list[Row] = []
    for p in targets:
        pool = pools.get(p.query, [])
        for _ in range(min(config.hard_negatives, len(pool))):
            neg = catalog[pool[turn[p.query] % len(pool)]]
            turn[p.query] += 1
            positive = product_text(catalog[p.product_id], text)
            rows.append((query_text(p.query, text), positive, product_text(neg, text)))
    return rows, [p for p in targets if not pools.get(p.query)]


def _seed_corpus_cache(model: SentenceTransformer, corpus: list[str], embeddings: np.ndarray, folder: Path) -> None:
    """Put ``embeddings`` (``corpus`` already encoded by ``model``'s product tower) where ``mine_hard_negatives``
    looks for its cached corpus embeddings, so the catalogue is not encoded again.

    The library names the file by a hash of the model name, the prompts and the de-duplicated corpus; should that
    naming change, the file is simply not found and the corpus is encoded as before.
    """
    first: dict[str, int] = {}
    for i, t in enumerate(corpus):
        first.setdefault(t, i)
    unique = list(first)
    name = model.model_card_data.base_model or ""
    digest = hashlib.sha256(repr((name, None, None, unique)).encode(), usedforsecurity=False).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"corpus_embeddings_{digest}.npy", embeddings[list(first.values())])


def mine_negatives(
    model: SentenceTransformer,
    positives: Sequence[Pair],
    targets: Sequence[Pair],
    catalog: Catalog,
    config: TrainConfig,
    *,
    corpus_embeddings: np.ndarray | None = None,
    cache_dir: Path | None = None,
    skipped: Mapping[str, Sequence[str]] | None = None,
    bm25: BM25Retriever | None = None,
) -> list[Row]:
    """Hard negatives for the ``targets`` pairs, mined over the whole catalogue with ``model``.

    Every known positive of a query (from ``positives``, noisy ones included) is kept out of its negatives,
    ``negative_margin`` skips near-duplicates of the positive, and so does a product in the positive's own
    category: a trained model ranks unclicked substitutes ("whole milk" for "2% milk") near the top, and teaching
    it that they are wrong answers hurts (measured in the ablation). What stays is the "tortilla chips" for
    "tortillas" kind: close in text, on another shelf. ``corpus_embeddings`` (the catalogue in its order, encoded
    by ``model``'s product tower; needs ``cache_dir``, a fresh folder) saves encoding the catalogue again.

    ``skipped`` (query → products shown for it and never engaged with, see ``skipped_products``) supplies the
    negatives of its queries instead when ``config.logged_negatives`` is on; mining covers the other queries. With
    ``config.shown_not_negative`` they are kept out of the mined and BM25 negatives instead.
    ``bm25``: the catalogue's index for BM25's negatives (built here when not given).
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    if not targets or config.hard_negatives == 0:
        return []
    text = config.text
    logged: list[Row] = []
    if skipped and config.logged_negatives:
        logged, targets = logged_negatives(targets, skipped, catalog, config)
        if not targets:
            return logged
    pairs = [*positives, *targets]
    by_query = known_positives(pairs)
    shown = (skipped or {}) if config.shown_not_negative else {}
    avoid = known_positives(pairs, shown) if shown else by_query
    lexical = lexical_negatives(targets, avoid, catalog, config, bm25) if config.negative_source != "model" else []
    if config.negative_source == "bm25":
        return logged + lexical
    wanted = {(p.query, p.product_id) for p in targets}
    rows = sorted({(q, pid) for q, pids in by_query.items() for pid in pids if q in {t.query for t in targets}})
    dataset = Dataset.from_dict(
        {
            "query": [query_text(q, text) for q, _ in rows],
            "positive": [product_text(catalog[pid], text) for _, pid in rows],
        }
    )
    corpus = [product_text(p, text) for p in catalog]
    category = {t: p.category for t, p in zip(corpus, catalog, strict=True)}
    cache_folder = None
    if corpus_embeddings is not None and cache_dir is not None:
        _seed_corpus_cache(model, corpus, corpus_embeddings, cache_dir)
        cache_folder = str(cache_dir)
    mined = mine_hard_negatives(
        dataset,
        model,
        corpus=corpus,
        range_min=config.negative_skip,
        range_max=config.negative_range,
        relative_margin=config.negative_margin,
        num_negatives=config.hard_negatives * 4,
        sampling_strategy="top",
        output_format="triplet",
        batch_size=128,
        verbose=False,
        cache_folder=cache_folder,
    )
    wanted_text = {(query_text(q, text), product_text(catalog[pid], text)) for q, pid in wanted}
    passed_over = {
        (query_text(q, text), product_text(catalog[pid], text))
        for q, pids in shown.items()
        for pid in pids
        if pid in catalog
    }
    kept: list[Row] = []
    per_pair: Counter[tuple[str, str]] = Counter()
    for r in mined:
        key = (r["query"], r["positive"])
        if key not in wanted_text or per_pair[key] >= config.hard_negatives:
            continue
        if (r["query"], r["negative"]) in passed_over:
            continue  # shown for the query and passed over: not surely a wrong answer
        if category.get(r["negative"]) and category.get(r["negative"]) == category.get(r["positive"]):
            continue  # same shelf as a known positive: more likely an unclicked substitute than a wrong answer
        per_pair[key] += 1
        kept.append((r["query"], r["positive"], r["negative"]))
    mined_rows = set(kept)
    return logged + kept + [r for r in lexical if r not in mined_rows]


def known_positives(pairs: Iterable[Pair], shown: Mapping[str, Sequence[str]] | None = None) -> dict[str, set[str]]:
    """Query → the products it has as positives, which no negative of that query may be; with ``shown`` (query →
    products shown for it and passed over, see ``skipped_products``), those too."""
    known: dict[str, set[str]] = {}
    for p in pairs:
        known.setdefault(p.query, set()).add(p.product_id)
    for query, pids in (shown or {}).items():
        known.setdefault(query, set()).update(pids)
    return known


def lexical_negatives(
    targets: Sequence[Pair],
    known: Mapping[str, set[str]],
    catalog: Catalog,
    config: TrainConfig,
    bm25: BM25Retriever | None = None,
) -> list[Row]:
    """Hard negatives from BM25 (``negative_source="bm25"``): for each target pair, the query's top BM25 products
    after ``negative_skip``, within ``negative_range``, that are none of its known positives and not on the
    positive's own shelf (as mined ones). Lexical confusers are what the lexical side of hybrid search ranks
    wrongly; towers that learn to score them low correct it (CLEAR, Gao et al. 2021). ``bm25``: the catalogue's
    index, read with its own spelling setting (built with ``config.spelling`` when not given)."""
    from towersearch.search.lexical import BM25Retriever

    text = config.text
    if bm25 is None:
        bm25 = BM25Retriever(catalog.products, spelling=config.spelling)
    queries = sorted({p.query for p in targets})
    found = dict(zip(queries, bm25.search_rows(queries, k=config.negative_range), strict=True))
    products = catalog.products
    rows: list[Row] = []
    for p in targets:
        positive = catalog[p.product_id]
        shelf = positive.category
        picked = 0
        for row in found[p.query][0][config.negative_skip :]:
            candidate = products[int(row)]
            same = candidate.product_id in known.get(p.query, ()) or candidate.name == positive.name
            if same or (shelf and candidate.category == shelf):
                continue
            rows.append((query_text(p.query, text), product_text(positive, text), product_text(candidate, text)))
            picked += 1
            if picked == config.hard_negatives:
                break
    return rows

"""Fusion over row arrays (the search path) gives exactly what fusion over hits gives."""

import random

import numpy as np
import pytest

from tests.evaluation.test_crosscheck import POOL, random_rankings
from towersearch.search.hybrid import Fusion, HybridRetriever, _with_scores
from towersearch.search.lexical import BM25Retriever
from towersearch.search.retriever import Hit

FUSIONS = [Fusion("rrf"), Fusion("rrf", dense_weight=2.5, c=10.0), Fusion("blend"), Fusion("blend", alpha=0.8)]


def as_rows(ranking: list[Hit], row_of: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([row_of[h.product_id] for h in ranking], dtype=np.int64),
        np.array([h.score for h in ranking], dtype=np.float64),
    )


def edge_cases() -> list[list[list[Hit]]]:
    a, b, c = POOL[:3]
    return [
        [[], []],
        [[Hit(a, 3.0)], []],
        [[], [Hit(b, 0.5), Hit(a, 0.5)]],  # a constant list: every entry gets full weight
        [[Hit(a, 2.0), Hit(b, 1.0)], [Hit(b, 0.9), Hit(a, 0.8)]],  # RRF ties between a and b
        [[Hit(c, 1.0), Hit(b, 1.0)], [Hit(a, 0.3)]],
    ]


@pytest.mark.parametrize("fusion", FUSIONS, ids=lambda f: f.label)
@pytest.mark.parametrize("k", [1, 10, 1000])
def test_row_fusion_equals_hit_fusion(fusion, k):
    ids = list(POOL[:150])
    random.Random(3).shuffle(ids)  # row order is not id order: ties must still go by product id
    row_of = {pid: i for i, pid in enumerate(ids)}
    id_rank = np.argsort(np.argsort(np.array(ids)))
    for lexical, dense in [tuple(r) for r in random_rankings(seed=5)] + [tuple(r) for r in edge_cases()]:
        expected = _with_scores(fusion.fuse(lexical, dense, k), lexical, dense)
        got = fusion.fuse_rows(as_rows(lexical, row_of), as_rows(dense, row_of), k, id_rank).hits(ids)
        assert [(h.product_id, h.score, h.scores) for h in got] == [(h.product_id, h.score, h.scores) for h in expected]


class HitsOnly:
    """A retriever that offers hits only, so hybrid search takes the fusion-by-hits path."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def search(self, queries, k=10):
        return self.inner.search(queries, k)


def test_hybrid_search_is_the_same_on_either_path(tiny_retrievers):
    lexical, dense = tiny_retrievers
    queries = ["organic milk", "bread", "pasta sauce", "zzz"]
    for fusion in FUSIONS:
        rows = HybridRetriever(lexical, dense, fusion=fusion, candidates=20)
        hits = HybridRetriever(HitsOnly(lexical), HitsOnly(dense), fusion=fusion, candidates=20)
        assert rows._rows_fuse() and not hits._rows_fuse()
        for k in (3, 10, 50):
            assert [[(h.product_id, h.score, h.scores) for h in r] for r in rows.search(queries, k)] == [
                [(h.product_id, h.score, h.scores) for h in r] for r in hits.search(queries, k)
            ]


@pytest.fixture
def tiny_retrievers(tiny_store, tiny_model_dir):
    from towersearch.data import load_catalog
    from towersearch.model import load_model
    from towersearch.search.dense import DenseRetriever
    from towersearch.text import TextConfig

    products = load_catalog(tiny_store["catalog"]).products
    dense = DenseRetriever.from_products(load_model(tiny_model_dir), products, TextConfig())
    return BM25Retriever(products), dense


def test_union_fusion_scores_every_candidate_in_both_retrievers(tiny_retrievers):
    lexical, dense = tiny_retrievers
    alpha, depth = 0.4, 3
    hybrid = HybridRetriever(lexical, dense, fusion=Fusion("union", alpha=alpha), candidates=depth)
    queries = ["organic milk", "bread", "pasta sauce", "zzz"]
    vectors = dense.encode(queries)
    for query, vector, got in zip(queries, vectors, hybrid.search(queries, k=depth), strict=True):
        # the reference: the whole catalogue scored by both, read at the union of the two top-3 lists
        bm25_all = lexical._bm25.get_scores(lexical.query_tokens(query)) if lexical.query_tokens(query) else None
        cosine_all = dense.embeddings @ vector
        union = {h.product_id for h in lexical.search([query], depth)[0]} | {
            h.product_id for h in dense.search([query], depth)[0]
        }
        rows = np.array(sorted(dense.product_ids.index(pid) for pid in union))
        bm25 = np.zeros(len(rows)) if bm25_all is None else bm25_all[rows].astype(np.float64)
        cosine = cosine_all[rows].astype(np.float64)

        def norm(x):
            return (x - x.min()) / (x.max() - x.min()) if x.max() > x.min() else np.ones_like(x)

        expected = (1 - alpha) * norm(bm25) + alpha * norm(cosine)
        ranked = zip(expected.tolist(), [dense.product_ids[r] for r in rows], strict=True)
        want = sorted(ranked, key=lambda t: (-t[0], t[1]))[:depth]
        assert [h.product_id for h in got] == [pid for _, pid in want]
        assert [h.score for h in got] == pytest.approx([s for s, _ in want], abs=1e-4)  # float32 products
        assert all(h.scores["fused"] == h.score for h in got)
    # a product only one list found is no longer scored 0 in the other: union and blend differ somewhere
    blend = HybridRetriever(lexical, dense, fusion=Fusion("blend", alpha=alpha), candidates=depth)
    assert [[h.score for h in r] for r in blend.search(queries, depth)] != [
        [h.score for h in r] for r in hybrid.search(queries, depth)
    ]


def test_union_fusion_needs_retrievers_that_score_rows(tiny_retrievers):
    from towersearch.errors import ConfigError

    lexical, dense = tiny_retrievers
    hits = HybridRetriever(HitsOnly(lexical), HitsOnly(dense), fusion=Fusion("union"))
    with pytest.raises(ConfigError, match="union fusion"):
        hits.search(["milk"], 5)
    with pytest.raises(ConfigError, match="union fusion"):
        Fusion("union").fuse([], [], 5)
    assert Fusion("union", alpha=0.4).label == "union@0.4"

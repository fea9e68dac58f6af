"""Pseudo-relevance feedback on query vectors: the arithmetic, the choice on held-out queries, and one path."""

import numpy as np
import pytest

from towersearch.errors import ConfigError
from towersearch.search.ann import AnnConfig, FaissIndex
from towersearch.search.dense import DenseRetriever, Feedback


class FixedEncoder:
    """Query vectors from a table (what DenseRetriever reads of an encoder)."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, queries):
        return np.stack([self.vectors[q] for q in queries]).astype(np.float32)


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def shelf():
    # the query sits nearest "lone", an odd product; the next ones share a shelf
    emb = np.stack([unit(1, 0, 0), unit(0.62, 0.78, 0), unit(0.6, 0.8, 0), unit(0.58, 0.81, 0.05), unit(0, 0, 1)])
    ids = ["lone", "s1", "s2", "s3", "far"]
    encoder = FixedEncoder({"q": unit(0.95, 0.31, 0)})
    return DenseRetriever(encoder, ids, FaissIndex.build(emb, AnnConfig(kind="flat")), emb), emb


def test_feedback_moves_the_query_by_its_first_products_mean(shelf):
    dense, emb = shelf
    q = dense.encode(["q"])
    assert dense.search_vectors_of(q) is q  # off by default: the same vectors, no search
    dense.feedback = Feedback(docs=3, weight=0.5)
    moved = dense.search_vectors_of(q)[0]
    by_hand = q[0] + 0.5 * emb[[0, 1, 2]].mean(axis=0)  # lone, s1, s2: the query's top 3
    np.testing.assert_allclose(moved, by_hand / np.linalg.norm(by_hand), rtol=1e-6)
    plain = [
        h.product_id for h in DenseRetriever(dense.encoder, dense.product_ids, dense.index, emb).search(["q"], 5)[0]
    ]
    dense.feedback = Feedback(docs=3, weight=1.0)
    fed = [h.product_id for h in dense.search(["q"], 5)[0]]
    assert plain[0] == "lone" and fed[0] != "lone", "the shelf the first hits share now leads"
    assert [r.tolist() for r, _ in dense.search_rows(["q"], 5)] == [[dense.product_ids.index(p) for p in fed]]
    # product-to-product search takes vectors as given
    assert dense.search_vectors(emb[[0]], 1)[0][0].product_id == "lone"


def test_feedback_round_trips_and_checks_its_values():
    assert Feedback.from_dict(None) == Feedback() and not Feedback().active
    assert Feedback.from_dict(Feedback(docs=5, weight=0.25).as_dict()) == Feedback(docs=5, weight=0.25)
    for bad in ({"docs": 0, "weight": 0.5}, {"docs": 3, "weight": -0.1}):
        with pytest.raises(ConfigError, match="feedback"):
            Feedback(**bad)


def test_choose_feedback_keeps_it_off_unless_held_out_queries_gain(shelf):
    from towersearch.training.validation import choose_feedback

    dense, _ = shelf
    wants_shelf = {"q": {"s1": 2.0, "s2": 2.0, "s3": 1.0}}
    wants_lone = {"q": {"lone": 2.0}}
    chosen = choose_feedback(dense, wants_shelf, weight=1.0)
    assert chosen["chosen"] == 1.0 and dense.feedback.weight == 1.0
    assert chosen["ndcg@10"]["1.0"] > chosen["ndcg@10"]["0.0"] + chosen["tie"]
    assert choose_feedback(dense, wants_lone, weight=1.0)["chosen"] == 0.0 and not dense.feedback.active
    assert choose_feedback(dense, {}) == {"chosen": 0.5, "validation_queries": 0} and dense.feedback.weight == 0.5

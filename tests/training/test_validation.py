import pytest

from towersearch.data import Catalog, LogEvent, Product
from towersearch.model import load_model
from towersearch.search.hybrid import reciprocal_rank_fusion
from towersearch.search.retriever import Hit
from towersearch.text import TextConfig
from towersearch.training.validation import DENSE_WEIGHTS, calibrate_fusion, split_validation


def log(n_queries: int) -> list[LogEvent]:
    events = []
    for i in range(n_queries):
        events += [LogEvent(f"Query {i}", f"p{i}", "click"), LogEvent(f"query {i}", f"p{i}", "add_to_cart")]
        events += [LogEvent(f"query {i}", f"p{i + 1}", "click"), LogEvent(f"query {i}", f"p{i + 2}", "impression")]
    return events


def test_split_validation_holds_out_whole_queries():
    events = log(300)
    kept, held = split_validation(events, max_queries=50, max_share=0.1, seed=0)
    assert len(held) == 30  # 10% of 300 engaged queries
    assert not {e.query.lower() for e in kept} & set(held)
    assert len(kept) == len(events) - 30 * 4
    q = next(iter(held))
    i = int(q.split()[-1])
    assert held[q] == {f"p{i}": 2.0, f"p{i + 1}": 1.0}  # converted → 2, clicked → 1, impression only → absent
    assert split_validation(events, max_queries=50, max_share=0.1, seed=0)[1] == held  # seeded
    assert split_validation(log(100), max_queries=50, max_share=0.1, seed=0)[1] == {}  # too few to hold out


def test_weighted_rrf():
    a = [Hit("x", 1), Hit("y", 1)]
    b = [Hit("y", 1), Hit("z", 1)]
    assert [h.product_id for h in reciprocal_rank_fusion([a, b], k=3)] == ["y", "x", "z"]
    assert [h.product_id for h in reciprocal_rank_fusion([a, b], k=3, weights=[1, 5])][0] == "y"
    assert [h.product_id for h in reciprocal_rank_fusion([a, b], k=3, weights=[1, 5])][1] == "z"
    assert reciprocal_rank_fusion([a, b], weights=[1, 1]) == reciprocal_rank_fusion([a, b])


def test_calibrate_fusion_picks_a_tried_weight(tiny_model_dir):
    products = [Product(f"p{i}", f"item {i} {'milk' if i % 2 else 'bread'}") for i in range(30)]
    judgements = {"milk": {f"p{i}": 1.0 for i in range(1, 30, 2)}, "bread": {f"p{i}": 2.0 for i in range(0, 30, 2)}}
    result = calibrate_fusion(load_model(tiny_model_dir), Catalog(products), judgements, TextConfig(markers=False))
    assert result["dense_weight"] in DENSE_WEIGHTS and result["validation_queries"] == 2
    best = result["ndcg@10"][f"hybrid@{result['dense_weight']:g}"]
    assert best == pytest.approx(max(v for k, v in result["ndcg@10"].items() if k.startswith("hybrid")))


def test_choose_weight_breaks_ties_towards_the_better_single_retriever():
    from towersearch.training.validation import choose_weight

    flat = {f"hybrid@{w:g}": 0.40 for w in DENSE_WEIGHTS}
    assert choose_weight({"bm25": 0.38, "dense": 0.40, **flat}) == max(DENSE_WEIGHTS)
    assert choose_weight({"bm25": 0.42, "dense": 0.40, **flat}) == min(DENSE_WEIGHTS)
    peaked = {**flat, "hybrid@1.5": 0.45}
    assert choose_weight({"bm25": 0.38, "dense": 0.40, **peaked}) == 1.5  # a clear winner beats the tie rule

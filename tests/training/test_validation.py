import pytest

from towersearch.data import Catalog, LogEvent, Product
from towersearch.errors import ConfigError
from towersearch.model import load_model
from towersearch.search.hybrid import Fusion, reciprocal_rank_fusion, score_blend
from towersearch.search.retriever import Hit
from towersearch.text import TextConfig
from towersearch.training.validation import (
    TOLERANCE,
    calibrate_fusion,
    choose_fusion,
    fusion_candidates,
    split_validation,
    tolerance,
)


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


def test_score_blend_normalises_each_list():
    lexical = [Hit("x", 12.0), Hit("y", 6.0), Hit("z", 0.0)]
    dense = [Hit("z", 0.9), Hit("y", 0.8), Hit("w", 0.4)]
    blend = score_blend([lexical, dense], k=4, weights=(0.5, 0.5))
    # x: 0.5·1 + 0 | y: 0.5·0.5 + 0.5·0.8 | z: 0 + 0.5·1 | w: 0.5·0
    assert [h.product_id for h in blend] == ["y", "x", "z", "w"]
    assert blend[0].score == pytest.approx(0.65)
    assert [h.product_id for h in Fusion("blend", alpha=1.0).fuse(lexical, dense, 2)] == ["z", "y"]
    assert [h.product_id for h in Fusion("blend", alpha=0.0).fuse(lexical, dense, 2)] == ["x", "y"]


def test_fusion_rejects_bad_settings():
    with pytest.raises(ConfigError, match="unknown fusion method 'max'"):
        Fusion("max")
    with pytest.raises(ConfigError, match="alpha"):
        Fusion("blend", alpha=1.5)
    assert Fusion.from_dict({"method": "blend", "alpha": 0.7, "extra": 1}) == Fusion("blend", alpha=0.7)
    assert Fusion.from_dict(None) == Fusion()


def test_calibrate_fusion_picks_the_best_candidate(tiny_model_dir):
    products = [Product(f"p{i}", f"item {i} {'milk' if i % 2 else 'bread'}") for i in range(30)]
    judgements = {"milk": {f"p{i}": 1.0 for i in range(1, 30, 2)}, "bread": {f"p{i}": 2.0 for i in range(0, 30, 2)}}
    result = calibrate_fusion(load_model(tiny_model_dir), Catalog(products), judgements, TextConfig(markers=False))
    chosen = Fusion.from_dict(result["chosen"])
    assert chosen in fusion_candidates() and result["validation_queries"] == 2
    assert result["ndcg@10"][chosen.label] >= max(result["ndcg@10"][f.label] for f in fusion_candidates()) - TOLERANCE


def test_calibrate_fusion_searches_and_encodes_each_query_once(tiny_model_dir, monkeypatch):
    from collections import Counter

    from towersearch.search.dense import DenseRetriever
    from towersearch.search.lexical import BM25Retriever

    calls = Counter()  # (what, query) -> how often
    search_rows, encode = BM25Retriever.search_rows, DenseRetriever.encode

    def counted_search_rows(self, queries, k=10):
        calls.update(("bm25", q) for q in queries)
        return search_rows(self, queries, k)

    def counted_encode(self, queries):
        calls.update(("encode", q) for q in queries)
        return encode(self, queries)

    monkeypatch.setattr(BM25Retriever, "search_rows", counted_search_rows)
    monkeypatch.setattr(DenseRetriever, "encode", counted_encode)
    products = [Product(f"p{i}", f"item {i} {'milk' if i % 2 else 'bread'}") for i in range(30)]
    judgements = {"milk": {"p1": 1.0}, "bread": {"p0": 2.0}}
    result = calibrate_fusion(load_model(tiny_model_dir), Catalog(products), judgements, TextConfig(markers=False))
    assert result["validation_queries"] == 2
    # the BM25 and dense rows and every fusion candidate (union ones rescoring with the vectors) share one list each
    assert calls == {(what, q): 1 for what in ("bm25", "encode") for q in judgements}


def test_choose_fusion_breaks_ties_towards_the_better_single_retriever():
    candidates = fusion_candidates()
    flat = {f.label: 0.40 for f in candidates}
    assert choose_fusion({"bm25": 0.38, "dense": 0.40, **flat}, candidates) == Fusion("blend", alpha=0.9)
    assert choose_fusion({"bm25": 0.42, "dense": 0.40, **flat}, candidates) == Fusion("blend", alpha=0.3)
    peaked = {**flat, "rrf@1.5": 0.45}
    assert choose_fusion({"bm25": 0.38, "dense": 0.40, **peaked}, candidates) == Fusion("rrf", dense_weight=1.5)


def test_the_tie_band_narrows_with_more_calibration_queries():
    assert tolerance(20) == tolerance(200) == TOLERANCE
    assert tolerance(800) == pytest.approx(TOLERANCE / 2)
    candidates = fusion_candidates()
    near = {**{f.label: 0.40 for f in candidates}, "blend@0.5": 0.403}  # 0.003 ahead: a tie on 200 queries only
    scores = {"bm25": 0.42, "dense": 0.38, **near}
    assert choose_fusion(scores, candidates, tie=tolerance(200)) == Fusion("blend", alpha=0.3)
    assert choose_fusion(scores, candidates, tie=tolerance(1600)) == Fusion("blend", alpha=0.5)

"""The hand-written metrics and fusions checked against references on seeded random data.

Metrics against ``ir-measures``: ``nDCG@10`` and ``R@k`` from its pytrec_eval provider (trec_eval), whose nDCG uses
the grade itself as the gain with a ``log2(rank + 1)`` discount and the ideal order from every judged document, as
ours does; ``RR@10`` from its msmarco provider (the MS MARCO MRR@10 script), because pytrec_eval's ``recip_rank`` has
no cut-off: asked directly for ``RR@10`` the pytrec_eval provider silently drops the ``@10``. ``rel=`` is the
relevant grade. The pool metrics: ``condensed_ndcg@10`` against trec_eval's judged-only nDCG (``-J``), ``judged@10``
against ir-measures' own ``Judged@10``.

Fusion against a plain reference written here. ``ranx.fuse`` gives the same scores (RRF and min-max ``wsum``, checked
in the slow test below), but it compiles its numba kernels on every fresh process (about 20 s), so it is not a dev
dependency; that test runs only with ``-m slow`` where ranx is installed. Where the two part: a list whose scores are
all equal normalises to 1 here and to 0 in ranx (it divides by ``max(max - min, 1e-9)``).
"""

from __future__ import annotations

import random
import warnings

import pytest

from towersearch.evaluation.metrics import judged_at_k, mrr_at_k, ndcg_at_k, recall_at_k
from towersearch.search.hybrid import reciprocal_rank_fusion, score_blend
from towersearch.search.retriever import Hit

POOL = [f"p{i:03d}" for i in range(300)]


def random_judgements_and_runs(seed: int = 0, queries: int = 50, depth: int = 100):
    """Grades 0–3 for 1–60 products of each query, and a run of ``depth`` products drawn from the whole pool (so
    most of it unjudged). Two extra queries: every grade 0, and no grade above 1."""
    rng = random.Random(seed)
    qrels: dict[str, dict[str, int]] = {}
    runs: dict[str, list[str]] = {}
    for q in range(queries):
        qrels[f"q{q}"] = {pid: rng.randint(0, 3) for pid in rng.sample(POOL, rng.randint(1, 60))}
    qrels["all-zero"] = dict.fromkeys(rng.sample(POOL, 10), 0)
    qrels["low"] = {pid: rng.randint(0, 1) for pid in rng.sample(POOL, 30)}
    for qid, grades in qrels.items():
        # put a few judged products near the top so that the @10 metrics are not mostly zero
        judged = rng.sample(sorted(grades), min(5, len(grades)))
        rest = [pid for pid in rng.sample(POOL, len(POOL)) if pid not in judged]
        top = judged + rest[: 20 - len(judged)]
        rng.shuffle(top)
        runs[qid] = top + rest[20 - len(judged) : depth - len(judged)]
    return qrels, runs


@pytest.mark.parametrize("relevant_grade", [1, 2, 3])
def test_metrics_match_ir_measures_per_query(relevant_grade):
    ir_measures = pytest.importorskip("ir_measures")
    pytest.importorskip("pytrec_eval")
    from ir_measures import RR, Judged, R, nDCG

    qrels, ranked = random_judgements_and_runs(seed=relevant_grade)
    # distinct, decreasing scores: trec_eval orders by score (ties by document id), so no ties may decide
    run = {qid: {pid: float(len(r) - i) for i, pid in enumerate(r)} for qid, r in ranked.items()}
    trec = {
        "ndcg@10": nDCG(dcg="log2") @ 10,
        "recall@10": R(rel=relevant_grade) @ 10,
        "recall@100": R(rel=relevant_grade) @ 100,
        "condensed_ndcg@10": nDCG(judged_only=True) @ 10,
    }
    msmarco = {"mrr@10": RR(rel=relevant_grade) @ 10}
    judged = {"judged@10": Judged @ 10}
    assert nDCG(dcg="log2") @ 10 == nDCG @ 10  # the default gain is the grade itself, not 2^grade - 1
    reference: dict[str, dict[str, float]] = {}
    for provider, measures in (
        (ir_measures.pytrec_eval, trec),
        (ir_measures.msmarco, msmarco),
        (ir_measures.judged, judged),
    ):
        for m in provider.iter_calc(list(measures.values()), qrels, run):
            reference.setdefault(m.query_id, {})[str(m.measure)] = m.value
    assert set(reference) == set(qrels)
    measures = trec | msmarco | judged

    for qid, grades in qrels.items():
        r = ranked[qid]
        ours = {
            "ndcg@10": ndcg_at_k(r, grades, 10),
            "recall@10": recall_at_k(r, grades, 10, relevant_grade),
            "recall@100": recall_at_k(r, grades, 100, relevant_grade),
            "mrr@10": mrr_at_k(r, grades, 10, relevant_grade),
            "judged@10": judged_at_k(r, grades, 10),
            "condensed_ndcg@10": ndcg_at_k(r, grades, 10, judged_only=True),
        }
        expected = {name: reference[qid][str(measure)] for name, measure in measures.items()}
        assert ours == pytest.approx(expected, abs=1e-9, rel=0), qid


def random_rankings(seed: int, lists: int = 2, queries: int = 50) -> list[list[list[Hit]]]:
    """For each query, ``lists`` rankings of 2–100 products with distinct scores (a BM25-like and a cosine-like
    range), overlapping in part."""
    rng = random.Random(seed)
    out = []
    for _ in range(queries):
        rankings = []
        for i in range(lists):
            pids = rng.sample(POOL[:150], rng.randint(2, 100))
            scores = sorted(rng.sample(range(10**6), len(pids)), reverse=True)
            scale, shift = (30.0, 0.0) if i % 2 == 0 else (2.0, -1.0)
            rankings.append([Hit(pid, shift + scale * s / 10**6) for pid, s in zip(pids, scores, strict=True)])
        out.append(rankings)
    return out


def reference_rrf(rankings, c, weights):
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        order = [h.product_id for h in ranking]
        for pid in order:
            scores[pid] = scores.get(pid, 0.0) + weight / (c + order.index(pid) + 1)
    return scores


def reference_blend(rankings, weights):
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        low = min(h.score for h in ranking)
        high = max(h.score for h in ranking)
        for h in ranking:
            normalised = (h.score - low) / (high - low) if high > low else 1.0
            scores[h.product_id] = scores.get(h.product_id, 0.0) + weight * normalised
    return scores


def assert_fused_like(fused: list[Hit], reference: dict[str, float], k: int) -> None:
    """``fused`` is the top ``k`` of ``reference``: same scores, best first, equal scores by product id."""
    assert len(fused) == min(k, len(reference))
    for hit in fused:
        assert hit.score == pytest.approx(reference[hit.product_id], abs=1e-9, rel=0)
    for a, b in zip(fused, fused[1:], strict=False):
        assert a.score > b.score or (a.score == b.score and a.product_id < b.product_id)
    if len(fused) < len(reference):  # nothing left out scores above the last one kept
        kept = {h.product_id for h in fused}
        assert max(s for pid, s in reference.items() if pid not in kept) <= fused[-1].score + 1e-9


@pytest.mark.parametrize(
    ("lists", "c", "weights"), [(2, 60.0, (1.0, 1.0)), (2, 10.0, (1.0, 2.5)), (3, 60.0, (0.5, 1.0, 3.0))]
)
@pytest.mark.parametrize("k", [10, 1000])
def test_rrf_matches_reference(lists, c, weights, k):
    for rankings in random_rankings(seed=lists, lists=lists):
        assert_fused_like(
            reciprocal_rank_fusion(rankings, k=k, c=c, weights=weights), reference_rrf(rankings, c, weights), k
        )


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.3, 0.7), (1.0, 0.0), (0.2, 0.3, 0.5)])
@pytest.mark.parametrize("k", [10, 1000])
def test_score_blend_matches_reference(weights, k):
    for rankings in random_rankings(seed=7, lists=len(weights)):
        assert_fused_like(score_blend(rankings, k=k, weights=weights), reference_blend(rankings, weights), k)


def test_score_blend_gives_a_list_of_equal_scores_full_weight():
    # the one convention where ranx parts from us: it normalises a constant list to 0
    fused = score_blend([[Hit("a", 3.0)], [Hit("b", 0.9), Hit("a", 0.1)]], k=2, weights=(0.5, 0.5))
    assert [(h.product_id, h.score) for h in fused] == [("a", 0.5), ("b", 0.5)]


@pytest.mark.slow
def test_fusion_matches_ranx():
    ranx = pytest.importorskip("ranx")
    per_query = dict(enumerate(random_rankings(seed=11)))
    qids = [f"q{i}" for i in per_query]
    runs = [
        ranx.Run({f"q{i}": {h.product_id: h.score for h in rankings[j]} for i, rankings in per_query.items()})
        for j in range(2)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety warnings from inside ranx
        rrf = ranx.fuse(runs, norm=None, method="rrf", params={"k": 60}).to_dict()
        wsum = ranx.fuse(runs, norm="min-max", method="wsum", params={"weights": [0.3, 0.7]}).to_dict()
    for qid, rankings in zip(qids, per_query.values(), strict=True):
        ours_rrf = {h.product_id: h.score for h in reciprocal_rank_fusion(rankings, k=1000, c=60)}
        ours_blend = {h.product_id: h.score for h in score_blend(rankings, k=1000, weights=(0.3, 0.7))}
        assert ours_rrf == pytest.approx(dict(rrf[qid]), abs=1e-9, rel=0)
        assert ours_blend == pytest.approx(dict(wsum[qid]), abs=1e-9, rel=0)

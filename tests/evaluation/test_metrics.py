import math

import pytest

from towersearch.evaluation.metrics import (
    judged_at_k,
    mean_metrics,
    mrr_at_k,
    ndcg_at_k,
    query_metrics,
    recall_at_k,
)
from towersearch.evaluation.report import Evaluation, evaluate, markdown_table, write_report
from towersearch.search.retriever import Hit


def test_ndcg_hand_computed():
    grades = {"a": 3, "b": 2, "c": 1}
    # ranking c, x, a: DCG = 1/log2(2) + 0 + 3/log2(4) = 1 + 1.5 = 2.5
    # ideal a, b, c: 3 + 2/log2(3) + 1/log2(4) = 3 + 1.26186 + 0.5
    ideal = 3 + 2 / math.log2(3) + 0.5
    assert ndcg_at_k(["c", "x", "a"], grades, 10) == pytest.approx(2.5 / ideal)
    assert ndcg_at_k(["a", "b", "c"], grades, 10) == pytest.approx(1.0)
    # the cut-off applies to the ideal too: with k=1 the best single item is a (gain 3)
    assert ndcg_at_k(["b", "a"], grades, 1) == pytest.approx(2 / 3)


def test_ndcg_without_positive_grades_is_zero():
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0


def test_recall_and_mrr_use_the_relevant_grade():
    grades = {"a": 3, "b": 1, "c": 2}
    ranked = ["x", "b", "y", "a"]
    assert recall_at_k(ranked, grades, 10) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, grades, 10, relevant_grade=2) == pytest.approx(1 / 2)
    assert recall_at_k(ranked, grades, 2, relevant_grade=2) == 0.0
    assert mrr_at_k(ranked, grades, 10) == pytest.approx(1 / 2)
    assert mrr_at_k(ranked, grades, 10, relevant_grade=2) == pytest.approx(1 / 4)
    assert mrr_at_k(ranked, grades, 3, relevant_grade=2) == 0.0


def test_judged_share_and_condensed_ndcg_hand_computed():
    grades = {"a": 3, "b": 2, "c": 0}
    ranked = ["x", "a", "y", "c", "z", "b"]  # x, y, z were never judged
    # three of the first ten places are judged (a, c, b); the list's missing places count as unjudged
    assert judged_at_k(ranked, grades, 10) == pytest.approx(3 / 10)
    assert judged_at_k(ranked, grades, 2) == pytest.approx(1 / 2)
    # full list: a at 2, b at 6; condensed (a, c, b): a at 1, b at 3
    ideal = 3 + 2 / math.log2(3)
    assert ndcg_at_k(ranked, grades, 10) == pytest.approx((3 / math.log2(3) + 2 / math.log2(7)) / ideal)
    assert ndcg_at_k(ranked, grades, 10, judged_only=True) == pytest.approx((3 + 2 / math.log2(4)) / ideal)
    # the cut at k comes after condensing: with k=2 the condensed list is a, c
    assert ndcg_at_k(ranked, grades, 2, judged_only=True) == pytest.approx(3 / ideal)
    # a list of judged products only is its own condensed list
    assert ndcg_at_k(["b", "c", "a"], grades, 10, judged_only=True) == ndcg_at_k(["b", "c", "a"], grades, 10)


def test_mean_metrics():
    rows = [query_metrics(["a"], {"a": 1}), query_metrics(["x"], {"a": 1})]
    assert mean_metrics(rows) == {
        "ndcg@10": 0.5,
        "recall@10": 0.5,
        "recall@100": 0.5,
        "mrr@10": 0.5,
        "judged@10": 0.05,
        "condensed_ndcg@10": 0.5,
    }


class FixedRetriever:
    name = "fixed"

    def __init__(self, answers):
        self.answers = answers

    def search(self, queries, k=10):
        return [[Hit(p, 1.0) for p in self.answers.get(q, [])][:k] for q in queries]


def test_evaluate_skips_queries_without_relevant_products(tmp_path):
    judged = {"milk": {"a": 3, "b": 0}, "junk": {"z": 0}}
    result = evaluate({"fixed": FixedRetriever({"milk": ["b", "a"]})}, judged)
    assert result.queries == 1 and result.skipped_queries == 1
    assert result.metrics["fixed"]["mrr@10"] == pytest.approx(0.5)
    assert result.as_dict() == {"queries": 1, "metrics": {"fixed": result.metrics["fixed"]}}
    paths = write_report(result, tmp_path / "report")
    assert [p.name for p in paths] == ["metrics.json", "metrics.md", "metrics.png"]
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
    assert "| fixed | 0.6309 |" in markdown_table(result)


def test_subset():
    judged = {"a": {"1": 1}, "b": {"2": 1}}
    result = evaluate({"r": FixedRetriever({"a": ["1"]})}, judged)
    assert result.metrics["r"]["recall@10"] == 0.5
    assert result.subset(["a"]).metrics["r"]["recall@10"] == 1.0
    assert isinstance(result.subset(["b"]), Evaluation)

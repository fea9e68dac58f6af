import pytest

from tests.conftest import shared_data
from towersearch.data import load_catalog, load_judgements, load_log
from towersearch.data.importers.crowdflower import import_crowdflower, judgements_to_log
from towersearch.errors import ConfigError, DataError


def test_judgements_to_log_engages_more_with_better_grades():
    events = judgements_to_log({"milk": {"a": 3, "b": 2, "c": 1, "d": 0}, "tea": {"e": 3}})
    by_pair: dict[tuple[str, str], set[str]] = {}
    for e in events:
        by_pair.setdefault((e.query, e.product_id), set()).add(e.event)
    assert by_pair[("milk", "a")] == {"impression", "click", "add_to_cart", "purchase"}
    assert by_pair[("milk", "b")] == {"impression", "click", "add_to_cart"}
    assert by_pair[("milk", "c")] == {"impression", "click"}
    assert by_pair[("milk", "d")] == {"impression"}
    assert sorted({e.position for e in events if e.query == "milk"}) == [1, 2, 3, 4]
    assert judgements_to_log({"x": {"a": 6}}, max_grade=6)[-1].event == "purchase"


def test_import_crowdflower_splits_queries(tmp_path):
    summary = import_crowdflower(shared_data("crowdflower"), tmp_path, seed=0)
    assert summary["queries"] == 261 and summary["train_queries"] + summary["test_queries"] == 261
    catalog = load_catalog(tmp_path / "catalog.csv")
    events, _ = load_log(tmp_path / "log.csv", product_ids=set(catalog.ids))
    judged, _ = load_judgements(tmp_path / "judgements.csv", product_ids=set(catalog.ids))
    assert len(judged) == summary["test_queries"]
    assert not {e.query for e in events} & set(judged), "training and held-out queries must not overlap"
    assert max(g for q in judged.values() for g in q.values()) == 3.0
    assert import_crowdflower(shared_data("crowdflower"), tmp_path / "again", seed=0) == summary


def test_import_crowdflower_errors(tmp_path):
    bad = tmp_path / "train.csv"
    bad.write_text("query,product_title,product_description,median_relevance\nmilk,Milk,,7\n")
    with pytest.raises(DataError, match=r"train\.csv, line 2, field .median_relevance.: median_relevance must be 1-4"):
        import_crowdflower(tmp_path, tmp_path / "out")
    with pytest.raises(ConfigError, match="train_share must be between 0 and 1"):
        import_crowdflower(bad, tmp_path / "out", train_share=1.0)

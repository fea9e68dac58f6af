"""The event store on the command line: export, analytics, and as the log of validate / index / train."""

import json

import pytest

from towersearch.data import load_log
from towersearch.events import EventStore


def fill(path):
    with EventStore(path) as store:
        for query, shown, clicked in (("milk", ["p1", "p2"], "p1"), ("milk", ["p1"], None), ("bread", [], None)):
            sid = store.record_search(query, shown, mode="hybrid")
            if clicked:
                store.add_events([{"search_id": sid, "product_id": clicked, "event": "click"}])
        sid = store.record_search("tortilla", ["p4", "gone"])
        store.add_events([{"search_id": sid, "product_id": "gone", "event": "purchase"}])


def test_export_analytics_and_the_store_as_a_log(tmp_path, tiny_store, cli_json):
    db = tmp_path / "events.db"
    fill(db)
    exported = cli_json("events", "export", db, tmp_path / "log.csv", "--json")
    assert exported["rows"] == 6 and exported["searches"] == 4
    events, _ = load_log(tmp_path / "log.csv")
    counts = {(e.query, e.product_id, e.event): e.count for e in events}
    assert counts[("milk", "p1", "impression")] == 2 and counts[("milk", "p1", "click")] == 1

    report = cli_json("analytics", db, "--out", tmp_path / "report", "--json")
    assert report["totals"]["searches"] == 4
    assert json.loads((tmp_path / "report" / "analytics.json").read_text()) == report
    assert (tmp_path / "report" / "analytics.png").read_bytes().startswith(b"\x89PNG")

    # the store is a log: its rows about a product the catalogue lacks are errors, or skipped on request
    with pytest.raises(AssertionError, match="unknown product 'gone'"):
        cli_json("validate", "--catalog", tiny_store["catalog"], "--log", db, "--json")
    checked = cli_json("validate", "--catalog", tiny_store["catalog"], "--log", db, "--skip-bad-rows", "--json")
    assert checked["log"]["skipped"] == {"unknown_product": 2}
    assert checked["log"]["events"] == {"click": 1, "impression": 4}

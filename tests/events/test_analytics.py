import json

import pytest

from towersearch.errors import ConfigError
from towersearch.events import EventError, EventStore, analytics, save_chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path):
    """A hand-made month of searches (all on 2026-03-01 but one), with the numbers worked out in the tests.

    milk       3 searches: S1 shows p1 p2, click p1 + add_to_cart p1; S2 shows p1, click p1; S3 shows p2, nothing
    oat milk   2 searches, both without results
    pop        2 searches: S8 without results; S9 shows p5, two clicks on p5 (one clicked search)
    tortillas  2 searches: S6 shows p3, nothing; S7 shows p3 p4, a purchase of p4 without a click
    plus an autocomplete request (never counted) and an older milk search outside the window.
    """
    with EventStore(tmp_path / "events.db", retention_days=None) as opened:
        minute = iter(range(60))

        def search(query, shown, **kwargs):
            return opened.record_search(query, shown, timestamp=f"2026-03-01T10:{next(minute):02d}:00Z", **kwargs)

        s1 = search("Milk", ["p1", "p2"])
        s2 = search("milk", ["p1"])
        search("milk ", ["p2"])
        search("oat milk", [])
        search("Oat  Milk", [])
        search("tortillas", ["p3"])
        s7 = search("tortillas", ["p3", "p4"])
        search("pop", [])
        s9 = search("pop", ["p5"])
        suggest = search("mi", ["milk", "mint"], kind="suggest")
        old = opened.record_search("milk", ["p1"], timestamp="2026-01-15T10:00:00Z")
        opened.add_events(
            [
                {"search_id": s1, "product_id": "p1", "event": "click"},
                {"search_id": s1, "product_id": "p1", "event": "add_to_cart"},
                {"search_id": s2, "product_id": "p1", "event": "click"},
                {"search_id": s7, "product_id": "p4", "event": "purchase"},
                {"search_id": s9, "product_id": "p5", "event": "click"},
                {"search_id": s9, "product_id": "p5", "event": "click"},
                {"search_id": suggest, "product_id": "milk", "event": "click"},
                {"search_id": old, "product_id": "p1", "event": "purchase"},
            ]
        )
        yield opened


def test_analytics_on_a_hand_made_example(store):
    report = analytics(store, since="2026-03-01T00:00:00Z", until="2026-04-01T00:00:00Z", top=20)
    assert report["window"] == {"since": "2026-03-01T00:00:00Z", "until": "2026-04-01T00:00:00Z"}
    assert report["totals"] == {
        "searches": 9,
        "queries": 4,
        "no_result_searches": 3,  # oat milk x2, pop x1
        "clicked_searches": 3,  # S1, S2, S9
        "converted_searches": 2,  # S1 (add_to_cart), S7 (purchase)
        "ctr": 3 / 9,
        "conversion": 2 / 9,
        "impressions": 8,  # 2 + 1 + 1 + 1 + 2 + 1
        "clicks": 4,
        "add_to_cart": 1,
        "purchases": 1,
    }
    assert report["top_queries"] == [
        {"query": "milk", "searches": 3, "no_result_searches": 0, "clicked_searches": 2, "converted_searches": 1,
         "ctr": 2 / 3, "conversion": 1 / 3},
        {"query": "oat milk", "searches": 2, "no_result_searches": 2, "clicked_searches": 0, "converted_searches": 0,
         "ctr": 0.0, "conversion": 0.0},
        {"query": "pop", "searches": 2, "no_result_searches": 1, "clicked_searches": 1, "converted_searches": 0,
         "ctr": 0.5, "conversion": 0.0},
        {"query": "tortillas", "searches": 2, "no_result_searches": 0, "clicked_searches": 0, "converted_searches": 1,
         "ctr": 0.0, "conversion": 0.5},
    ]  # fmt: skip
    assert report["no_results"] == [{"query": "oat milk", "searches": 2}, {"query": "pop", "searches": 1}]
    assert report["no_clicks"] == [{"query": "tortillas", "searches": 2}]
    assert json.loads(json.dumps(report)) == report


def test_the_window_and_top_limit(store):
    everything = analytics(store)
    assert everything["window"] == {"since": None, "until": None}
    assert everything["totals"]["searches"] == 10 and everything["totals"]["purchases"] == 2
    assert everything["top_queries"][0] == {
        "query": "milk",
        "searches": 4,
        "no_result_searches": 0,
        "clicked_searches": 2,
        "converted_searches": 2,
        "ctr": 0.5,
        "conversion": 0.5,
    }
    limited = analytics(store, top=2)
    assert [q["query"] for q in limited["top_queries"]] == ["milk", "oat milk"]
    assert len(limited["no_results"]) == 2
    empty = analytics(store, since="2027-01-01")
    assert empty["totals"]["searches"] == 0 and empty["totals"]["ctr"] == 0.0
    assert empty["top_queries"] == empty["no_results"] == empty["no_clicks"] == []
    with pytest.raises(ConfigError, match="top must be a whole number >= 1"):
        analytics(store, top=0)
    with pytest.raises(EventError, match=r"^since: "):
        analytics(store, since="soon")


def test_save_chart_writes_a_png(store, tmp_path):
    path = save_chart(analytics(store), tmp_path / "charts" / "top.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert [p.name for p in path.parent.iterdir()] == ["top.png"]  # no temporary file left
    empty = save_chart(analytics(store, since="2027-01-01"), tmp_path / "empty.png")
    assert empty.read_bytes().startswith(PNG_SIGNATURE)

import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from towersearch.data import load_log
from towersearch.errors import ArtifactError, ConfigError, DataError
from towersearch.events import SCHEMA_VERSION, EventError, EventStore, is_event_store
from towersearch.events.store import APPLICATION_ID

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def store(tmp_path):
    with EventStore(tmp_path / "events.db") as opened:
        yield opened


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_new_store_creates_the_schema_and_reopens(tmp_path):
    path = tmp_path / "sub" / "events.db"
    with EventStore(path) as store:
        assert store.counts() == {"searches": 0, "suggests": 0, "impressions": 0, "events": 0}
        assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store._connection().execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"searches", "impressions", "events"}
    conn.close()
    assert is_event_store(path)
    with EventStore(path, durable=False) as again:
        assert again._connection().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        again.record_search("milk", ["p1"])
    with EventStore(path, create=False) as again:
        assert again.counts()["searches"] == 1


def test_record_search_and_events_round_trip(store):
    search_id = store.record_search(
        "  Organic MILK ", ["p1", "p2", "p3"], mode="hybrid", session_id="s1", timestamp="2026-03-01T12:00:00+02:00"
    )
    assert len(search_id) == 32 and int(search_id, 16) >= 0
    stored = store.add_events(
        [
            {"search_id": search_id, "product_id": "p2", "event": "click"},
            {"search_id": search_id, "product_id": "p2", "event": "add_to_cart", "position": 7, "session_id": "s9"},
            {"search_id": search_id, "product_id": "p3", "event": "purchase", "timestamp": "2026-03-01T10:05:00.5Z"},
        ]
    )
    assert stored == 3
    search = store.get_search(search_id)
    assert search["kind"] == "search" and search["mode"] == "hybrid"
    assert search["query"] == "  Organic MILK " and search["normalized_query"] == "organic milk"
    assert search["timestamp"] == "2026-03-01T10:00:00Z" and search["session_id"] == "s1"
    assert search["shown"] == ["p1", "p2", "p3"]
    click, cart, purchase = search["events"]
    assert click["position"] == 2 and click["session_id"] == "s1"  # filled from the impression and the search
    assert cart["position"] == 7 and cart["session_id"] == "s9"  # given values are kept
    assert purchase["position"] == 3 and purchase["timestamp"] == "2026-03-01T10:05:00Z"
    assert store.get_search("0" * 32) is None
    assert store.counts() == {"searches": 1, "suggests": 0, "impressions": 3, "events": 3}
    assert store.add_events([]) == 0


def test_default_timestamps_are_now_in_utc(store):
    before = datetime.now(UTC).replace(microsecond=0)
    search_id = store.record_search("milk", ["p1"])
    store.add_events([{"search_id": search_id, "product_id": "p1", "event": "click"}])
    search = store.get_search(search_id)
    for stamp in (search["timestamp"], search["events"][0]["timestamp"]):
        assert stamp.endswith("Z") and len(stamp) == 20
        assert before <= datetime.fromisoformat(stamp) <= datetime.now(UTC)


def test_suggest_requests_store_their_texts_and_take_any_event(store):
    search_id = store.record_search("mi", ["milk", "mint tea"], kind="suggest")
    assert store.add_events([{"search_id": search_id, "product_id": "mint tea", "event": "click"}]) == 1
    assert store.add_events([{"search_id": search_id, "product_id": "p9", "event": "click"}]) == 1
    search = store.get_search(search_id)
    assert search["kind"] == "suggest" and search["shown"] == ["milk", "mint tea"]
    assert [e["position"] for e in search["events"]] == [2, None]
    assert store.counts() == {"searches": 0, "suggests": 1, "impressions": 2, "events": 2}


BAD_ITEMS = [
    ({"search_id": "ab12cd", "product_id": "p1", "event": "click"}, "search_id", r"unknown search 'ab12cd'"),
    ({"product_id": "p1", "event": "click"}, "search_id", "missing"),
    ({"product_id": "p9", "event": "click"}, "product_id", r"product 'p9' was not shown by search"),
    ({"product_id": "", "event": "click"}, "product_id", "missing"),
    ({"product_id": "p1", "event": "like"}, "event", r"unknown event 'like'; allowed: click, add_to_cart, purchase"),
    ({"product_id": "p1", "event": "impression"}, "event", r"unknown event 'impression'; .* \(impressions are"),
    ({"product_id": "p1", "event": "click", "position": 0}, "position", r"expected a whole number >= 1, got 0"),
    ({"product_id": "p1", "event": "click", "position": "2"}, "position", r"expected a whole number >= 1, got '2'"),
    ({"product_id": "p1", "event": "click", "position": True}, "position", "expected a whole number >= 1, got True"),
    ({"product_id": "p1", "event": "click", "timestamp": "yesterday"}, "timestamp", r"'yesterday' is not an ISO-8601"),
    ({"product_id": "p1", "event": "click", "session_id": 7}, "session_id", "expected text"),
    ({"product_id": "p1", "event": "click", "qty": 2}, "qty", "unknown field; allowed: search_id, product_id"),
]


@pytest.mark.parametrize(("bad", "field", "message"), BAD_ITEMS)
def test_a_batch_with_one_bad_item_stores_nothing(store, bad, field, message):
    search_id = store.record_search("milk", ["p1", "p2"])
    good = {"search_id": search_id, "product_id": "p1", "event": "click"}
    bad = {"search_id": search_id, **bad} if "search_id" not in bad and field != "search_id" else bad
    batch = [good, dict(good, event="purchase"), bad, good]
    with pytest.raises(EventError, match=rf"^events\[2\]\.{field}: {message}") as caught:
        store.add_events(batch)
    assert caught.value.index == 2 and caught.value.field == field
    assert isinstance(caught.value, DataError)
    assert store.counts()["events"] == 0
    assert store.add_events([good]) == 1  # the store still works after the rollback


def test_batch_errors_name_the_first_bad_item(store):
    search_id = store.record_search("milk", ["p1"])
    with pytest.raises(EventError, match=r"^events\[1\]: expected an object") as caught:
        store.add_events([{"search_id": search_id, "product_id": "p1", "event": "click"}, "click", None])
    assert caught.value.index == 1 and caught.value.field is None
    with pytest.raises(EventError, match="expected a list of events"):
        store.add_events({"search_id": search_id})
    long_id = "x" * 100
    with pytest.raises(EventError, match=r"unknown search 'x+…$"):
        store.add_events([{"search_id": long_id, "product_id": "p1", "event": "click"}])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "   "}, r"^query: empty query"),
        ({"query": 5}, r"^query: expected text"),
        ({"kind": "browse"}, r"^kind: unknown kind 'browse'; allowed: search, suggest"),
        ({"product_ids": "p1"}, r"^product_ids: must be a list"),
        ({"product_ids": ["p1", " "]}, r"^product_ids\[1\]: expected a non-empty text"),
        ({"timestamp": "2026-13-01"}, r"^timestamp: '2026-13-01' is not an ISO-8601 time"),
        ({"session_id": None}, r"^session_id: expected text"),
    ],
)
def test_record_search_rejects_bad_arguments(store, kwargs, message):
    args = {"query": "milk", "product_ids": ["p1"], **kwargs}
    with pytest.raises(EventError, match=message) as caught:
        store.record_search(args.pop("query"), args.pop("product_ids"), **args)
    assert caught.value.index is None
    assert store.counts()["searches"] == 0


def test_eight_threads_lose_nothing(store):
    per_thread, errors, ids = 20, [], []
    lock = threading.Lock()

    def work(worker: int) -> None:
        try:
            for i in range(per_thread):
                products = [f"p{worker}-{i}-{k}" for k in range(5)]
                search_id = store.record_search(f"query {i % 7}", products, session_id=f"w{worker}")
                store.add_events(
                    [
                        {"search_id": search_id, "product_id": products[1], "event": "click"},
                        {"search_id": search_id, "product_id": products[1], "event": "purchase"},
                    ]
                )
                with lock:
                    ids.append(search_id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(ids)) == 8 * per_thread
    assert store.counts() == {"searches": 160, "suggests": 0, "impressions": 800, "events": 320}
    assert all(len(store.get_search(search_id)["events"]) == 2 for search_id in ids[::17])


def test_data_survives_close_and_a_killed_process(tmp_path):
    path = tmp_path / "events.db"
    with EventStore(path) as store:
        search_id = store.record_search("milk", ["p1"])
        store.add_events([{"search_id": search_id, "product_id": "p1", "event": "click"}])
    with EventStore(path) as store:
        assert store.get_search(search_id)["events"][0]["event"] == "click"
    # a process that ends without closing anything: what its methods acknowledged is there
    script = (
        "import os, sys\n"
        "from towersearch.events import EventStore\n"
        "store = EventStore(sys.argv[1])\n"
        "sid = store.record_search('oat milk', ['p2', 'p3'])\n"
        "store.add_events([{'search_id': sid, 'product_id': 'p3', 'event': 'add_to_cart'}])\n"
        "print(sid, flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC)},
    )
    killed_id = done.stdout.strip()
    with EventStore(path) as store:
        assert store.get_search(killed_id)["events"][0]["position"] == 2
        assert store.counts()["searches"] == 2


def test_a_second_connection_can_read_and_write_meanwhile(tmp_path):
    path = tmp_path / "events.db"
    first = EventStore(path)
    first.record_search("milk", ["p1"])
    reader = raw(path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM searches").fetchone()[0] == 1  # holds a read snapshot
    second = EventStore(path, timeout=2)
    search_id = second.record_search("bread", ["p2"])  # WAL: a reader does not block the writer
    first.add_events([{"search_id": search_id, "product_id": "p2", "event": "click"}])
    assert reader.execute("SELECT count(*) FROM searches").fetchone()[0] == 1  # its snapshot is unchanged
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM searches").fetchone()[0] == 2
    assert first.counts() == second.counts() == {"searches": 2, "suggests": 0, "impressions": 2, "events": 1}
    reader.close()
    second.close()
    first.close()


def test_purge_removes_searches_older_than_the_retention(tmp_path, monkeypatch):
    monkeypatch.setattr("towersearch.events.store._PURGE_BATCH", 1)  # one search per transaction: the loop runs
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    with EventStore(tmp_path / "events.db", retention_days=30) as store:
        old = store.record_search("milk", ["p1", "p2"], timestamp="2026-04-01T00:00:00Z")
        store.add_events([{"search_id": old, "product_id": "p1", "event": "click"}])
        store.record_search("mi", ["milk"], kind="suggest", timestamp="2026-05-01T11:59:59Z")
        edge = store.record_search("bread", ["p3"], timestamp="2026-05-02T12:00:00Z")
        new = store.record_search("oat milk", ["p4"], timestamp="2026-05-31T00:00:00Z")
        store.add_events([{"search_id": new, "product_id": "p4", "event": "purchase"}])
        assert store.purge(now) == 2
        assert store.get_search(old) is None and store.get_search(edge) is not None
        assert store.counts() == {"searches": 2, "suggests": 0, "impressions": 2, "events": 1}
        assert store.purge(now) == 0
        with pytest.raises(EventError, match="unknown search"):
            store.add_events([{"search_id": old, "product_id": "p1", "event": "click"}])
    with EventStore(tmp_path / "events.db", retention_days=None) as store:
        assert store.purge(datetime(2100, 1, 1)) == 0
        assert store.counts()["searches"] == 2
    with pytest.raises(ConfigError, match="retention_days"):
        EventStore(tmp_path / "events.db", retention_days=0)


def record_example(store: EventStore) -> None:
    """milk x2 (one click on p1, one add_to_cart of p2), Milk x1 (nothing), tortillas x1 (no results)."""
    a = store.record_search("milk", ["p1", "p2"], timestamp="2026-02-01T10:00:00Z")
    b = store.record_search("Milk ", ["p2", "p1"], timestamp="2026-02-02T10:00:00Z")
    store.record_search("MILK", ["p1"], timestamp="2026-02-03T10:00:00Z")
    store.record_search("tortillas", [], timestamp="2026-02-04T10:00:00Z")
    store.record_search("mi", ["milk"], kind="suggest", timestamp="2026-02-02T10:00:00Z")
    store.add_events(
        [
            {"search_id": a, "product_id": "p1", "event": "click"},
            {"search_id": a, "product_id": "p1", "event": "click"},
            {"search_id": b, "product_id": "p2", "event": "click"},
            {"search_id": b, "product_id": "p2", "event": "add_to_cart"},
        ]
    )


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_export_reads_back_with_load_log_and_the_recorded_counts(store, tmp_path, suffix):
    record_example(store)
    out = tmp_path / f"log{suffix}"
    assert store.export_log(out) == 5
    events, report = load_log(out, product_ids={"p1", "p2"})
    assert report.rows == report.loaded == 5
    counts = {(e.query, e.product_id, e.event): e.count for e in events}
    assert counts == {
        ("milk", "p1", "impression"): 3,
        ("milk", "p2", "impression"): 2,
        ("milk", "p1", "click"): 2,
        ("milk", "p2", "click"): 1,
        ("milk", "p2", "add_to_cart"): 1,
    }
    assert [(e.product_id, e.event) for e in events][:3] == [
        ("p1", "impression"),
        ("p1", "click"),
        ("p2", "impression"),
    ]
    assert all(e.position is None and e.session_id == "" and e.timestamp == "" for e in events)
    assert list(store.iter_log_events()) == events


def test_export_window_selects_searches_by_their_time(store, tmp_path):
    record_example(store)
    window = list(store.iter_log_events(since="2026-02-02T10:00:00Z", until="2026-02-03T10:00:00Z"))
    assert {(e.product_id, e.event): e.count for e in window} == {
        ("p1", "impression"): 1,
        ("p2", "impression"): 1,
        ("p2", "click"): 1,
        ("p2", "add_to_cart"): 1,
    }
    assert store.export_log(tmp_path / "empty.csv", since=datetime(2027, 1, 1)) == 0
    with pytest.raises(EventError, match=r"^until: .* is not after since"):
        list(store.iter_log_events(since="2026-02-02", until="2026-02-01"))
    with pytest.raises(EventError, match=r"^since: 'last week' is not an ISO-8601 time"):
        store.export_log(tmp_path / "x.csv", since="last week")


def test_files_that_are_not_event_stores_are_refused(tmp_path):
    text = tmp_path / "log.csv"
    text.write_text("query,product_id,event\nmilk,p1,click\n", encoding="utf-8")
    assert not is_event_store(text) and not is_event_store(tmp_path / "missing.db")
    with pytest.raises(ArtifactError, match="not a towersearch event store"):
        EventStore(text)
    assert text.read_text(encoding="utf-8").startswith("query,")

    other = tmp_path / "other.db"
    conn = raw(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    assert is_event_store(other)  # the header check alone cannot tell; opening does
    with pytest.raises(ArtifactError, match="an SQLite database but not a towersearch event store"):
        EventStore(other)
    conn = raw(other)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # left as it was
    conn.close()

    newer = tmp_path / "newer.db"
    EventStore(newer).close()
    conn = raw(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ArtifactError, match=rf"schema version {SCHEMA_VERSION + 1}, written by a newer towersearch"):
        EventStore(newer)

    with pytest.raises(ArtifactError, match="no event store at"):
        EventStore(tmp_path / "missing.db", create=False)
    with pytest.raises(ArtifactError, match="is a folder"):
        EventStore(tmp_path)


def test_a_closed_store_refuses_work(tmp_path):
    store = EventStore(tmp_path / "events.db")
    store.close()
    with pytest.raises(ArtifactError, match="is closed"):
        store.record_search("milk", ["p1"])

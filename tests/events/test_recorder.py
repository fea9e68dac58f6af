import threading

import pytest

from towersearch.events import EventError, EventStore
from towersearch.events.recorder import SearchRecorder


@pytest.fixture
def store(tmp_path):
    with EventStore(tmp_path / "events.db") as opened:
        yield opened


def test_queued_searches_are_committed_in_groups_and_found_by_events(store):
    recorder = SearchRecorder(store, max_batch=7)
    ids: list[str] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(25):
            sid = recorder.record(f"query {t} {i}", [f"p{i}", f"p{i + 1}"], mode="hybrid")
            with lock:
                ids.append(sid)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert recorder.flush(timeout=10)
    assert store.counts()["searches"] == 200 and store.counts()["impressions"] == 400
    assert len(set(ids)) == 200
    # an event on a search answered a moment ago: flush, then it is known
    sid = recorder.record("milk", ["p1", "p2"])
    assert recorder.flush()
    assert store.add_events([{"search_id": sid, "product_id": "p2", "event": "click"}]) == 1
    assert store.get_search(sid)["query"] == "milk"
    recorder.close()
    assert recorder.failures == 0


def test_bad_search_is_refused_at_once_and_close_drains_the_queue(store):
    recorder = SearchRecorder(store)
    with pytest.raises(EventError, match="empty query"):
        recorder.record("  ", ["p1"])
    for i in range(50):
        recorder.record(f"q{i}", ["p1"])
    recorder.close()
    assert store.counts()["searches"] == 50
    with pytest.raises(RuntimeError, match="closed"):
        recorder.record("milk", ["p1"])


def test_a_failed_write_is_counted_and_does_not_hang_flush(store, monkeypatch):
    recorder = SearchRecorder(store)

    def broken(batch):
        raise OSError("disk full")

    monkeypatch.setattr(store, "write_searches", broken)
    recorder.record("milk", ["p1"])
    assert recorder.flush(timeout=5)
    assert recorder.failures == 1
    recorder.close()


def test_searches_one_after_another_gather_into_one_commit_and_flush_cuts_the_wait_short(store, monkeypatch):
    recorder = SearchRecorder(store, linger=30)  # a long window: only flush() and close() end it early
    batches: list[int] = []
    write = store.write_searches

    def counted(batch):
        batches.append(len(batch))
        write(batch)

    monkeypatch.setattr(store, "write_searches", counted)
    sids = [recorder.record(f"q{i}", ["p1", "p2"]) for i in range(5)]
    assert recorder.flush(timeout=10)  # well before the 30 s window ends
    assert batches == [5]
    assert store.get_search(sids[-1])["query"] == "q4"
    recorder.record("milk", ["p1"])
    recorder.close()  # does not wait out the window either
    assert batches == [5, 1] and store.counts()["searches"] == 6
    with pytest.raises(ValueError, match="linger"):
        SearchRecorder(store, linger=-1)

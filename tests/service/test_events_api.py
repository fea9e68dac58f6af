"""Search events through the service: search ids, impressions, POST /events, analytics."""

import pytest
from fastapi.testclient import TestClient

from towersearch.events import EventStore
from towersearch.service.app import create_app
from towersearch.service.settings import Settings

TOKEN = {"X-Admin-Token": "s3cret"}


@pytest.fixture
def client(tiny_index, tmp_path):
    settings = Settings(index_dir=tiny_index, admin_token="s3cret", events_path=tmp_path / "ev" / "events.db")
    with TestClient(create_app(settings)) as client:
        yield client


def test_searches_are_recorded_with_what_they_showed(client, tmp_path):
    body = client.get("/search", params={"q": "milk", "k": 3, "session_id": "s1"}).json()
    shown = [r["product_id"] for r in body["results"]]
    assert len(body["search_id"]) == 32 and shown
    suggest = client.get("/suggest", params={"prefix": "mi"}).json()
    assert suggest["search_id"] and suggest["search_id"] != body["search_id"]
    click = {"search_id": body["search_id"], "product_id": shown[-1], "event": "click"}
    cart = {**click, "event": "add_to_cart", "position": 1, "timestamp": "2026-11-30T10:00:00+01:00"}
    response = client.post("/events", json={"events": [click, cart]})
    assert response.status_code == 200 and response.json() == {"stored": 2}
    with EventStore(tmp_path / "ev" / "events.db", create=False) as store:
        search = store.get_search(body["search_id"])
    assert search["shown"] == shown and search["mode"] == body["mode"] and search["session_id"] == "s1"
    assert [(e["event"], e["position"]) for e in search["events"]] == [("click", len(shown)), ("add_to_cart", 1)]
    assert search["events"][1]["timestamp"] == "2026-11-30T09:00:00Z"


@pytest.mark.parametrize(
    ("item", "field", "text"),
    [
        ({"search_id": "0" * 32, "product_id": "p1", "event": "click"}, "search_id", "unknown search"),
        ({"product_id": "p1", "event": "click"}, "search_id", "search_id"),
        ({"event": "wish"}, "event", "unknown event"),
        ({"product_id": "nope"}, "product_id", "nope"),
        ({"position": 0}, "position", "position"),
    ],
)
def test_a_bad_event_is_a_422_naming_item_and_field_and_nothing_is_stored(client, tmp_path, item, field, text):
    body = client.get("/search", params={"q": "milk", "k": 3}).json()
    good = {"search_id": body["search_id"], "product_id": body["results"][0]["product_id"], "event": "click"}
    bad = {**good, **item} if "search_id" in item or field != "search_id" else item
    response = client.post("/events", json={"events": [good, bad]})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["index"] == 1 and answer["field"] == field and text in answer["detail"]
    with EventStore(tmp_path / "ev" / "events.db", create=False) as store:
        assert store.counts()["events"] == 0


def test_event_batches_are_bounded(tiny_index, tmp_path):
    settings = Settings(index_dir=tiny_index, events_path=tmp_path / "events.db", max_event_batch=2)
    with TestClient(create_app(settings)) as client:
        response = client.post("/events", json={"events": [{}] * 3})
    assert response.status_code == 422 and "at most 2 events" in response.json()["detail"]


def test_recording_off(tiny_index):
    with TestClient(create_app(Settings(index_dir=tiny_index, record_events=False))) as client:
        assert client.get("/search", params={"q": "milk"}).json()["search_id"] is None
        response = client.post("/events", json={"events": []})
    assert response.status_code == 409 and "recording is off" in response.json()["detail"]
    assert not (tiny_index / "events.db").exists()


def test_default_store_is_in_the_index_folder(tiny_index):
    with TestClient(create_app(Settings(index_dir=tiny_index))) as client:
        client.get("/search", params={"q": "milk"})
    assert (tiny_index / "events.db").is_file()


def test_analytics_counts_searches_answered_a_moment_ago(client):
    # no POST /events in between: the report itself waits for the writer's pending commit
    client.app.state.events.recorder.linger = 30.0
    for q in ("tea", "tea", "coffee"):
        client.get("/search", params={"q": q})
    report = client.get("/admin/analytics", headers=TOKEN).json()
    assert {row["query"]: row["searches"] for row in report["top_queries"]} == {"tea": 2, "coffee": 1}


def test_analytics_needs_the_admin_token_and_reports(client):
    for q in ("milk", "milk", "bread"):
        body = client.get("/search", params={"q": q}).json()
    click = {"search_id": body["search_id"], "product_id": body["results"][0]["product_id"], "event": "click"}
    client.post("/events", json={"events": [click]})
    assert client.get("/admin/analytics").status_code == 403
    report = client.get("/admin/analytics", headers=TOKEN).json()
    top = {row["query"]: row["searches"] for row in report["top_queries"]}
    assert top == {"milk": 2, "bread": 1}
    png = client.get("/admin/analytics", params={"format": "png"}, headers=TOKEN)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert client.get("/admin/analytics", params={"since": "yesterday"}, headers=TOKEN).status_code == 400

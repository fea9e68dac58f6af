"""POST /admin/reload: swaps in a rebuilt index, keeps the old one on any failure to load, one reload at a time."""

import logging
import shutil
import threading
import time

import pytest
from fastapi.testclient import TestClient

from towersearch.index.generations import CURRENT, current_generation
from towersearch.service import app as app_module
from towersearch.service.app import create_app
from towersearch.service.settings import Settings

TOKEN = {"X-Admin-Token": "s3cret"}


@pytest.fixture
def served(tiny_index, tmp_path):
    """A copy of the tiny index, served by the app, so a test can break or replace it."""
    folder = tmp_path / "served"
    shutil.copytree(tiny_index, folder)
    return folder


@pytest.fixture
def client(served):
    with TestClient(create_app(Settings(index_dir=served, admin_token="s3cret"))) as client:
        yield client


def product_ids(client, query, mode="lexical"):
    response = client.get("/search", params={"q": query, "k": 10, "mode": mode})
    assert response.status_code == 200
    return {r["product_id"] for r in response.json()["results"]}


def test_reload_serves_the_rebuilt_index(client, served, build_tiny_index):
    before = client.get("/healthz").json()
    assert before["products"] == 6 and before["generation"] == current_generation(served).name
    assert client.get("/products/p6").status_code == 200
    assert "p6" in product_ids(client, "macaroni cheese")
    build_tiny_index(served, drop=("p6",))  # a new generation of the served folder, as `towersearch index --out`
    generation = current_generation(served).name
    assert generation != before["generation"]
    assert client.get("/healthz").json() == before, "still the old generation until the reload"
    response = client.post("/admin/reload", headers=TOKEN)
    assert response.status_code == 200, response.text
    assert response.json()["products"] == 5 and response.json()["generation"] == generation
    health = client.get("/healthz").json()
    assert health["products"] == 5 and health["index"] == "served" and health["generation"] == generation
    assert client.get("/products/p6").status_code == 404
    assert "p6" not in product_ids(client, "macaroni cheese")
    assert product_ids(client, "milk", mode="hybrid") <= {"p1", "p2", "p3", "p4", "p5"}


def _delete(path):
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _garbage(path):
    path.write_bytes(b"\x00not what it should be\xff" * 8)


@pytest.mark.parametrize(
    ("name", "damage", "text"),
    [
        ("head_queries.npy", _delete, "head_queries.npy is missing"),
        ("suggest_config.json", _delete, "suggest_config.json is missing"),
        ("products.parquet", _delete, "products.parquet is missing"),
        ("manifest.json", _delete, None),
        ("manifest.json", lambda p: p.write_text("{broken"), None),
        ("suggest_config.json", lambda p: p.write_text("{broken"), "malformed JSON"),
        ("suggest.jsonl", lambda p: p.write_text("not json\n"), "malformed JSON"),
        ("ann.faiss", _garbage, None),
        ("embeddings.npy", _garbage, None),
        ("head_queries.npy", _garbage, None),
        ("products.parquet", _garbage, None),
        ("model", _delete, "model folder"),
        (f"../../{CURRENT}", lambda p: p.write_text("../elsewhere\n"), "does not name a generation"),
        (f"../../{CURRENT}", lambda p: p.write_text("20990101T000000000000Z-abcdef\n"), "is missing"),
    ],
)
def test_failed_reload_is_409_and_keeps_the_old_index(client, served, caplog, name, damage, text):
    before = client.get("/healthz").json()
    damage(current_generation(served) / name)
    with caplog.at_level(logging.ERROR, logger="towersearch.service.app"):
        failed = client.post("/admin/reload", headers=TOKEN)
    assert failed.status_code == 409, failed.text
    detail = failed.json()["detail"]
    assert detail.startswith("reload failed, still serving the previous index: ")
    if text is not None:
        assert text in detail
    assert "reload of" in caplog.text and "failed" in caplog.text
    assert client.get("/healthz").json() == before
    assert "p1" in product_ids(client, "milk", mode="hybrid")
    assert client.get("/suggest", params={"prefix": "mil"}).status_code == 200


def test_concurrent_reloads_are_serialised(client, monkeypatch):
    load = app_module.load_engine
    active, most = [0], [0]
    guard = threading.Lock()

    def slow_load(settings):
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.3)
            return load(settings)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(app_module, "load_engine", slow_load)
    statuses = []
    threads = [
        threading.Thread(target=lambda: statuses.append(client.post("/admin/reload", headers=TOKEN).status_code))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200, 200, 200]
    assert most[0] == 1, "two reloads loaded an engine at the same time"


class _Engine:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_a_replaced_engine_is_closed_once_its_requests_are_done_and_all_at_shutdown():
    first, second, third = _Engine(), _Engine(), _Engine()
    holder = app_module.EngineHolder(first, retire_after=0.2)
    holder.swap(second)
    assert holder.engine is second and first.closed == 0  # requests that started on it may still be running
    deadline = time.monotonic() + 10
    while not first.closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.closed == 1 and second.closed == 0
    holder.retire_after = 60
    holder.swap(third)
    holder.close()  # shutdown: the retiring engine now, not in a minute, and the live one
    assert (first.closed, second.closed, third.closed) == (1, 1, 1)
    time.sleep(0.3)
    assert (first.closed, second.closed, third.closed) == (1, 1, 1)  # each closed once


def test_reload_closes_the_replaced_engine(client, monkeypatch):
    holder = client.app.state.holder
    holder.retire_after = 0.05
    old = holder.engine
    closed = []
    monkeypatch.setattr(old, "close", lambda: closed.append(old), raising=False)
    assert client.post("/admin/reload", headers=TOKEN).status_code == 200
    assert holder.engine is not old
    deadline = time.monotonic() + 10
    while not closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert closed == [old]
    assert client.get("/search", params={"q": "milk"}).status_code == 200  # the new engine serves on

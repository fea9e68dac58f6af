"""The ITEMS loop: replayed shoppers fill the event store, refresh retrains, builds, gates and switches (or not)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from towersearch.data import Catalog, write_catalog
from towersearch.data.demo import DemoConfig, build_demo_store
from towersearch.data.demo.replay import ReplayConfig, replay
from towersearch.errors import ConfigError, ServiceError
from towersearch.events import EventStore, analytics
from towersearch.index.generations import GENERATIONS, current_generation, generations
from towersearch.loop import RefreshConfig, gate_decision, hold_out_gate, refresh

DEMO = DemoConfig(n_products=100, n_searches=100, seed=5)
TOKEN = "s3cret"


@pytest.fixture(autouse=True)
def no_admin_token(monkeypatch):
    for name in ("TOWERSEARCH_ADMIN_TOKEN", "TOWERSEARCH_ADMIN_TOKEN_FILE", "TOWERSEARCH_RECORD_EVENTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def distinct_model_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model as towersearch saves trained towers: distinct (the query tower nudged off the product tower),
    with ``towersearch.json``."""
    import torch

    from towersearch.encoders import export_onnx
    from towersearch.model import MODEL_META, load_model, text_config_dict
    from towersearch.search.hybrid import Fusion
    from towersearch.text import TextConfig
    from towersearch.training.towers import tower_parameters, untie

    torch.manual_seed(1)
    model = untie(load_model(tiny_model_dir))
    with torch.no_grad():
        for p in tower_parameters(model)[0]:
            p.add_(0.01 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("distinct") / "towers"
    model.save(str(folder))
    meta = {"towers": "distinct", "text": text_config_dict(TextConfig()), "max_seq_length": 32}
    (folder / MODEL_META).write_text(json.dumps({**meta, "fusion": Fusion().as_dict()}), encoding="utf-8")
    export_onnx(model, folder, quantize=True)  # as train does: index builds then encode with ONNX Runtime
    return folder


@pytest.fixture
def demo_index(tmp_path, distinct_model_dir) -> tuple[Path, Path]:
    """A small demo store's catalogue (file) and an index of it built with the distinct tiny towers."""
    from towersearch.index.build import IndexConfig, build_index

    store = build_demo_store(DEMO)
    catalog = tmp_path / "catalog.csv"
    write_catalog(store.products, catalog)
    root = tmp_path / "index"
    build_index(
        Catalog(store.products),
        root,
        events=store.events,
        model=distinct_model_dir,
        config=IndexConfig(progress=False),
    )
    return root, catalog


def fill_store(path: Path, queries: int) -> None:
    """An event store with ``queries`` engaged queries on the demo products."""
    store = build_demo_store(DEMO)
    ids = [p.product_id for p in store.products]
    with EventStore(path) as events:
        for i in range(queries):
            shown = ids[i % 50 : i % 50 + 5]
            search_id = events.record_search(f"query {i}", shown, session_id=f"s{i}")
            events.add_events([{"search_id": search_id, "product_id": shown[0], "event": "click"}])


def test_replay_then_refresh_switches_or_not_as_the_gate_says(demo_index, tmp_path, tiny_model_dir, monkeypatch):
    from towersearch.service.app import create_app
    from towersearch.service.settings import Settings

    root, _ = demo_index
    serving = current_generation(root).name
    events_path = tmp_path / "events.db"
    settings = Settings(index_dir=root, admin_token=TOKEN, events_path=events_path)
    with TestClient(create_app(settings)) as client:
        sent = replay(client, ReplayConfig(searches=30, seed=2, products=DEMO.n_products, demo_seed=DEMO.seed))
        assert sent["searches"] == 30 and sent["foreign_results"] == 0
        assert sent["events"]["click"] > 0 and sent["searches_with_click"] > 0
        with EventStore(events_path, create=False) as store:
            totals = analytics(store)["totals"]
        assert totals["searches"] == 30
        assert totals["clicks"] == sent["events"]["click"]
        assert totals["add_to_cart"] == sent["events"]["add_to_cart"]
        assert totals["purchases"] == sent["events"]["purchase"]

        monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN", TOKEN)
        config = RefreshConfig(
            gate_share=0.3, min_gate_queries=2, max_steps=2, progress=False, reload_url="http://testserver"
        )
        result = refresh(root, events_path, config=config, base_model=tiny_model_dir, client=client)

        assert result["gate"]["source"] == "log" and result["gate"]["queries"] >= 2
        assert result["serving"]["generation"] == serving and result["serving"]["mode"] == "hybrid"
        candidate = result["candidate"]["generation"]
        assert candidate != serving and result["train"]["towers"] == "distinct"
        assert result["candidate"]["init_model"] == str(root / GENERATIONS / serving / "model")
        assert set(result["seconds"]) >= {"export", "train", "index", "gate", "switch", "total"}
        assert not list(root.glob(".refresh-*"))  # the work folder is gone
        health = client.get("/healthz").json()
        if result["switched"]:
            assert result["decision"] == "switched" and result["message"].startswith("switched: ")
            assert current_generation(root).name == candidate == result["current"]
            assert result["reload"]["ok"] and result["reload"]["answer"]["generation"] == candidate
            assert health["generation"] == candidate
            assert json.loads((root / GENERATIONS / candidate / "model" / "towersearch.json").read_text())
        else:
            assert result["decision"] == "refused" and result["message"].startswith("refused: ")
            assert current_generation(root).name == serving == result["current"]
            assert candidate not in generations(root) and result["reload"] is None
            assert health["generation"] == serving
        assert (result["candidate"]["ndcg@10"] >= result["serving"]["ndcg@10"] - 0.005) == result["switched"]


def fake_train(calls: list):
    """A stand-in for training: the candidate's towers are the init model's (fast; the gate is what is tested)."""

    def run(catalog, out_dir, *, init_model=None, **kwargs):
        calls.append({"init_model": init_model, **kwargs})
        shutil.copytree(init_model, out_dir)
        return {"steps": 0, "seconds": 0.0, "towers": "distinct", "pairs": {}, "ranker": {}}

    return run


def test_the_gate_refuses_a_worse_candidate_and_leaves_current(demo_index, tmp_path, monkeypatch, cli_json):
    root, catalog = demo_index
    serving = current_generation(root).name
    events_path = tmp_path / "events.db"
    fill_store(events_path, 12)
    calls: list = []
    monkeypatch.setattr("towersearch.training.train.train", fake_train(calls))
    judged = []

    def fake_evaluate(folder, judgements):
        judged.append(judgements)
        name = Path(folder).name
        return {"generation": name, "mode": "hybrid", "ndcg@10": 0.9 if name == serving else 0.5, "queries": 3}

    monkeypatch.setattr("towersearch.loop.evaluate_index", fake_evaluate)
    result = cli_json(
        "refresh", root, "--events", events_path, "--catalog", catalog, "--gate-share", "0.25",
        "--min-gate-queries", "3", "--max-steps", "2", "--json",
    )  # fmt: skip
    assert result["decision"] == "refused" and not result["switched"]
    assert result["message"] == (
        "refused: candidate NDCG@10 0.5000 is 0.4000 below the serving index's 0.9000 (tolerance 0.005)"
    )
    assert current_generation(root).name == serving == result["current"]
    assert generations(root) == [serving]  # the refused candidate is deleted
    assert result["removed"] == [result["candidate"]["generation"]]
    assert result["gate"]["queries"] == 3 and len(judged[0]) == 3 and judged[0] == judged[1]
    trained_on = {e.query for e in calls[0]["events"]}
    assert not trained_on & set(judged[0])  # the gate's queries are held out of training
    assert len(trained_on) == 9 and calls[0]["config"].max_steps == 2
    assert calls[0]["config"].towers == "distinct" and calls[0]["init_model"] == root / GENERATIONS / serving / "model"


def test_the_gate_switches_a_candidate_within_tolerance_and_reloads_the_service(demo_index, tmp_path, monkeypatch):
    from towersearch.service.app import create_app
    from towersearch.service.settings import Settings

    root, _ = demo_index
    serving = current_generation(root).name
    events_path = tmp_path / "events.db"
    fill_store(events_path, 10)
    monkeypatch.setattr("towersearch.training.train.train", fake_train([]))

    def fake_evaluate(folder, judgements):
        name = Path(folder).name
        return {"generation": name, "mode": "hybrid", "ndcg@10": 0.8 if name == serving else 0.796}

    monkeypatch.setattr("towersearch.loop.evaluate_index", fake_evaluate)
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN", TOKEN)
    config = RefreshConfig(min_gate_queries=2, progress=False, reload_url="http://testserver")
    with TestClient(create_app(Settings(index_dir=root, admin_token=TOKEN))) as client:
        result = refresh(root, events_path, config=config, client=client)
        candidate = result["candidate"]["generation"]
        assert result["switched"] and current_generation(root).name == candidate
        assert result["message"].startswith("switched: candidate NDCG@10 0.7960 against the serving index's 0.8000")
        assert generations(root) == sorted([serving, candidate])  # the previous one is kept
        assert result["reload"]["ok"] and client.get("/healthz").json()["generation"] == candidate


def test_judgements_replace_the_held_out_queries(demo_index, tmp_path, monkeypatch):
    root, _ = demo_index
    events_path = tmp_path / "events.db"
    fill_store(events_path, 12)
    calls: list = []
    monkeypatch.setattr("towersearch.training.train.train", fake_train(calls))
    judged = []
    monkeypatch.setattr(
        "towersearch.loop.evaluate_index",
        lambda folder, j: judged.append(j) or {"generation": Path(folder).name, "mode": "hybrid", "ndcg@10": 0.5},
    )
    product = build_demo_store(DEMO).products[0].product_id
    judgements = tmp_path / "judgements.csv"
    judgements.write_text(f"query,product_id,grade\nsomething new,{product},3\n", encoding="utf-8")
    result = refresh(root, events_path, judgements=judgements, config=RefreshConfig(progress=False))
    assert result["gate"] == {"source": "judgements", "path": str(judgements), "queries": 1}
    assert judged[0] == {"something new": {product: 3.0}} and result["switched"]
    assert len({e.query for e in calls[0]["events"]}) == 12  # nothing held out of training
    judgements.write_text(f"query,product_id,grade\nsomething new,{product},0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="grades no product >= 1"):
        refresh(root, events_path, judgements=judgements, config=RefreshConfig(progress=False))


def test_a_crash_after_the_build_leaves_the_serving_generation_serving(demo_index, tmp_path, monkeypatch):
    root, _ = demo_index
    serving = current_generation(root).name
    events_path = tmp_path / "events.db"
    fill_store(events_path, 10)
    monkeypatch.setattr("towersearch.training.train.train", fake_train([]))

    def crash(folder, judgements):
        raise KeyboardInterrupt

    monkeypatch.setattr("towersearch.loop.evaluate_index", crash)
    with pytest.raises(KeyboardInterrupt):
        refresh(root, events_path, config=RefreshConfig(min_gate_queries=2, progress=False))
    assert current_generation(root).name == serving and generations(root) == [serving]
    assert not list(root.glob(".refresh-*"))


def test_too_few_engaged_queries_is_an_error_saying_how_many(demo_index, tmp_path):
    root, _ = demo_index
    events_path = tmp_path / "events.db"
    fill_store(events_path, 7)
    with pytest.raises(ConfigError, match=r"has 7 engaged queries .* at least 20, so it needs at least 100"):
        refresh(root, events_path, config=RefreshConfig(progress=False))
    assert generations(root) == [current_generation(root).name]


def test_reload_without_a_token_fails_before_any_work(demo_index, tmp_path):
    root, _ = demo_index
    with pytest.raises(ConfigError, match="--reload needs the service's admin token in TOWERSEARCH_ADMIN_TOKEN"):
        refresh(root, tmp_path / "missing.db", config=RefreshConfig(reload_url="http://127.0.0.1:9"))


def test_gate_split_is_seeded_and_graded_from_the_log():
    from towersearch.data import LogEvent

    events = []
    for i in range(10):
        events += [LogEvent(f"q{i}", "p1", "impression"), LogEvent(f"q{i}", "p1", "click")]
        events += [LogEvent(f"q{i}", "p2", "add_to_cart"), LogEvent(f"q{i}", "p3", "purchase")]
        events += [LogEvent(f"q{i}", "p4", "impression")]
    config = RefreshConfig(gate_share=0.3, min_gate_queries=3, seed=4)
    queries, judged = hold_out_gate(events, config)
    assert len(queries) == 3 and hold_out_gate(events, config)[0] == queries
    assert all(grades == {"p1": 1.0, "p2": 2.0, "p3": 3.0} for grades in judged.values())
    assert gate_decision(0.70, 0.70, 0.0)[0] and not gate_decision(0.694, 0.70, 0.005)[0]


def test_refresh_options_are_checked():
    with pytest.raises(ConfigError, match="gate_share must be between 0 and 1"):
        RefreshConfig(gate_share=1.0)
    with pytest.raises(ConfigError, match="max_gate_queries must be >= min_gate_queries"):
        RefreshConfig(min_gate_queries=10, max_gate_queries=5)


def test_replay_says_when_the_service_serves_another_store(tiny_index, tmp_path):
    from towersearch.service.app import create_app
    from towersearch.service.settings import Settings

    settings = Settings(index_dir=tiny_index, events_path=tmp_path / "events.db")
    with TestClient(create_app(settings)) as client:
        with pytest.raises(ConfigError, match="not products of the demo store with --products 100"):
            replay(client, ReplayConfig(searches=5, products=100))
    settings = Settings(index_dir=tiny_index, record_events=False)
    with TestClient(create_app(settings)) as client:
        with pytest.raises(ServiceError, match="records no events"):
            replay(client, ReplayConfig(searches=5, products=100))


def test_reload_errors_and_the_token_file(tmp_path, monkeypatch):
    from towersearch.http_client import JsonResponse
    from towersearch.loop import admin_token, reload_service

    class Refusing:
        def post(self, url, *, json=None, headers=None):
            assert url == "/admin/reload" and headers == {"X-Admin-Token": TOKEN}
            return JsonResponse(409, '{"detail": "reload failed: manifest.json is missing"}')

    with pytest.raises(ServiceError, match="answered 409: reload failed: manifest.json is missing"):
        reload_service(Refusing(), TOKEN)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN_FILE", str(token_file))
    assert admin_token() == TOKEN
    monkeypatch.setenv("TOWERSEARCH_ADMIN_TOKEN", TOKEN)
    with pytest.raises(ConfigError, match="not both"):
        admin_token()


def test_the_candidate_keeps_the_serving_review_insights(demo_index, tmp_path, monkeypatch):
    from towersearch.reviews.insights import INSIGHTS_FILE, load_insights

    root, _ = demo_index
    events_path = tmp_path / "events.db"
    fill_store(events_path, 10)
    product = build_demo_store(DEMO).products[0].product_id
    entry = {"reviews": 1, "intent_share": {"highly_useful": 1.0}, "most_useful": {"review_id": "r1"}}
    served = {"insights": {product: entry, "gone": entry}, "insights_info": {"reviews": 2}}
    monkeypatch.setattr("towersearch.loop.serving_insights", lambda folder, manifest: served)
    monkeypatch.setattr("towersearch.training.train.train", fake_train([]))
    monkeypatch.setattr(
        "towersearch.loop.evaluate_index",
        lambda folder, j: {"generation": Path(folder).name, "mode": "hybrid", "ndcg@10": 0.5},
    )
    result = refresh(root, events_path, config=RefreshConfig(min_gate_queries=2, progress=False))
    assert result["switched"]
    folder = current_generation(root)
    assert load_insights(folder / INSIGHTS_FILE) == {product: entry}  # "gone" is not in the catalogue
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["review_insights"] == {"reviews": 2, "path": INSIGHTS_FILE, "products": 1, "dropped_products": 1}


def test_serving_insights_are_the_generations_own(insights_index, tiny_index):
    from towersearch.index.artifacts import read_manifest
    from towersearch.loop import serving_insights

    folder = current_generation(insights_index)
    args = serving_insights(folder, read_manifest(folder, "index"))
    assert sorted(args["insights"]) == ["p1", "p3"] and args["insights_info"] == {}
    plain = current_generation(tiny_index)
    assert serving_insights(plain, read_manifest(plain, "index")) == {}  # an index built without reviews

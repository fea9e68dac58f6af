"""The Milvus backend through milvus-lite: top-10 against exact search, filters, upserts and deletes, reloads, and
an index built, searched, updated and rebuilt on it."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from tests.conftest import scale_module
from towersearch.data import load_catalog, load_log
from towersearch.data.schema import Product
from towersearch.errors import ConfigError
from towersearch.index.build import IndexConfig, build_index
from towersearch.index.generations import current_generation, generations
from towersearch.index.update import update_index
from towersearch.search.ann import AnnConfig, FaissIndex, exact_search
from towersearch.search.engine import SearchEngine
from towersearch.search.milvus import MILVUS_IDS, MilvusIndex, connect, filter_expression, index_tag

DEPARTMENTS = ("dairy", "bakery", "snacks", "produce")


@pytest.fixture(autouse=True)
def _pymilvus():
    scale_module("pymilvus")
    scale_module("milvus_lite")


def unit(rng, n, dim=32):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fields_of(n):
    return {
        "department": [DEPARTMENTS[i % 4] for i in range(n)],
        "category": [f"{DEPARTMENTS[i % 4]} > aisle {i % 3}" for i in range(n)],
        "brand": [f"brand {i % 7}" for i in range(n)],
    }


def test_top10_matches_exact_search_and_filters_inside_milvus(tmp_path):
    rng = np.random.default_rng(0)
    vectors, queries = unit(rng, 3000), unit(rng, 50)
    index = MilvusIndex.build(vectors, fields_of(3000), str(tmp_path / "store.db"), "products_1")
    scores, rows = index.search(queries, 10)
    truth = exact_search(vectors, queries, 10)
    recall = np.mean([len(set(r) & set(t)) / 10 for r, t in zip(rows.tolist(), truth.tolist(), strict=True)])
    assert recall >= 0.99
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, rows, axis=1), atol=1e-5)

    where = filter_expression(department="Bakery", category="bakery > aisle 2")
    _, rows = index.search(queries, 10, where=where)
    allowed = np.array([i % 4 == 1 and i % 3 == 2 for i in range(3000)])
    assert (rows >= 0).all() and allowed[rows].all()
    masked = np.where(allowed, queries @ vectors.T, -np.inf)
    exact = np.argsort(-masked, axis=1)[:, :10]
    assert np.mean([len(set(r) & set(t)) / 10 for r, t in zip(rows.tolist(), exact.tolist(), strict=True)]) >= 0.99
    index.close()


def test_upserts_and_deletes_are_seen_and_the_collection_reloads(tmp_path):
    rng = np.random.default_rng(1)
    vectors = unit(rng, 200)
    uri = str(tmp_path / "store.db")
    index = MilvusIndex.build(vectors, fields_of(200), uri, "products_1")
    new = unit(rng, 1)
    index.upsert(np.array([200]), new, {f: [v[0]] for f, v in fields_of(1).items()})
    _, rows = index.search(new, 3)  # the nearest vector is the update's, not yet live: k of this generation's
    assert ((rows >= 0) & (rows < 200)).all(), "a vector no row holds is left out, and k known rows still come back"
    index.set_rows(np.arange(201))
    assert index.search(new, 1)[1][0, 0] == 200
    index.delete([5])
    index.set_rows(np.array([i for i in range(201) if i != 5]))
    _, rows = index.search(vectors[5:6], 3)
    assert 5 not in rows and rows[0, 0] != -1  # gone from Milvus, the row list shifted
    np.save(tmp_path / MILVUS_IDS, index.row_ids())
    info = {"milvus_uri": uri, "collection_name": "products_1", "ef_search": 64}
    index.close()
    again = MilvusIndex.load(tmp_path, info)
    assert len(again) == 200 and again.stored() == 200
    assert again.search(new, 1)[1][0, 0] == 199  # row of id 200 after the delete
    again.close()


def test_filter_expression_escapes_and_leaves_wildcards_to_the_post_filter():
    assert filter_expression() is None
    assert filter_expression(department='Say "Hi"') == 'department == "say \\"hi\\""'
    assert filter_expression(category="Dairy  >  Milk") == (
        '(category == "dairy > milk" or category like "dairy > milk > %")'
    )
    assert filter_expression(category="100%_juice") is None


def test_missing_pymilvus_gives_an_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(ConfigError, match=r"pip install 'towersearch\[scale\]'"):
        MilvusIndex.create(str(tmp_path / "x.db"), "c_1", 8)


def test_milvus_needs_a_uri():
    with pytest.raises(ConfigError, match="needs a URI"):
        AnnConfig(kind="milvus")
    with pytest.raises(ConfigError, match="needs --ann milvus"):
        AnnConfig(kind="hnsw", milvus_uri="x.db")


NEW = Product("p7", "Zesty Zucchini Noodles", brand="Garden Spiral", category="produce > vegetables", size="10 oz")


def test_index_on_milvus_searches_updates_and_rebuilds(tiny_store, tiny_model_dir, tmp_path):
    catalog = load_catalog(tiny_store["catalog"])
    events = load_log(tiny_store["log"])[0]
    uri = str(tmp_path / "store.db")
    milvus = IndexConfig(ann=AnnConfig(kind="milvus", milvus_uri=uri, collection="shop"), progress=False)
    build_index(catalog, tmp_path / "faiss", events=events, model=tiny_model_dir, config=IndexConfig(progress=False))
    manifest = build_index(catalog, tmp_path / "milvus", events=events, model=tiny_model_dir, config=milvus)
    assert manifest["ann"]["kind"] == "milvus" and manifest["ann"]["milvus_uri"] == uri
    assert manifest["ann"]["collection_name"].startswith("shop_") and manifest["ann"]["recall@10"] == 1.0
    assert not (current_generation(tmp_path / "milvus") / "ann.faiss").exists()

    faiss, engine = SearchEngine.load(tmp_path / "faiss"), SearchEngine.load(tmp_path / "milvus")
    for query in ("milk", "tortilla chips", "cola"):
        for mode in ("dense", "hybrid"):
            a, b = faiss.search(query, k=6, mode=mode), engine.search(query, k=6, mode=mode)
            assert [r.product.product_id for r in a] == [r.product.product_id for r in b], (query, mode)
            assert [r.score for r in a] == pytest.approx([r.score for r in b], abs=1e-5)
    filtered = engine.search("milk", k=6, mode="dense", department="DAIRY EGGS")
    assert [r.product.product_id for r in filtered] == [
        r.product.product_id for r in faiss.search("milk", k=6, mode="dense", department="dairy eggs")
    ]
    assert {r.product.product_id for r in filtered} == {"p1", "p2"}
    under = engine.search("snack", k=6, mode="dense", category="Snacks")
    assert [r.product.product_id for r in under] == ["p4"]
    assert [r.product.product_id for r in engine.similar("p1", k=3)] == [
        r.product.product_id for r in faiss.similar("p1", k=3)
    ]
    engine.dense.index.close()

    summary = update_index(tmp_path / "milvus", upserts=[NEW], deletes=["p6"])
    assert summary["added"] == 1 and summary["deleted"] == 1
    updated = SearchEngine.load(tmp_path / "milvus")
    assert updated.manifest["ann"]["collection_name"] == manifest["ann"]["collection_name"]  # updated in place
    ids = [r.product.product_id for r in updated.search("zucchini noodles", k=6, mode="dense")]
    assert "p7" in ids and "p6" not in ids and len(ids) == 6
    assert updated.dense.index.stored() == 6, "the deleted product's vector left the collection"
    updated.dense.index.close()

    other = build_index(catalog, tmp_path / "other", model=tiny_model_dir, config=milvus)  # same Milvus and prefix
    for _ in range(2):  # two more builds: the collection of the generation the clean-up deletes goes too
        build_index(catalog, tmp_path / "milvus", events=events, model=tiny_model_dir, config=milvus)
    client = connect(uri)
    live = {
        json.loads((tmp_path / "milvus" / "generations" / g / "manifest.json").read_text())["ann"]["collection_name"]
        for g in generations(tmp_path / "milvus")
    }
    names = set(client.list_collections())
    assert len(live) == 2 and live <= names
    assert manifest["ann"]["collection_name"] not in names, "the deleted generation's collection was dropped"
    assert other["ann"]["collection_name"] in names, "another index folder's collection is never touched"
    client.close()


def test_faiss_index_refuses_a_filter_expression(tiny_index):
    engine = SearchEngine.load(tiny_index)
    assert isinstance(engine.dense.index, FaissIndex)
    with pytest.raises(ConfigError, match="cannot filter"):
        engine.dense.search_vectors_rows(engine.embeddings[:1], 3, where='department == "x"')


def test_cli_index_search_and_evaluate_on_milvus(cli_json, tiny_store, tiny_model_dir, tmp_path):
    folder, uri = tmp_path / "index", tmp_path / "store.db"
    manifest = cli_json(
        "index", "--catalog", tiny_store["catalog"], "--log", tiny_store["log"], "--model", tiny_model_dir,
        "--out", folder, "--ann", "milvus", "--milvus-uri", uri, "--collection", "shop", "--json",
    )  # fmt: skip
    assert manifest["ann"]["kind"] == "milvus" and manifest["ann"]["milvus_uri"] == str(uri)
    found = cli_json("search", folder, "milk", "--mode", "dense", "--department", "dairy eggs", "--json")
    assert {r["product_id"] for r in found["results"]} == {"p1", "p2"}
    report = cli_json("evaluate", "--index", folder, "--judgements", tiny_store["judgements"], "--json")
    assert set(report["metrics"]) == {"bm25", "dense", "hybrid"}


def test_service_on_milvus_filters_and_applies_catalogue_changes(tiny_store, tiny_model_dir, tmp_path):
    from fastapi.testclient import TestClient

    from towersearch.service.app import create_app
    from towersearch.service.settings import Settings

    config = IndexConfig(ann=AnnConfig(kind="milvus", milvus_uri=str(tmp_path / "store.db")), progress=False)
    build_index(load_catalog(tiny_store["catalog"]), tmp_path / "index", model=tiny_model_dir, config=config)
    token = {"X-Admin-Token": "s3cret"}
    with TestClient(create_app(Settings(index_dir=tmp_path / "index", admin_token="s3cret"))) as client:
        holder = client.app.state.holder
        holder.retire_after = 0.05  # close replaced engines' Milvus clients at once
        first = holder.engine
        params = {"q": "milk", "mode": "dense", "department": "dairy eggs", "k": 5}
        response = client.get("/search", params=params)
        assert response.status_code == 200, response.text
        assert {r["product_id"] for r in response.json()["results"]} == {"p1", "p2"}
        new = {"product_id": "p7", "name": "Zesty Zucchini Noodles", "category": "produce > veg"}
        assert client.put("/admin/products", json={"products": [new]}, headers=token).status_code == 200
        assert client.delete("/admin/products/p6", headers=token).status_code == 200
        deadline = time.monotonic() + 10
        while first.dense.index.client._handler is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.dense.index.client._handler is None  # the replaced engine let go of its connection
        response = client.get("/search", params={"q": "zucchini noodles", "mode": "dense", "k": 10})
        ids = [r["product_id"] for r in response.json()["results"]]
        assert "p7" in ids and "p6" not in ids and len(ids) == 6  # the live engine's shared connection still works


def test_an_orphan_collection_is_dropped_unless_a_manifest_cannot_be_read(tiny_store, tiny_model_dir, tmp_path):
    from towersearch.index.build import drop_stale_collections

    uri = str(tmp_path / "store.db")
    config = IndexConfig(ann=AnnConfig(kind="milvus", milvus_uri=uri, collection="shop"), progress=False)
    build_index(load_catalog(tiny_store["catalog"]), tmp_path / "index", model=tiny_model_dir, config=config)
    orphan = f"shop_{index_tag(tmp_path / 'index')}_19990101T000000000000Z_failed"  # a build that never finished
    fields = {f: [""] * 6 for f in ("department", "category", "brand")}
    index = MilvusIndex.build(np.eye(6, 8, dtype=np.float32), fields, uri, orphan)
    assert drop_stale_collections(index, tmp_path / "index", "shop") == [orphan]
    index = MilvusIndex.build(np.eye(6, 8, dtype=np.float32), fields, uri, orphan)
    (current_generation(tmp_path / "index") / "manifest.json").write_text("{not json")
    assert drop_stale_collections(index, tmp_path / "index", "shop") == []
    assert orphan in index.client.list_collections()
    index.close()

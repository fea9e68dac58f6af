"""Catalogue updates: new, changed and deleted products as a new generation, encoding only what changed."""

import json
import shutil
import sys
import threading

import numpy as np
import pytest

from towersearch.data import load_catalog, load_log
from towersearch.data.catalog import Catalog
from towersearch.data.schema import Product
from towersearch.errors import DataError
from towersearch.index.build import IndexConfig, build_index
from towersearch.index.generations import GENERATIONS, current_generation, generations
from towersearch.index.update import BatchError, update_index
from towersearch.search.ann import AnnConfig, FaissIndex, exact_search
from towersearch.search.engine import SearchEngine

NEW = Product("p7", "Zesty Zucchini Noodles", brand="Garden Spiral", category="produce > vegetables", size="10 oz")
QUERIES = ["milk", "tortilla chips", "zucchini noodles", "cola", "macaroni cheese", "whole milk"]
MODES = ("lexical", "dense", "hybrid")


@pytest.fixture
def catalog(tiny_store):
    return load_catalog(tiny_store["catalog"])


@pytest.fixture
def events(tiny_store):
    return load_log(tiny_store["log"])[0]


@pytest.fixture
def hnsw_index(catalog, events, tiny_model_dir, tmp_path):
    out = tmp_path / "hnsw"
    build_index(catalog, out, events=events, model=tiny_model_dir, config=IndexConfig(ann=AnnConfig(kind="hnsw"),
                progress=False))  # fmt: skip
    return out


@pytest.fixture
def encoded(monkeypatch):
    """The products the product tower encodes during an update."""
    import towersearch.index.update as update

    seen: list[str] = []
    original = update.encode_products

    def counting(model, products, *args, **kwargs):
        seen.extend(p.product_id for p in products)
        return original(model, products, *args, **kwargs)

    monkeypatch.setattr(update, "encode_products", counting)
    return seen


def changed(catalog: Catalog) -> Product:
    import dataclasses

    return dataclasses.replace(catalog["p2"], name="Whole Milk Vitamin D", size="half gal")


def ids(results) -> list[str]:
    return [r.product.product_id for r in results]


def manifest_of(root):
    return json.loads((current_generation(root) / "manifest.json").read_text())


def everything(engine: SearchEngine, mode: str, query: str) -> list[str]:
    return ids(engine.search(query, k=len(engine.products), mode=mode))


def test_update_flat_index_encodes_only_what_changed(tiny_index, catalog, encoded):
    before = SearchEngine.load(tiny_index)
    old_generation = before.manifest["generation"]
    summary = update_index(tiny_index, upserts=[NEW, changed(catalog), catalog["p1"]], deletes=["p6"])
    assert summary["added"] == 1 and summary["changed"] == 1 and summary["unchanged"] == 1
    assert summary["deleted"] == 1 and summary["products"] == 6 and summary["encoded"] == 2
    assert sorted(encoded) == ["p2", "p7"], "only the new and the changed product run through the product tower"
    assert summary["previous"] == old_generation and summary["generation"] == current_generation(tiny_index).name
    assert set(summary["seconds"]) >= {"validate", "encode", "ann", "bm25", "suggest", "write", "switch", "total"}

    engine = SearchEngine.load(tiny_index)
    assert ids_of(engine) == ["p1", "p2", "p3", "p4", "p5", "p7"]  # unchanged order, p2 in place, p7 appended
    for pid in ("p1", "p3", "p4", "p5"):  # byte-identical embeddings of unchanged products
        assert engine.embeddings[engine.rows[pid]].tobytes() == before.embeddings[before.rows[pid]].tobytes()
    assert engine.products[engine.rows["p2"]].name == "Whole Milk Vitamin D"
    for mode in MODES:
        assert "p7" in everything(engine, mode, "zucchini noodles"), mode
        assert "p6" not in everything(engine, mode, "macaroni cheese"), mode
    assert ids(engine.search("zucchini noodles", k=1, mode="lexical")) == ["p7"]
    assert "p7" not in ids(engine.similar("p7", k=5)) and len(engine.similar("p7", k=5)) == 5
    assert "p6" not in ids(engine.similar("p1", k=10))
    with pytest.raises(KeyError, match="unknown product 'p6'"):
        engine.similar("p6")
    manifest = engine.manifest
    assert manifest["catalog"]["products"] == 6 and manifest["ann"]["kind"] == "flat"
    assert manifest["updates"][-1]["added"] == 1 and manifest["updates"][-1]["from"] == old_generation
    assert manifest["updates_total"] == 1
    assert not (current_generation(tiny_index) / "ann_ids.npy").exists()
    assert generations(tiny_index) == sorted([old_generation, summary["generation"]])


def ids_of(engine):
    return [p.product_id for p in engine.products]


def test_updated_index_equals_a_full_rebuild(tiny_index, catalog, events, tiny_model_dir, tmp_path):
    update_index(tiny_index, upserts=[NEW, changed(catalog)], deletes=["p6"])
    updated = SearchEngine.load(tiny_index)
    rebuilt_dir = tmp_path / "rebuilt"
    live = {p.product_id for p in updated.products}
    build_index(Catalog(list(updated.products)), rebuilt_dir, events=[e for e in events if e.product_id in live],
                model=tiny_model_dir, config=IndexConfig(progress=False))  # fmt: skip
    rebuilt = SearchEngine.load(rebuilt_dir)
    assert updated.products == rebuilt.products
    np.testing.assert_allclose(updated.embeddings, rebuilt.embeddings, atol=1e-6)
    for mode in MODES:
        for query in QUERIES:
            a, b = updated.search(query, k=6, mode=mode), rebuilt.search(query, k=6, mode=mode)
            assert ids(a) == ids(b), (mode, query)
            assert [r.score for r in a] == pytest.approx([r.score for r in b], abs=1e-5)
    assert [s.text for s in updated.suggest("zuc")] == [s.text for s in rebuilt.suggest("zuc")]


def test_hnsw_update_keeps_the_graph_and_skips_dead_vectors(hnsw_index, catalog, encoded):
    folder = current_generation(hnsw_index)
    assert np.array_equal(np.load(folder / "ann_ids.npy"), np.arange(6))  # a new HNSW index has ids 0..n-1
    summary = update_index(hnsw_index, upserts=[NEW, changed(catalog)], deletes=["p6"], compact_share=0.5)
    assert sorted(encoded) == ["p2", "p7"]
    assert summary["ann"] == {"kind": "hnsw", "vectors": 8, "dead": 2, "compacted": False, "converted": False,
                              "recall@10": 1.0}  # fmt: skip
    folder = current_generation(hnsw_index)
    # p2 keeps its row with a new vector (id 6), p7 is appended (id 7); p6's vector (5) and p2's old one (1) are dead
    assert np.load(folder / "ann_ids.npy").tolist() == [0, 6, 2, 3, 4, 7]
    manifest = manifest_of(hnsw_index)
    assert manifest["ann"]["dead"] == 2 and manifest["ann"]["vectors"] == 8 and manifest["ann"]["compactions"] == 0
    engine = SearchEngine.load(hnsw_index)
    assert len(engine.dense.index) == 6 and engine.dense.index.dead == 2
    for mode in MODES:
        assert "p6" not in everything(engine, mode, "macaroni cheese"), mode
        assert "p7" in everything(engine, mode, "zucchini noodles"), mode
    dense = everything(engine, "dense", "milk")
    assert sorted(dense) == sorted(ids_of(engine)), "every live product once, no dead vector"
    _, rows = engine.dense.index.search(engine.embeddings, 6)
    np.testing.assert_array_equal(np.sort(rows, axis=1), np.tile(np.arange(6), (6, 1)))
    np.testing.assert_array_equal(rows[:, 0], np.arange(6))  # each product's nearest vector is its own, live one
    assert ids(engine.similar("p7", k=5)) and "p6" not in ids(engine.similar("p5", k=10))

    # a second update passes the dead share (3 of 8 > 0.2): HNSW is built again from the live vectors
    summary = update_index(hnsw_index, deletes=["p5"])
    assert summary["ann"]["compacted"] and summary["ann"]["vectors"] == 5 and summary["ann"]["dead"] == 0
    manifest = manifest_of(hnsw_index)
    assert manifest["ann"]["compactions"] == 1 and manifest["ann"]["dead"] == 0 and manifest["updates_total"] == 2
    assert np.load(current_generation(hnsw_index) / "ann_ids.npy").tolist() == [0, 1, 2, 3, 4]
    engine = SearchEngine.load(hnsw_index)
    assert sorted(everything(engine, "dense", "cola")) == sorted(ids_of(engine)) == ["p1", "p2", "p3", "p4", "p7"]


def test_old_hnsw_index_without_ids_loads_and_its_first_update_converts_it(hnsw_index, catalog):
    import faiss

    folder = current_generation(hnsw_index)
    embeddings = np.load(folder / "embeddings.npy")
    plain = faiss.IndexHNSWFlat(embeddings.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    plain.add(embeddings)
    faiss.write_index(plain, str(folder / "ann.faiss"))  # as built before ids existed
    (folder / "ann_ids.npy").unlink()
    engine = SearchEngine.load(hnsw_index)
    assert not engine.dense.index.id_mapped
    assert sorted(everything(engine, "dense", "milk")) == ids_of(engine)
    summary = update_index(hnsw_index, upserts=[changed(catalog)], compact_share=0.9)
    assert summary["ann"]["converted"] and not summary["ann"]["compacted"] and summary["ann"]["dead"] == 1
    folder = current_generation(hnsw_index)
    assert type(faiss.read_index(str(folder / "ann.faiss"))).__name__ == "IndexIDMap2"
    assert np.load(folder / "ann_ids.npy").tolist() == [0, 6, 2, 3, 4, 5]
    engine = SearchEngine.load(hnsw_index)
    assert sorted(everything(engine, "dense", "milk")) == ids_of(engine)


def test_update_carries_review_insights_and_drops_deleted_products(insights_index, catalog):
    from towersearch.reviews.insights import INSIGHTS_FILE, load_insights

    before = SearchEngine.load(insights_index)
    assert sorted(before.insights) == ["p1", "p3"] and before.manifest["review_insights"]["products"] == 2
    update_index(insights_index, upserts=[NEW, changed(catalog)], deletes=["p3"])
    engine = SearchEngine.load(insights_index)
    assert sorted(engine.insights) == ["p1"] and engine.insights["p1"] == before.insights["p1"]
    assert engine.review_insights("p3") is None and engine.review_insights("p7") is None  # deleted; new
    assert load_insights(current_generation(insights_index) / INSIGHTS_FILE) == engine.insights
    assert engine.manifest["review_insights"] == {**before.manifest["review_insights"], "products": 1}
    update_index(insights_index, deletes=["p7"])  # a second update carries them again
    assert SearchEngine.load(insights_index).insights == engine.insights


def test_update_of_an_index_without_insights_adds_none(tiny_index):
    from towersearch.reviews.insights import INSIGHTS_FILE

    update_index(tiny_index, upserts=[NEW])
    assert not (current_generation(tiny_index) / INSIGHTS_FILE).exists()
    assert "review_insights" not in manifest_of(tiny_index) and SearchEngine.load(tiny_index).insights == {}


def test_failed_update_leaves_the_index_untouched(tiny_index, catalog, monkeypatch):
    current = (tiny_index / "CURRENT").read_text()
    names = generations(tiny_index)

    def boom(*args, **kwargs):
        raise RuntimeError("the encoder broke")

    monkeypatch.setattr("towersearch.index.update.encode_products", boom)
    with pytest.raises(RuntimeError, match="the encoder broke"):
        update_index(tiny_index, upserts=[NEW], deletes=["p6"])
    assert (tiny_index / "CURRENT").read_text() == current and generations(tiny_index) == names
    assert not [p for p in (tiny_index / GENERATIONS).iterdir() if p.name.startswith(".")], "temporary folder left"
    assert "p6" in ids_of(SearchEngine.load(tiny_index))


@pytest.mark.parametrize(
    ("upserts", "deletes", "text", "batch", "item"),
    [
        ([NEW], ["p6", "nope"], "unknown product 'nope' in the delete list", "deletes", 1),
        ([NEW], ["p7"], "product 'p7' is both upserted and deleted in one batch", "deletes", 0),
        ([NEW, NEW], [], "product 'p7' is upserted twice", "upserts", 1),
        ([], ["p1", "p1"], "product 'p1' is twice in the delete list", "deletes", 1),
        ([Product("p8", " ")], [], "product 'p8' has an empty name", "upserts", 0),
        ([Product("p8", "Jam", attributes={"note": "a;b"})], [], "cannot be stored", "upserts", 0),
        ([], ["p1", "p2", "p3", "p4", "p5", "p6"], "would delete every product", "deletes", 5),
    ],
)
def test_a_bad_batch_changes_nothing(tiny_index, upserts, deletes, text, batch, item):
    current = (tiny_index / "CURRENT").read_text()
    listing = sorted(p.name for p in (tiny_index / GENERATIONS).iterdir())
    with pytest.raises(BatchError, match=text) as caught:
        update_index(tiny_index, upserts=upserts, deletes=deletes)
    assert isinstance(caught.value, DataError) and (caught.value.batch, caught.value.item) == (batch, item)
    assert (tiny_index / "CURRENT").read_text() == current
    assert sorted(p.name for p in (tiny_index / GENERATIONS).iterdir()) == listing


def test_an_update_that_changes_nothing_writes_nothing(tiny_index, catalog, encoded):
    current = (tiny_index / "CURRENT").read_text()
    summary = update_index(tiny_index, upserts=[catalog["p1"], catalog["p4"]])
    assert not summary["changed_anything"] and summary["unchanged"] == 2 and summary["encoded"] == 0
    assert summary["generation"] == current.strip() and (tiny_index / "CURRENT").read_text() == current
    assert encoded == []


def test_autocomplete_follows_the_catalogue(tiny_store, catalog, tiny_model_dir, tmp_path, monkeypatch):
    import towersearch.index.update as update

    log = tmp_path / "log.csv"  # searched in two sessions each: "milk" and "soda" are log candidates
    extra = [f"{q},{p},click,1,{session}," for q, p in [("milk", "p2"), ("soda", "p5"), ("mac n cheese", "p6")]
             for session in ("s4", "s5")]  # fmt: skip
    log.write_text(tiny_store["log"].read_text() + "\n".join(extra) + "\n")
    tiny_index = tmp_path / "index"
    build_index(catalog, tiny_index, events=load_log(log)[0], model=tiny_model_dir, config=IndexConfig(progress=False))

    texts: list[str] = []
    original = update.encode_queries

    def counting(model, queries, *args, **kwargs):
        texts.extend(queries)
        return original(model, queries, *args, **kwargs)

    monkeypatch.setattr(update, "encode_queries", counting)
    before = SearchEngine.load(tiny_index)
    old = {c.text: c for c in before.suggester.candidates}
    assert (
        "macaroni & cheese" in old and old["milk"].source == old["soda"].source == old["mac n cheese"].source == "log"
    )
    update_index(tiny_index, upserts=[NEW], deletes=["p6"])
    engine = SearchEngine.load(tiny_index)
    new = {c.text: c for c in engine.suggester.candidates}
    assert [c for c in new.values() if c.source == "log"] == [c for c in old.values() if c.source == "log"]
    assert "mac n cheese" in new, "a log candidate stays, even when the products it found are gone"
    assert not {"macaroni & cheese", "homestyle", "cheese"} & set(new)  # p6's type and brand
    assert {"garden spiral", "zucchini noodles"} <= set(new)
    assert set(texts) == set(new) - set(old), "only new suggestion texts are encoded"
    reused = [t for t in new if t in old]
    a = np.asarray(engine.suggester.embeddings)[[list(new).index(t) for t in reused]]
    b = np.asarray(before.suggester.embeddings)[[list(old).index(t) for t in reused]]
    assert a.tobytes() == b.tobytes()
    assert "zucchini noodles" in [s.text for s in engine.suggest("zucc")]
    assert manifest_of(tiny_index)["suggest"]["blocklist"] == []


def test_blocked_phrases_stay_blocked(tiny_store, events, tiny_model_dir, tmp_path):
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("garden spiral\ncola\n")
    out = tmp_path / "index"
    build_index(load_catalog(tiny_store["catalog"]), out, events=events, model=tiny_model_dir,
                config=IndexConfig(progress=False, blocklist=blocklist))  # fmt: skip
    update_index(out, upserts=[NEW])
    texts = {c.text for c in SearchEngine.load(out).suggester.candidates}
    assert "garden spiral" not in texts and "cola" not in texts and "zucchini noodles" in texts


def test_catalog_candidates_match_build_candidates(tmp_path):
    from towersearch.data.demo import DemoConfig, generate_demo_store
    from towersearch.search.autocomplete import build_candidates, catalog_candidates

    generate_demo_store(tmp_path, DemoConfig(n_products=300, seed=5))
    products = load_catalog(tmp_path / "catalog.csv").products
    built = build_candidates(load_log(tmp_path / "log.csv")[0], products)
    logged = {c.text for c in built if c.source == "log"}
    from_catalog = [c for c in built if c.source == "catalog"]
    assert len(from_catalog) > 50
    assert sorted(catalog_candidates(products, logged), key=lambda c: c.text) == from_catalog


def test_cli_update(cli_json, tiny_index, tmp_path, monkeypatch, capsys):
    upsert = tmp_path / "upsert.csv"
    upsert.write_text("product_id,name,brand,category\np7,Zesty Zucchini Noodles,Garden Spiral,produce\n")
    deletes = tmp_path / "deletes.txt"
    deletes.write_text("\n  p6  \n\n")
    summary = cli_json("update", tiny_index, "--upsert", upsert, "--delete", deletes, "--json")
    assert summary["added"] == 1 and summary["deleted"] == 1 and summary["products"] == 6
    assert summary["generation"] == current_generation(tiny_index).name
    bad = tmp_path / "bad.txt"
    bad.write_text("p1\n\nnope\n")
    from towersearch.cli import main

    monkeypatch.setattr(sys, "argv", ["towersearch", "update", str(tiny_index), "--delete", str(bad)])
    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"{bad}, line 3, field 'product_id': unknown product 'nope' in the delete list" in err
    monkeypatch.setattr(sys, "argv", ["towersearch", "update", str(tiny_index)])
    with pytest.raises(SystemExit):
        main()
    assert "nothing to update" in capsys.readouterr().err


def test_hnsw_selector_matches_exact_search_and_is_thread_safe():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = FaissIndex.build(vectors[:2000], AnnConfig(kind="hnsw"))
    live = np.concatenate([index.row_ids()[300:], index.add_with_ids(vectors[2000:])])  # 300 dead, 1000 new
    index.set_rows(live)
    rows_vectors = vectors[300:]
    assert len(index) == 2700 and index.dead == 300
    queries = rows_vectors[:200] + 0.05 * rng.normal(size=(200, 16)).astype(np.float32)
    truth = exact_search(rows_vectors, queries, 10)
    results: dict[int, np.ndarray] = {}

    def work(worker: int) -> None:
        for i in range(worker, len(queries), 8):
            results[i] = index.search(queries[i : i + 1], 10)[1][0]

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = np.stack([results[i] for i in range(len(queries))])
    assert got.min() >= 0 and got.max() < 2700
    recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth, strict=True)])
    assert recall >= 0.95


def test_index_dir_must_be_the_index_folder(tiny_index):
    from towersearch.errors import ConfigError

    with pytest.raises(ConfigError, match="is a generation of index folder"):
        update_index(current_generation(tiny_index), deletes=["p6"])


def test_copy_of_index_updates_independently(tiny_index, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_index, copy)
    update_index(copy, deletes=["p6"])
    assert "p6" in ids_of(SearchEngine.load(tiny_index)) and "p6" not in ids_of(SearchEngine.load(copy))


def test_index_of_the_older_layout_updates_into_generations(tiny_index, tmp_path):
    old = tmp_path / "old-layout"
    shutil.copytree(current_generation(tiny_index), old)  # files directly in the index folder, no CURRENT
    assert not (old / "CURRENT").exists() and "p6" in ids_of(SearchEngine.load(old))
    summary = update_index(old, deletes=["p6"])
    assert (old / "CURRENT").read_text().strip() == summary["generation"]
    engine = SearchEngine.load(old)
    assert engine.folder == old / GENERATIONS / summary["generation"] and "p6" not in ids_of(engine)


def test_bf16_index_encodes_products_in_bf16_and_its_updates_follow(
    catalog, events, tiny_model_dir, tmp_path, monkeypatch
):
    from towersearch.encoders.bf16 import Bf16Products
    from towersearch.errors import ConfigError

    fp32, bf16 = tmp_path / "fp32", tmp_path / "bf16"
    build_index(catalog, fp32, events=events, model=tiny_model_dir, config=IndexConfig(progress=False))
    build_index(catalog, bf16, events=events, model=tiny_model_dir,
                config=IndexConfig(product_precision="bf16", progress=False))  # fmt: skip
    assert manifest_of(bf16)["model"]["product_precision"] == "bf16"
    assert manifest_of(fp32)["model"]["product_precision"] == "fp32"
    a, b = SearchEngine.load(fp32), SearchEngine.load(bf16)
    diff = np.abs(a.embeddings - b.embeddings).max()
    assert 0 < diff < 0.05, "bf16 products are close to fp32, not equal"
    np.testing.assert_allclose(np.linalg.norm(b.embeddings, axis=1), 1.0, atol=1e-5)
    heads = [np.load(current_generation(root) / "head_queries.npy") for root in (fp32, bf16)]
    np.testing.assert_array_equal(*heads)  # queries stay fp32

    import towersearch.index.update as update

    used: list[str] = []
    original = update.encode_products

    def spy(model, products, *args, **kwargs):
        used.append(type(model).__name__)
        return original(model, products, *args, **kwargs)

    monkeypatch.setattr(update, "encode_products", spy)
    update_index(bf16, upserts=[NEW])
    assert used == [Bf16Products.__name__]
    assert manifest_of(bf16)["model"]["product_precision"] == "bf16"
    with pytest.raises(ConfigError, match="product precision"):
        IndexConfig(product_precision="fp16")
    with pytest.raises(ConfigError, match="engine local"):
        IndexConfig(product_precision="bf16", engine="ray")

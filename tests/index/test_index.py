import json

import numpy as np
import pytest

from towersearch.data import load_catalog
from towersearch.errors import ArtifactError, ConfigError
from towersearch.index.artifacts import model_fingerprint
from towersearch.index.build import IndexConfig, build_index, head_queries
from towersearch.index.generations import current_generation, index_root
from towersearch.search.ann import AnnConfig, FaissIndex, ann_recall, exact_search
from towersearch.search.engine import SearchEngine


@pytest.fixture
def built(tiny_index):
    return tiny_index, json.loads((current_generation(tiny_index) / "manifest.json").read_text())


def test_flat_index_matches_exact_search():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:50] + 0.1 * rng.normal(size=(50, 16)).astype(np.float32)
    flat = FaissIndex.build(vectors, AnnConfig(kind="flat"))
    _, rows = flat.search(queries, 10)
    np.testing.assert_array_equal(rows, exact_search(vectors, queries, 10))
    assert ann_recall(flat, vectors, queries) == 1.0
    hnsw = FaissIndex.build(vectors, AnnConfig(kind="hnsw"))
    assert hnsw.kind == "hnsw" and ann_recall(hnsw, vectors, queries) >= 0.9
    assert AnnConfig(hnsw_threshold=100).resolve(500) == "hnsw" and AnnConfig().resolve(500) == "flat"
    with pytest.raises(ConfigError, match="unknown ANN index kind 'ivf'"):
        AnnConfig(kind="ivf")


def test_head_queries_count_searches_per_session():
    from towersearch.data import LogEvent

    events = [LogEvent("Milk", "p1", "impression", session_id="s1"), LogEvent("milk", "p2", "click", session_id="s1")]
    events += [LogEvent("milk", "p1", "impression", session_id="s2"), LogEvent("tea", "p3", "click", session_id="s3")]
    assert head_queries(events, 5) == ["milk", "tea"]
    assert head_queries(events, 1) == ["milk"]


def test_index_folder_and_manifest(built, tiny_model_dir):
    root, manifest = built
    assert sorted(p.name for p in root.iterdir()) == [".lock", "CURRENT", "generations"]
    folder = current_generation(root)
    assert (root / "CURRENT").read_text() == folder.name + "\n" and manifest["generation"] == folder.name
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["ann.faiss", "bm25", "embeddings.npy", "head_queries.json", "head_queries.npy",
                     "manifest.json", "model", "products.parquet", "suggest.jsonl", "suggest_config.json",
                     "suggest_embeddings.npy", "suggest_modifiers.json"]  # fmt: skip
    assert manifest["kind"] == "index" and manifest["catalog"]["products"] == 6 and manifest["dim"] == 32
    assert manifest["ann"]["kind"] == "flat" and manifest["ann"]["recall@10"] == 1.0
    assert manifest["model"] == {
        "path": "model",
        "source": str(tiny_model_dir),
        "untrained": False,
        "fingerprint": model_fingerprint(tiny_model_dir),
        "encoder": "onnx",
        "product_precision": "fp32",
    }
    assert (folder / "model" / "onnx" / "manifest.json").is_file()  # exported into the index, not the source
    assert not (tiny_model_dir / "onnx").exists()
    assert json.loads((folder / "head_queries.json").read_text()) == ["milk", "pop", "tortillas"]
    engine = SearchEngine.load(root)
    assert engine.folder == folder and index_root(engine.folder) == root


def test_engine_modes_filters_and_cache(built):
    folder, _ = built
    engine = SearchEngine.load(folder)
    lexical = engine.search("tortilla chips", mode="lexical", k=3)
    assert lexical[0].product.product_id == "p4" and lexical[0].rank == 1 and "bm25" in lexical[0].scores
    hybrid = engine.search("milk", k=6)
    lexical_hits = engine.retriever("lexical").search(["milk"], 100)[0]
    dense_hits = engine.retriever("dense").search(["milk"], 100)[0]
    expected = engine.fusion.fuse(lexical_hits, dense_hits, 6)
    assert [r.product.product_id for r in hybrid] == [h.product_id for h in expected]
    assert [r.score for r in hybrid] == pytest.approx([h.score for h in expected])
    assert all("fused" in r.scores and "dense" in r.scores for r in hybrid)
    assert {r.product.product_id for r in hybrid if "bm25" in r.scores} == {"p1", "p2"}
    assert [r.rank for r in hybrid] == list(range(1, len(hybrid) + 1))
    dairy = engine.search("milk", k=6, department="Dairy Eggs")
    assert dairy and {r.product.department for r in dairy} == {"dairy eggs"}
    assert engine.search("milk", k=6, category="bakery > tortillas", mode="dense")[0].product.product_id == "p3"
    assert engine.search("milk", mode="dense", min_score=2.0) == []
    assert engine.query_vector("Milk")[1] == "head"
    assert engine.query_vector("oat milk")[1] == "model"
    assert engine.query_vector("oat  milk")[1] == "cache"
    dense = engine.search("cola", mode="dense", k=3)
    direct = engine.model.encode_query(["cola"], normalize_embeddings=True) @ engine.embeddings.T
    assert dense[0].product.product_id == engine.products[int(np.argmax(direct))].product_id
    with pytest.raises(ConfigError, match="unknown mode 'fuzzy'"):
        engine.search("milk", mode="fuzzy")
    similar = engine.similar("p1", k=3)
    assert len(similar) == 3 and "p1" not in [r.product.product_id for r in similar]


@pytest.mark.parametrize("encoder", ["onnx", "torch"])
def test_quantized_query_encoding_stays_close_to_fp32(built, encoder):
    folder, _ = built
    plain = SearchEngine.load(folder, encoder=encoder)
    quick = SearchEngine.load(folder, quantize_queries=True, encoder=encoder)
    if encoder == "onnx":
        assert quick.model.backend == "onnx" and quick.model.quantized and not plain.model.quantized
    else:
        assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in quick.model.modules())
    queries = ["oat milk", "corn tortillas", "sparkling water", "cola"]
    a, b = (np.stack([e.query_vector(q)[0] for q in queries]) for e in (plain, quick))
    assert np.all(np.sum(a * b, axis=1) > 0.9)  # cosine of unit vectors


def test_index_refuses_another_model(built, tmp_path, tiny_model_dir):
    import shutil

    folder, _ = built
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    assert SearchEngine.load(folder, model=other)  # an identical copy is the same model
    weights = next(other.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(ArtifactError, match="was built with model .* rebuild the index"):
        SearchEngine.load(folder, model=other)


def test_failed_build_keeps_the_previous_index(built, tiny_store, tiny_model_dir, monkeypatch):
    folder, manifest = built
    catalog = load_catalog(tiny_store["catalog"])

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("towersearch.index.build.BM25Retriever.save", boom)
    current = (folder / "CURRENT").read_text()
    with pytest.raises(KeyboardInterrupt):
        build_index(catalog, folder, model=tiny_model_dir, config=IndexConfig(progress=False))
    assert (folder / "CURRENT").read_text() == current
    assert json.loads((current_generation(folder) / "manifest.json").read_text())["created"] == manifest["created"]
    assert SearchEngine.load(folder).search("milk", k=1)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".index")], "temporary folders left behind"
    assert [p.name for p in (folder / "generations").iterdir()] == [manifest["generation"]], "partial generation left"


def test_not_an_index(tmp_path):
    with pytest.raises(ArtifactError, match="is not a towersearch index folder"):
        SearchEngine.load(tmp_path)


def test_loaded_engine_keeps_numpy_blas_on_one_thread(tiny_index):
    """numpy's OpenBLAS threads spin after a product and slow the next query-tower run (see ann.single_threaded_
    numpy_blas): a loaded engine has them on one thread."""
    from threadpoolctl import threadpool_info

    from towersearch.search.engine import SearchEngine

    SearchEngine.load(tiny_index)
    numpy_blas = [i for i in threadpool_info() if i["internal_api"] == "openblas" and "numpy" in i["filepath"]]
    assert numpy_blas and all(i["num_threads"] == 1 for i in numpy_blas)


def test_index_with_review_insights(cli_json, tiny_store, tiny_reviews, tiny_model_dir, tmp_path):
    from towersearch.reviews.insights import INSIGHTS_FILE, load_insights

    out = tmp_path / "index"
    manifest = cli_json(
        "index", "--catalog", tiny_store["catalog"], "--out", out, "--model", tiny_model_dir,
        "--reviews", tiny_reviews["reviews"], "--review-intents", tiny_reviews["intents"], "--json",
    )  # fmt: skip
    assert manifest["review_insights"] == {
        "source": {"reviews": str(tiny_reviews["reviews"]), "intents": str(tiny_reviews["intents"])},
        "reviews": 5,
        "classified": 6,
        "unmatched_intents": 1,  # r9: classified, no review
        "path": INSIGHTS_FILE,
        "products": 2,
        "dropped_products": 1,  # p99: not in the catalogue
    }
    folder = current_generation(out)
    assert json.loads((folder / "manifest.json").read_text())["review_insights"] == manifest["review_insights"]
    stored = load_insights(folder / INSIGHTS_FILE)
    assert sorted(stored) == ["p1", "p3"]
    assert stored["p1"]["reviews"] == 3 and stored["p1"]["most_useful"]["review_id"] == "r2"
    assert stored["p1"]["intent_share"] == {
        "highly_useful": 0.6667, "passionate": 0.3333, "obnoxious": 0.3333, "balanced": 0.3333
    }  # fmt: skip
    engine = SearchEngine.load(out)
    assert engine.review_insights("p1") == stored["p1"] and engine.review_insights("p2") is None


@pytest.mark.parametrize(("given", "missing"), [("--reviews", "--review-intents"), ("--review-intents", "--reviews")])
def test_index_needs_both_review_options(tiny_store, tiny_reviews, tmp_path, monkeypatch, capsys, given, missing):
    import sys

    from towersearch.cli import main

    path = tiny_reviews["reviews" if given == "--reviews" else "intents"]
    args = ["index", "--catalog", tiny_store["catalog"], "--out", tmp_path / "index", given, path]
    monkeypatch.setattr(sys, "argv", ["towersearch", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    assert f"{given} needs {missing}: give both (review insights) or neither" in " ".join(
        capsys.readouterr().err.split()
    )
    assert not (tmp_path / "index").exists()


def test_index_without_reviews_has_no_insights(tiny_index):
    engine = SearchEngine.load(tiny_index)
    assert "review_insights" not in engine.manifest and engine.insights == {}
    assert engine.review_insights("p1") is None


def test_a_filter_looks_deeper_when_the_first_candidates_hold_too_few_matches(tiny_index):
    engine = SearchEngine.load(tiny_index)
    by_department = {}
    for p in engine.products:
        by_department.setdefault(p.department, []).append(p.product_id)
    for query in ("milk", "cola", "tortillas", "chips", "cheese", "bread", "soda"):
        last = engine.search(query, mode="dense", k=6)[-1].product
        if len(by_department[last.department]) == 1:
            break
    else:
        pytest.fail("no query ranks a product of a one-product department last")
    # candidates=1, k=1: the first look retrieves 5 of the 6 products, none of them in that department
    found = engine.search(query, mode="dense", k=1, candidates=1, department=last.department)
    assert [r.product.product_id for r in found] == [last.product_id]
    found = engine.search(query, mode="hybrid", k=1, candidates=1, department=last.department)
    assert [r.product.product_id for r in found] == [last.product_id]


def test_a_filter_knows_how_many_products_it_can_find_at_most(tiny_index):
    """The bound that stops a filter's deeper look once every product that can pass has been found."""
    engine = SearchEngine.load(tiny_index)
    assert engine._matching("DAIRY EGGS", None) == 2 and engine._matching(None, "dairy eggs > milk") == 2
    assert engine._matching(None, "Dairy Eggs") == 2 and engine._matching("pantry", "pantry > pasta") == 1
    assert engine._matching("dairy eggs", "bakery") == 1  # a bound: the smaller of the two filters' sizes
    assert engine._matching(None, None) == 6
    assert engine._matching("no such department", None) == 0


def test_an_index_spells_queries_and_one_built_before_spelling_does_not(built):
    """The manifest records query spelling; an index whose manifest predates it serves as it was built."""
    folder, manifest = built
    assert manifest["bm25"]["spelling"] is True
    engine = SearchEngine.load(folder)
    assert engine.retrievers["bm25"].spelling
    assert engine.search("tortila chips", mode="lexical", k=1)[0].product.product_id == "p4"
    path = current_generation(folder) / "manifest.json"
    del manifest["bm25"]["spelling"]
    path.write_text(json.dumps(manifest))
    old = SearchEngine.load(folder)
    assert not old.retrievers["bm25"].spelling
    assert [r.product.product_id for r in old.search("tortila", mode="lexical", k=1)] == []

"""The learned ranking stage: features on a hand-worked example, save/load, training, and the retriever."""

import json
from dataclasses import replace

import numpy as np
import pytest

from towersearch.data import load_catalog, load_log
from towersearch.errors import ConfigError
from towersearch.search.features import FEATURES, PRIOR_WEIGHT, FeatureExtractor, Postings, RankingContext, trigrams
from towersearch.search.hybrid import Candidates
from towersearch.search.lexical import BM25Retriever


def col(name: str) -> int:
    return list(FEATURES).index(name)


@pytest.fixture
def extractor(tiny_store):
    products = load_catalog(tiny_store["catalog"]).products
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(products), 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    query_vector = emb[0]  # the logged query "milk" sits exactly on p1
    context = RankingContext(
        product_ids=["p1", "p2"],
        impressions=np.array([80.0, 20.0]),
        clicks=np.array([40.0, 0.0]),
        conversions=np.array([10.0, 0.0]),
        queries=["milk"],
        query_vectors=query_vector[None, :],
        query_departments=[{"dairy eggs": 0.75, "pantry": 0.25}],
        query_categories=[{"dairy eggs > milk": 0.75, "pantry > pasta": 0.25}],
        query_products=[{"p1": 0.75, "p6": 0.25}],
    )
    lexical = BM25Retriever(products)
    names = BM25Retriever(products, fields=("name",))
    return FeatureExtractor(products, lexical, names, emb, context), emb


def test_features_match_a_hand_worked_example(extractor):
    ex, emb = extractor
    # fused candidates p2, p1, p3; in the BM25 list p1 is first and p2 second, in the dense list p3 then p1
    hits = Candidates(
        rows=np.array([ex.rows["p2"], ex.rows["p1"], ex.rows["p3"]]),
        fused=np.array([0.9, 0.8, 0.1]),
        bm25=np.array([1.0, 2.0, np.nan]),
        dense=np.array([np.nan, 0.5, 0.7]),
        rank_bm25=np.array([2, 1, 0]),
        rank_dense=np.array([0, 2, 1]),
    )
    m = ex.features("Organic 2 Milk", emb[0], hits, 100)
    assert m.shape == (3, len(FEATURES))
    p2, p1, p3 = m
    # coverage: terms {organ, 2? no: single characters are not terms, milk} -> "organ", "milk"
    assert p1[col("name_coverage")] == 1.0 and p2[col("name_coverage")] == 0.5 and p3[col("name_coverage")] == 0.0
    assert p1[col("query_terms")] == 2 and p2[col("name_terms")] == 2  # "whole", "milk"
    assert p1[col("number_match")] == 1.0 and p2[col("number_match")] == 0.0  # "2" is in "Organic 2% Milk"
    assert p1[col("phrase_in_name")] == 0.0
    assert ex.features("whole milk", emb[0], hits.take(slice(0, 1)), 100)[0, col("phrase_in_name")] == 1.0
    assert np.isnan(ex.features("whole milk", emb[0], hits.take(slice(0, 1)), 100)[0, col("number_match")])
    assert (p2[col("rank_bm25")], p1[col("rank_dense")], p3[col("rank_bm25")]) == (2, 2, 101)
    assert list(m[:, col("rank_fused")]) == [1, 2, 3]
    assert p1[col("dense")] == pytest.approx(1.0, abs=1e-6)
    assert p1[col("fused")] == pytest.approx(0.8)
    # rates smoothed towards the log's mean: 40 clicks / 100 impressions overall, 10 conversions
    mean_ctr, mean_cvr = 40 / 100, 10 / 100
    assert p1[col("product_ctr")] == pytest.approx((40 + PRIOR_WEIGHT * mean_ctr) / (80 + PRIOR_WEIGHT))
    assert p2[col("product_ctr")] == pytest.approx((0 + PRIOR_WEIGHT * mean_ctr) / (20 + PRIOR_WEIGHT))
    assert p3[col("product_ctr")] == pytest.approx(mean_ctr) and p3[col("product_impressions")] == 0.0
    assert p1[col("product_cvr")] == pytest.approx((10 + PRIOR_WEIGHT * mean_cvr) / (80 + PRIOR_WEIGHT))
    assert p1[col("product_impressions")] == pytest.approx(np.log1p(80))
    # the one neighbour ("milk", similarity 1) sent 75% of its engagement to dairy eggs > milk, 75% to p1
    assert p1[col("department_affinity")] == pytest.approx(0.75)
    assert p2[col("department_affinity")] == pytest.approx(0.75)  # whole milk is dairy too
    assert p3[col("department_affinity")] == 0.0 and p1[col("category_affinity")] == pytest.approx(0.75)
    assert p1[col("neighbour_engagement")] == pytest.approx(0.75) and p2[col("neighbour_engagement")] == 0.0
    # BM25 features are the retrievers' own scores
    assert p1[col("bm25")] == pytest.approx(ex.lexical.search(["organic 2 milk"], 6)[0][0].score)
    assert p3[col("bm25")] == 0.0
    # relative to the query's best candidate: p1 is both BM25's and the towers' first choice here
    assert p1[col("bm25_share")] == 1.0 and p3[col("bm25_share")] == 0.0
    assert p2[col("bm25_share")] == pytest.approx(p2[col("bm25")] / p1[col("bm25")]) and 0 < p2[col("bm25_share")] < 1
    assert p1[col("dense_gap")] == pytest.approx(0.0, abs=1e-6)
    assert p3[col("dense_gap")] == pytest.approx(float(emb[ex.rows["p3"]] @ emb[0]) - 1.0, abs=1e-6)
    # character trigrams: "organic" gives #or org rga gan ani nic ic#, "milk" #mi mil ilk lk# ("2" is too short)
    assert p1[col("name_trigrams")] == 1.0 and p3[col("name_trigrams")] == 0.0
    assert p2[col("name_trigrams")] == pytest.approx(4 / 11)  # "Whole Milk" holds milk's four
    # a misspelt word ("tortilas") misses its term, not its trigrams
    typo = ex.features("flour tortilas", emb[0], hits, 100)
    assert typo[2, col("name_coverage")] == 0.5 and typo[1, col("name_coverage")] == 0.0
    assert typo[2, col("name_trigrams")] == pytest.approx(12 / 13)  # of "tortilas", only "ila" is not in "tortillas"


def test_trigrams_mark_each_words_ends():
    assert trigrams("Deck") == {"#de", "dec", "eck", "ck#"}
    assert trigrams("a 2 of") == {"#of", "of#"}  # one-character words give none
    assert trigrams("deckover") - trigrams("deck over") == {"cko", "kov"}  # a joined word keeps most of its parts


def test_postings_count_what_each_product_holds():
    rng = np.random.default_rng(0)
    vocab = [f"t{i}" for i in range(40)]
    sets = [set(rng.choice(vocab, size=rng.integers(0, 12))) for _ in range(300)]
    postings = Postings(sets)
    for _ in range(20):
        terms = set(rng.choice(vocab + ["unseen"], size=8))
        rows = rng.integers(0, len(sets), size=50)
        expected = [len(terms & sets[r]) for r in rows]
        assert postings.count(terms, rows).tolist() == expected
    assert postings.count(["unseen"], rows).tolist() == [0] * 50
    assert postings.count(["t1"], np.zeros(0, dtype=np.int64)).tolist() == []


def test_brand_features_tell_the_type_from_the_brand():
    from towersearch.data import Product

    products = [
        Product("a", "Gentle Growers Orange", brand="Gentle Growers"),
        Product("b", "Gentle Growers Avocado", brand="Gentle Growers"),
        Product("c", "Coastal Blood Orange", brand="Coastal"),
        Product("d", "Plain Orange"),
    ]
    emb = np.eye(4, 8, dtype=np.float32)
    ex = FeatureExtractor(
        products, BM25Retriever(products), BM25Retriever(products, fields=("name",)), emb, RankingContext.empty(8)
    )
    n = len(products)
    hits = Candidates(np.arange(n), np.ones(n), np.ones(n), np.ones(n), np.arange(1, n + 1), np.arange(1, n + 1))
    m = ex.features("gentle growers orange", emb[0], hits, 100)
    a, b, c, d = m
    # name coverage cannot tell the brand's avocado (2 of 3 terms) from another brand's orange (1 of 3)
    assert b[col("name_coverage")] > c[col("name_coverage")]
    assert (a[col("brand_in_query")], b[col("brand_in_query")], c[col("brand_in_query")]) == (1.0, 1.0, 0.0)
    assert np.isnan(d[col("brand_in_query")])  # no brand
    # the query's terms other than the product's brand: "orange" for a and b, all three for c and d
    assert a[col("type_coverage")] == 1.0 and b[col("type_coverage")] == 0.0
    assert c[col("type_coverage")] == pytest.approx(1 / 3) and d[col("type_coverage")] == pytest.approx(1 / 3)
    # a query of the brand alone leaves no other term
    assert ex.features("gentle growers", emb[0], hits, 100)[0, col("type_coverage")] == 0.0


def test_query_parts_are_remembered_per_query_and_vector(extractor):
    ex, emb = extractor
    hits = Candidates(
        rows=np.arange(3), fused=np.array([0.9, 0.8, 0.1]), bm25=np.full(3, np.nan), dense=np.full(3, np.nan),
        rank_bm25=np.zeros(3, dtype=np.int64), rank_dense=np.zeros(3, dtype=np.int64),
    )  # fmt: skip
    first = ex.features("milk", emb[0], hits, 100)
    assert ex.query_part("milk", emb[0]) is ex.query_part("milk", emb[0])
    np.testing.assert_array_equal(ex.features("milk", emb[0], hits, 100), first)
    # the same words with another vector have other neighbours: not served from the first one's entry
    far = -emb[0]
    assert ex.query_part("milk", far) is not ex.query_part("milk", emb[0])
    assert first[0, col("neighbour_engagement")] > 0.0
    assert ex.features("milk", far, hits, 100)[0, col("neighbour_engagement")] == 0.0


def test_nearest_logged_queries_exact_on_a_small_log_and_from_hnsw_on_a_large_one(tiny_store):
    from towersearch.search.ann import AnnConfig
    from towersearch.search.retriever import top_k

    products = load_catalog(tiny_store["catalog"]).products
    lexical = BM25Retriever(products)
    names = BM25Retriever(products, fields=("name",))
    rng = np.random.default_rng(3)
    for n, kind in ((500, "flat"), (AnnConfig().hnsw_threshold + 500, "hnsw")):
        vectors = rng.normal(size=(n, 16)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        context = RankingContext(
            [], np.zeros(0), np.zeros(0), np.zeros(0), [f"q{i}" for i in range(n)], vectors,
            [{}] * n, [{}] * n, [{}] * n,
        )  # fmt: skip
        emb = rng.normal(size=(len(products), 16)).astype(np.float32)
        ex = FeatureExtractor(products, lexical, names, emb, context)
        assert context.query_index.kind == kind
        found = 0
        for probe in vectors[:50] + rng.normal(size=(50, 16)).astype(np.float32) * 0.1:
            sims = vectors @ probe
            exact = [int(i) for i in top_k(sims, context.neighbours)]
            got = ex._neighbours(probe)
            assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
            if kind == "flat":
                assert [i for i, _ in got] == exact
                np.testing.assert_allclose([s for _, s in got], np.maximum(sims[exact], 0), atol=1e-6)
            found += len({i for i, _ in got} & set(exact))
        assert found / (50 * context.neighbours) >= (1.0 if kind == "flat" else 0.9)


def _demo_with_ranker(tmp_path_factory, tiny_model_dir):
    from towersearch.data.demo import DemoConfig, generate_demo_store
    from towersearch.training.ranking import RankerConfig
    from towersearch.training.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("ranked-demo")
    generate_demo_store(folder / "data", DemoConfig(n_products=400, seed=5))
    catalog = load_catalog(folder / "data" / "catalog.csv")
    events, _ = load_log(folder / "data" / "log.csv")
    config = TrainConfig(
        max_steps=4, batch_size=8, cascade=False, hard_negatives=0, progress=False, validation_queries=40,
        validation_share=0.2, ranker=RankerConfig(min_queries=10, rounds=30, min_data_in_leaf=5),
    )  # fmt: skip
    summary = train(catalog, folder / "model", events=events, config=config, base_model=tiny_model_dir)
    return folder, summary


@pytest.fixture(scope="module")
def ranked_demo(tmp_path_factory, tiny_model_dir):
    return _demo_with_ranker(tmp_path_factory, tiny_model_dir)


def test_train_makes_a_ranker_that_round_trips(ranked_demo):
    from towersearch.search.ranker import Ranker

    folder, summary = ranked_demo
    info = summary["ranker"]
    assert info["train_queries"] > 10 and info["rows"] > 100 and "validation_ndcg@10" in info
    assert info["monotone"] is True  # the default, recorded with the ranker
    # five boosters by default, each stopped early on its own fifth of the queries and trained on the rest
    assert info["folds"] == 5 and len(info["fold_rounds"]) == 5
    n = info["queries_with_positive_candidates"]
    assert info["early_stopping_queries"] == n // 5 and info["train_queries"] + info["early_stopping_queries"] == n
    # the fusion is calibrated on every query the towers did not train on: the 40 validation and the ranker's
    assert summary["fusion"]["validation_queries"] >= 40 + info["train_queries"]
    assert set(info["importance_gain"]) == set(FEATURES)
    ranker = Ranker.load(folder / "model")
    assert ranker is not None and ranker.features == list(FEATURES) and ranker.candidates == 100
    meta = json.loads((folder / "model" / "ranker" / "ranker.json").read_text())
    assert meta["default"] == info["default"] and "lightgbm_version" in meta
    assert meta["models"] == ["model.txt"] + [f"model_{i}.txt" for i in range(1, 5)] and len(ranker.boosters) == 5
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(50, len(FEATURES))).astype(np.float32)
    again = Ranker.load(folder / "model")
    np.testing.assert_array_equal(ranker.predict(matrix), again.predict(matrix))
    assert np.ptp(ranker.predict(matrix)) > 0, "a ranker that scores everything alike learned nothing"
    # the score is the boosters' mean, computed by their compiled ensemble
    assert ranker.forest() is not None
    each = [b.predict(matrix[:, ranker.columns]) for b in ranker.boosters]
    np.testing.assert_allclose(ranker.predict(matrix), np.mean(each, axis=0), rtol=1e-12, atol=1e-12)
    assert np.ptp(np.array(each), axis=0).max() > 0, "the folds' boosters should differ"


def test_too_few_ranker_queries_to_stop_early_train_fixed_rounds_on_all(ranked_demo):
    from towersearch.encoders import load_encoder
    from towersearch.model import model_fusion, model_text_config
    from towersearch.search.dense import DenseRetriever
    from towersearch.search.factory import compose
    from towersearch.search.lexical import BM25Retriever
    from towersearch.search.ranker import Ranker
    from towersearch.training.ranking import RankerConfig, train_ranker

    folder, _ = ranked_demo
    catalog = load_catalog(folder / "data" / "catalog.csv")
    events, _ = load_log(folder / "data" / "log.csv")
    model = folder / "model"
    dense = DenseRetriever.from_products(load_encoder(model), catalog.products, model_text_config(model))
    trained = Ranker.load(model)
    built = compose(
        BM25Retriever(catalog.products), dense, model_fusion(model), ranker=trained, products=catalog.products
    )
    config = RankerConfig(min_queries=10, rounds=30, small_rounds=12, min_data_in_leaf=5, early_stopping_queries=10_000)
    ranker, info = train_ranker(built["hybrid"], built["ranked"].extractor, events, config)
    assert ranker is not None and info["early_stopping_queries"] == 0 and info["early_stopping_ndcg@10"] is None
    assert info["rounds"] == 12 and info["train_queries"] == info["queries_with_positive_candidates"]
    assert info["folds"] == 1 and len(ranker.boosters) == 1
    # one fold: one booster, stopped early on a tenth of the queries
    one = RankerConfig(min_queries=10, rounds=30, min_data_in_leaf=5, early_stopping_queries=10, folds=1)
    ranker, info = train_ranker(built["hybrid"], built["ranked"].extractor, events, one)
    n = info["queries_with_positive_candidates"]
    assert len(ranker.boosters) == 1 and info["folds"] == 1 and info["early_stopping_queries"] == max(1, n // 10)
    assert info["early_stopping_ndcg@10"] is not None
    # repeats: the folds drawn again; the first draw's boosters are those of a single draw
    base = RankerConfig(min_queries=10, rounds=30, min_data_in_leaf=5, early_stopping_queries=10, folds=2)
    single, _ = train_ranker(built["hybrid"], built["ranked"].extractor, events, base)
    twice, info = train_ranker(built["hybrid"], built["ranked"].extractor, events, replace(base, repeats=2))
    assert len(twice.boosters) == 4 and info["folds"] == 2 and info["repeats"] == 2 and len(info["fold_rounds"]) == 4
    matrix = np.random.default_rng(2).normal(size=(40, len(FEATURES))).astype(np.float32)
    for a, b in zip(single.boosters, twice.boosters[:2], strict=True):
        np.testing.assert_array_equal(a.predict(matrix[:, single.columns]), b.predict(matrix[:, twice.columns]))
    with pytest.raises(ConfigError, match="repeats"):
        RankerConfig(repeats=0)
    with pytest.raises(ConfigError, match="folds"):
        RankerConfig(folds=0)
    with pytest.raises(ConfigError, match="small_rounds"):
        RankerConfig(small_rounds=0)


def test_ranked_in_evaluate_and_search(ranked_demo, cli_json, tmp_path):
    folder, _ = ranked_demo
    data, model = folder / "data", folder / "model"
    run = cli_json

    in_memory = run("evaluate", "--catalog", data / "catalog.csv", "--model", model,
                    "--judgements", data / "judgements.csv", "--json")  # fmt: skip
    assert set(in_memory["metrics"]) == {"bm25", "dense", "hybrid", "ranked"}
    run("index", "--catalog", data / "catalog.csv", "--log", data / "log.csv", "--model", model, "--ann", "flat",
        "--out", tmp_path / "index", "--json")  # fmt: skip
    from_index = run("evaluate", "--index", tmp_path / "index", "--judgements", data / "judgements.csv", "--json")
    for name, metrics in in_memory["metrics"].items():
        assert from_index["metrics"][name] == pytest.approx(metrics, abs=1e-9), name
    results = run("search", tmp_path / "index", "cola", "--json")["results"]
    assert results and all("ranked" in r["scores"] for r in results) == (json.loads(
        (model / "ranker" / "ranker.json").read_text())["default"])  # fmt: skip
    hybrid = run("search", tmp_path / "index", "cola", "--mode", "hybrid", "--json")["results"]
    assert hybrid and all("ranked" not in r["scores"] for r in hybrid)


def test_a_model_without_ranker_still_serves_hybrid(tiny_index):
    from fastapi.testclient import TestClient

    from towersearch.search.engine import SearchEngine
    from towersearch.service.app import create_app
    from towersearch.service.settings import Settings

    engine = SearchEngine.load(tiny_index)
    assert "ranked" not in engine.retrievers and engine.default_mode == "hybrid"
    with TestClient(create_app(Settings(index_dir=tiny_index), engine)) as client:
        response = client.get("/search", params={"q": "milk"})
        assert response.status_code == 200 and response.json()["mode"] == "hybrid"
        bad = client.get("/search", params={"q": "milk", "mode": "ranked"})
        assert bad.status_code == 400 and "ranked" in bad.json()["detail"]


def test_the_ranker_is_default_only_when_it_wins_by_more_than_chance():
    from towersearch.training.ranking import choose_default

    rng = np.random.default_rng(0)
    hybrid = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 200))}
    clear = {q: min(1.0, v + 0.1) for q, v in hybrid.items()}
    noisy = {q: float(np.clip(v + rng.normal(0.005, 0.3), 0, 1)) for q, v in hybrid.items()}
    worse = {q: v - 0.05 for q, v in hybrid.items()}
    assert choose_default(clear, hybrid) == (True, 0.0)
    default, p = choose_default(noisy, hybrid)
    assert not default and p > 0.05
    assert choose_default(worse, hybrid)[0] is False
    assert choose_default({}, hybrid) == (False, 1.0)


def test_ranked_features_are_built_once_when_first_needed(ranked_demo, cli_json, tmp_path):
    """An index whose default is hybrid never builds the ranker's name BM25 and token sets; a first ranked search
    builds them once, however many threads ask at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    from towersearch.search.engine import SearchEngine
    from towersearch.search.ranker import RankedRetriever

    folder, _ = ranked_demo
    data, model = folder / "data", folder / "model"
    cli_json("index", "--catalog", data / "catalog.csv", "--model", model, "--ann", "flat",
             "--out", tmp_path / "index", "--json")  # fmt: skip
    engine = SearchEngine.load(tmp_path / "index")
    loaded = engine.retrievers["ranked"]
    assert (loaded._extractor is not None) == (engine.default_mode == "ranked")
    assert (loaded.ranker._forest is not None) == (engine.default_mode == "ranked")  # compiled with the features

    calls = []

    def build():
        calls.append(1)
        return loaded._build() if loaded._build else loaded._extractor

    ranked = RankedRetriever(loaded.hybrid, loaded.ranker, build)
    assert not calls
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda q: ranked.search([q], 5)[0], ["cola", "milk"] * 8))
    assert len(calls) == 1
    want = engine.search("cola", k=5, mode="ranked")
    assert [h.product_id for h in answers[0]] == [r.product.product_id for r in want]


def test_catalogue_updates_reach_the_ranked_mode(ranked_demo, cli_json, tmp_path):
    """A deleted product never comes back from ranked search; a new one can be found by it."""
    from towersearch.data import Product
    from towersearch.index.update import update_index
    from towersearch.search.engine import SearchEngine

    folder, _ = ranked_demo
    data, model = folder / "data", folder / "model"
    cli_json("index", "--catalog", data / "catalog.csv", "--model", model, "--ann", "flat",
             "--out", tmp_path / "index", "--json")  # fmt: skip
    before = SearchEngine.load(tmp_path / "index").search("cola", k=10, mode="ranked")
    gone = before[0].product.product_id
    new = Product("zz-new", "Zesty Quince Cola Soda", brand="Qwerty", category=before[0].product.category)
    update_index(tmp_path / "index", upserts=[new], deletes=[gone])
    engine = SearchEngine.load(tmp_path / "index")
    for query in ("cola", before[0].product.name):
        ids = [r.product.product_id for r in engine.search(query, k=50, mode="ranked")]
        assert gone not in ids and len(ids) == len(set(ids)), query
    assert "zz-new" in [r.product.product_id for r in engine.search("zesty quince cola", k=10, mode="ranked")]


@pytest.mark.parametrize("monotone", [True, False])
def test_a_monotone_ranker_never_scores_a_higher_fused_score_lower(monotone):
    """Labels that peak at a middle fused score (noise a few hundred queries can teach) must not bend a monotone
    ranker: with every other feature fixed, its score never drops as ``fused`` grows or ``rank_fused`` falls."""
    import lightgbm as lgb

    from towersearch.training.ranking import RankerConfig, lambdamart_params

    features = ("fused", "rank_fused", "query_terms")
    config = RankerConfig(features=features, monotone=monotone, min_data_in_leaf=5)
    rng = np.random.default_rng(0)
    groups, size = 200, 20
    fused = rng.uniform(0, 1, groups * size)
    rank = np.concatenate([np.argsort(np.argsort(-fused[g * size : (g + 1) * size])) + 1 for g in range(groups)])
    x = np.column_stack([fused, rank, rng.integers(1, 4, groups * size)]).astype(np.float32)
    y = np.where(np.abs(fused - 0.5) < 0.1, 3.0, np.where(fused > 0.9, 1.0, 0.0))  # a bump, then a dip
    data = lgb.Dataset(x, y, group=[size] * groups, feature_name=list(features))
    booster = lgb.train(lambdamart_params(config), data, num_boost_round=30)
    grid = np.linspace(0, 1, 101)
    probe = np.column_stack([grid, np.full_like(grid, 5), np.full_like(grid, 2)]).astype(np.float32)
    along_fused = np.diff(booster.predict(probe))
    ranks = np.column_stack([np.full(20, 0.5), np.arange(1, 21), np.full(20, 2)]).astype(np.float32)
    along_rank = np.diff(booster.predict(ranks))
    if monotone:
        assert (along_fused >= -1e-12).all() and (along_rank <= 1e-12).all()
    else:  # the same data without the constraint does learn the dip: the test can tell the two apart
        assert (along_fused < -1e-6).any()


@pytest.mark.parametrize("monotone", [True, False])
def test_exposure_never_counts_against_a_product(monotone):
    """A log made of judged pools teaches "never shown, so more likely right" (the log's products are other queries'
    answers); the monotone ranker must not learn it: its score never drops as ``product_impressions`` grows."""
    import lightgbm as lgb

    from towersearch.training.ranking import RankerConfig, lambdamart_params

    features = ("fused", "product_impressions")
    config = RankerConfig(features=features, monotone=monotone, min_data_in_leaf=5)
    rng = np.random.default_rng(0)
    groups, size = 200, 20
    fused = rng.uniform(0, 1, groups * size)
    shown = rng.uniform(0, 1, groups * size) < 0.5
    impressions = np.where(shown, np.log1p(rng.integers(1, 100, groups * size)), 0.0)
    x = np.column_stack([fused, impressions]).astype(np.float32)
    y = np.where(~shown & (fused > 0.3), 2.0, np.where(fused > 0.8, 1.0, 0.0))  # the unshown are the answers
    data = lgb.Dataset(x, y, group=[size] * groups, feature_name=list(features))
    booster = lgb.train(lambdamart_params(config), data, num_boost_round=30)
    probe = np.column_stack([np.full(50, 0.6), np.linspace(0, 5, 50)]).astype(np.float32)
    along = np.diff(booster.predict(probe))
    if monotone:
        assert (along >= -1e-12).all()
    else:
        assert (along < -1e-6).any()


def _engaged_log(queries: int) -> list:
    from towersearch.data.schema import LogEvent

    return [
        LogEvent(query=f"query {i}", product_id=f"p{i % 7}", event=event, session_id=f"s{i}")
        for i in range(queries)
        for event in ("impression", "click")
    ]


def test_fold_draws_partition_the_queries_and_repeat_with_new_draws():
    from towersearch.training.ranking import fold_draws

    draws = fold_draws(23, 5, seed=4, repeats=3)
    assert len(draws) == 3
    for fold in draws:  # every query in exactly one of five folds of 4 or 5 queries (23 = 4 + 4 + 5 + 5 + 5)
        assert sorted(np.bincount(fold, minlength=5)) == [4, 4, 5, 5, 5]
    np.testing.assert_array_equal(draws[0], fold_draws(23, 5, seed=4)[0])  # the single draw comes first
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])
    (one,) = fold_draws(30, 1, seed=0)  # one fold: a tenth stops the booster
    assert (one == 0).sum() == 3 and (one == 1).sum() == 27


def test_a_small_log_holds_out_its_small_log_share_for_the_ranker():
    from towersearch.training.ranking import RankerConfig, split_ranker_queries

    events = _engaged_log(130)  # 0.2 of 130 is 26, under min_queries
    tower, ranker = split_ranker_queries(events, RankerConfig(), seed=0)
    assert ranker == [] and len(tower) == len(events)  # the default: no ranker on so small a log
    tower, ranker = split_ranker_queries(events, RankerConfig(small_log_share=0.4), seed=0)
    held = {e.query for e in ranker}
    assert len(held) == 52 and not held & {e.query for e in tower} and len(tower) + len(ranker) == len(events)
    assert split_ranker_queries(_engaged_log(100), RankerConfig(small_log_share=0.4), seed=0)[1] == []  # 40 < 50


def test_a_catalogue_without_brands_leaves_the_brand_features_out(extractor):
    from towersearch.data import Product
    from towersearch.search.features import BRAND_FEATURES, usable_features

    ex, _ = extractor  # the tiny store's products have brands
    assert usable_features(list(FEATURES), ex) == tuple(FEATURES)
    products = [Product("a", "Plain Orange"), Product("b", "Plain Apple")]
    plain = FeatureExtractor(
        products, BM25Retriever(products), BM25Retriever(products, fields=("name",)), np.eye(2, 4, dtype=np.float32),
        RankingContext.empty(4),
    )  # fmt: skip
    kept = usable_features(list(FEATURES), plain)
    assert not set(BRAND_FEATURES) & set(kept) and len(kept) == len(FEATURES) - len(BRAND_FEATURES)

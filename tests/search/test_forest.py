"""The ranker's boosters compiled into one ONNX tree ensemble score exactly as LightGBM does."""

import lightgbm as lgb
import numpy as np
import pytest

from towersearch.search.forest import CompiledForest, UnsupportedForest, ensemble_graph


def _booster(x: np.ndarray, y: np.ndarray, rounds: int, **params) -> lgb.Booster:
    group = [10] * (len(x) // 10)
    data = lgb.Dataset(x, y, group=group)
    defaults = {"objective": "lambdarank", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": 0}
    return lgb.train({**defaults, **params}, data, num_boost_round=rounds)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6))
    x[rng.random(600) < 0.3, 1] = np.nan  # feature 1 has missing values in training: splits of missing type NaN
    x[:, 2] = np.round(x[:, 2], 1)  # repeated values: thresholds between neighbours
    y = np.clip(np.round(x[:, 0] + np.nan_to_num(x[:, 1]) + 0.5 * x[:, 2] + rng.normal(size=600) * 0.3 + 1), 0, 3)
    return x, y


def _mean(boosters, x):
    return np.mean([b.predict(x, num_threads=1) for b in boosters], axis=0)


def test_the_compiled_forest_scores_as_the_mean_of_the_boosters(data):
    x, y = data
    boosters = [_booster(x, y, 40), _booster(x[::-1].copy(), y[::-1].copy(), 7, num_leaves=4), _booster(x, y, 1)]
    forest = CompiledForest(boosters)
    rng = np.random.default_rng(1)
    probe = np.concatenate([x, rng.normal(size=(300, 6)) * 2])
    # missing values where training had none (LightGBM reads them as 0) and where it had some (the default side)
    probe[rng.random(probe.shape) < 0.2] = np.nan
    probe = np.concatenate([probe, x[:50, :] + 0.0, np.nextafter(x[:50], np.inf)])  # on and just past thresholds
    expected = _mean(boosters, probe)
    np.testing.assert_allclose(forest.predict(probe), expected, rtol=0, atol=1e-12)
    assert np.ptp(expected) > 0
    # float32 rows (what the feature extractor makes) are read as LightGBM reads them
    np.testing.assert_allclose(
        forest.predict(probe.astype(np.float32)), _mean(boosters, probe.astype(np.float32)), rtol=0, atol=1e-12
    )


def test_a_booster_of_one_leaf_trees_compiles(data):
    x, y = data
    stump = _booster(x, y, 3, min_data_in_leaf=10_000)  # no split possible: every tree a single leaf
    assert stump.dump_model()["tree_info"][0]["num_leaves"] == 1
    np.testing.assert_allclose(CompiledForest([stump]).predict(x[:20]), stump.predict(x[:20]), atol=1e-12)


def test_zero_as_missing_is_refused_and_the_ranker_falls_back_to_lightgbm(data):
    from towersearch.search.features import FEATURES, RankingContext
    from towersearch.search.ranker import Ranker

    x, y = data
    with pytest.raises(UnsupportedForest, match="zero"):
        ensemble_graph([_booster(x, y, 5, zero_as_missing=True)])
    features = list(FEATURES)[:6]
    booster = _booster(x, y, 5, zero_as_missing=True)
    ranker = Ranker([booster], features, 100, RankingContext.empty(4), {})
    matrix = np.zeros((30, len(FEATURES)))
    matrix[:, ranker.columns] = x[:30]
    np.testing.assert_allclose(ranker.predict(matrix), booster.predict(x[:30]), atol=1e-12)
    assert ranker.forest() is None
    compiled = Ranker([_booster(x, y, 5)], features, 100, RankingContext.empty(4), {})
    assert compiled.forest() is not None
    np.testing.assert_allclose(compiled.predict(matrix), compiled.predict_lightgbm(x[:30]), atol=1e-12)


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"objective": "regression", "linear_tree": True}, "linear"),
        ({"objective": "binary"}, "objective"),
        ({"objective": "regression", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.5}, "averaged"),
    ],
)
def test_what_the_ensemble_cannot_reproduce_is_refused(data, params, reason):
    x, y = data
    booster = lgb.train({"verbose": -1, "num_leaves": 4, **params}, lgb.Dataset(x, (y > 1).astype(float)), 3)
    with pytest.raises(UnsupportedForest, match=reason):
        ensemble_graph([booster])

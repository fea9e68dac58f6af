"""Batch encoding on Ray Data: the same vectors as the single-process path, in a build as on its own."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.conftest import scale_module
from towersearch.data import load_catalog, load_log
from towersearch.encoders import load_encoder
from towersearch.encoders.ray_engine import RayConfig, encode_on_ray
from towersearch.errors import ConfigError
from towersearch.index.build import IndexConfig, build_index
from towersearch.index.generations import current_generation
from towersearch.search.autocomplete import Suggester
from towersearch.search.dense import encode_products
from towersearch.text import TextConfig, product_text


@pytest.fixture(scope="module")
def ray_local():
    ray = scale_module("ray")
    yield RayConfig(actors=2, blocks=3)
    ray.shutdown()


def test_ray_encoding_equals_single_process(ray_local, tiny_store, tiny_model_dir):
    products = load_catalog(tiny_store["catalog"]).products * 5  # 30 texts over 3 blocks and 2 actors
    text = TextConfig()
    local = encode_products(load_encoder(tiny_model_dir, backend="torch"), products, text)
    texts = [product_text(p, text) for p in products]
    on_ray = encode_on_ray(tiny_model_dir, texts, tower="document", backend="torch", config=ray_local)
    assert on_ray.shape == local.shape and on_ray.dtype == np.float32
    np.testing.assert_allclose(on_ray, local, atol=1e-5)
    assert not np.allclose(on_ray[0], on_ray[2]), "rows stay in their order"


def test_index_built_on_ray_equals_a_local_build(ray_local, tiny_store, tiny_model_dir, tmp_path):
    catalog = load_catalog(tiny_store["catalog"])
    events = load_log(tiny_store["log"])[0]
    local = build_index(catalog, tmp_path / "local", events=events, model=tiny_model_dir,
                        config=IndexConfig(progress=False, encoder="torch"))  # fmt: skip
    ray = build_index(catalog, tmp_path / "ray", events=events, model=tiny_model_dir,
                      config=IndexConfig(progress=False, encoder="torch", engine="ray", ray=ray_local))  # fmt: skip
    assert ray["encode_engine"]["engine"] == "ray" and local["encode_engine"] == {"engine": "local"}
    folders = current_generation(tmp_path / "local"), current_generation(tmp_path / "ray")
    a, b = (np.load(f / "embeddings.npy") for f in folders)
    np.testing.assert_allclose(b, a, atol=1e-5)
    suggest = [Suggester.load(f) for f in folders]
    assert [c.text for c in suggest[0].candidates] == [c.text for c in suggest[1].candidates]
    stored = [np.asarray(s.embeddings, dtype=np.float32) for s in suggest]  # float16 in the index
    assert len(stored[0]) > 0
    np.testing.assert_allclose(stored[1], stored[0], atol=1e-3)


def test_missing_ray_gives_an_install_hint(monkeypatch, tiny_model_dir):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'towersearch\[scale\]'"):
        encode_on_ray(tiny_model_dir, ["milk"], tower="query")


def test_bad_ray_options_are_refused():
    with pytest.raises(ConfigError, match="threads and actors"):
        RayConfig(threads=0)
    with pytest.raises(ConfigError, match="engine must be one of"):
        IndexConfig(engine="spark")


def test_ray_data_logs_only_warnings_without_progress(ray_local):
    import logging

    from towersearch.encoders.ray_engine import start

    start(ray_local, progress=False)
    assert logging.getLogger("ray.data").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("ray.data._internal.progress").getEffectiveLevel() == logging.ERROR
    start(ray_local, progress=True)
    assert logging.getLogger("ray.data").getEffectiveLevel() == logging.INFO
    start(ray_local, progress=False)

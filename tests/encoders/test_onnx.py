"""The ONNX towers against PyTorch: agreement, fallback without an export, a stale export ignored."""

import shutil

import numpy as np
import pytest
import torch

from towersearch.encoders import load_encoder, onnx_status
from towersearch.encoders.onnx import SAMPLE_TEXTS, OnnxTowers, export_onnx, towers_of
from towersearch.errors import ArtifactError, ConfigError
from towersearch.index.artifacts import FINGERPRINT_CACHE, model_fingerprint
from towersearch.model import load_model
from towersearch.training.towers import untie

TEXTS = [*SAMPLE_TEXTS, "oat milk", "", "tortilla chips " * 30, "Crème fraîche 200 ml", "x"]


@pytest.fixture
def shared_dir(tiny_model_dir, tmp_path):
    folder = tmp_path / "shared"
    shutil.copytree(tiny_model_dir, folder)
    return folder


@pytest.fixture
def distinct_dir(tiny_model_dir, tmp_path):
    """Distinct towers: the query tower's weights perturbed so that the two graphs really differ."""
    model = untie(load_model(tiny_model_dir))
    with torch.no_grad():
        for p in model[0].sub_modules["query"][0].parameters():
            p.add_(0.05 * torch.randn_like(p))
    folder = tmp_path / "distinct"
    model.save(str(folder))
    return folder


def torch_vectors(model, route, texts):
    encode = model.encode_query if route == "query" else model.encode_document
    return encode(texts, convert_to_numpy=True, normalize_embeddings=True)


@pytest.mark.parametrize("which", ["shared_dir", "distinct_dir"])
def test_onnx_towers_agree_with_pytorch(which, request):
    folder = request.getfixturevalue(which)
    model = load_model(folder)
    before = [m.config._attn_implementation for m in model.modules() if hasattr(m, "set_attn_implementation")]
    manifest = export_onnx(model, folder)
    # exported with plain attention, and the model keeps its own setting afterwards
    assert all(t["attention"] == "eager" for t in manifest["towers"].values())
    assert [m.config._attn_implementation for m in model.modules() if hasattr(m, "set_attn_implementation")] == before
    assert set(manifest["towers"]) == ({"shared"} if which == "shared_dir" else {"query", "document"})
    assert all(t["max_abs_diff"] <= 1e-4 for t in manifest["towers"].values())
    onnx = load_encoder(folder)
    assert isinstance(onnx, OnnxTowers) and onnx_status(folder) == "ok"
    for route in ("query", "document"):
        want = torch_vectors(model, route, TEXTS)
        got = onnx.encode_query(TEXTS) if route == "query" else onnx.encode_document(TEXTS, batch_size=3)
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4, route
    if which == "distinct_dir":  # the two graphs are the two towers, not one of them twice
        assert np.abs(onnx.encode_query(TEXTS) - onnx.encode_document(TEXTS)).max() > 1e-3


def test_length_buckets_keep_the_input_order(shared_dir):
    export_onnx(load_model(shared_dir), shared_dir)
    onnx = load_encoder(shared_dir, backend="onnx")
    together = onnx.encode_document(TEXTS, batch_size=2)
    alone = np.stack([onnx.encode_document([t])[0] for t in TEXTS])
    assert np.abs(together - alone).max() <= 1e-5


def test_a_model_without_an_export_still_works(shared_dir):
    assert onnx_status(shared_dir) == "missing"
    encoder = load_encoder(shared_dir)
    assert not isinstance(encoder, OnnxTowers) and encoder.encode_query(["milk"]).shape == (1, 32)
    with pytest.raises(ArtifactError, match="has no ONNX export: run `towersearch export-onnx"):
        load_encoder(shared_dir, backend="onnx")
    with pytest.raises(ConfigError, match="unknown encoder backend 'tensorflow'"):
        load_encoder(shared_dir, backend="tensorflow")


def test_a_stale_export_is_detected_and_not_used(shared_dir):
    export_onnx(load_model(shared_dir), shared_dir)
    weights = next(p for p in shared_dir.rglob("*.safetensors") if "onnx" not in p.parts)
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\x00" * 8  # other weights, same size
    weights.write_bytes(bytes(data))
    assert onnx_status(shared_dir) == "stale"
    assert not isinstance(load_encoder(shared_dir), OnnxTowers)  # auto falls back to PyTorch
    with pytest.raises(ArtifactError, match="an ONNX export of other weights"):
        load_encoder(shared_dir, backend="onnx")


def test_int8_towers_stay_close(shared_dir):
    export_onnx(load_model(shared_dir), shared_dir, quantize=True)
    fp32, int8 = load_encoder(shared_dir), load_encoder(shared_dir, quantized=True)
    assert int8.quantized and not fp32.quantized
    a, b = fp32.encode_query(TEXTS), int8.encode_query(TEXTS)
    assert np.all(np.sum(a * b, axis=1) > 0.9)


def test_an_export_that_disagrees_is_refused_and_leaves_nothing(shared_dir):
    with pytest.raises(ArtifactError, match="differs from PyTorch by"):
        export_onnx(load_model(shared_dir), shared_dir, tolerance=-1.0)
    assert not (shared_dir / "onnx").exists() and not list(shared_dir.glob(".onnx-*"))


def test_other_pooling_does_not_export(shared_dir):
    model = load_model(shared_dir)
    model[1].pooling_mode = "cls"
    with pytest.raises(ArtifactError, match="only mean pooling exports"):
        towers_of(model)


def test_fingerprint_is_cached_until_a_file_changes(shared_dir, monkeypatch):
    from towersearch.index import artifacts

    first = model_fingerprint(shared_dir)
    assert (shared_dir / FINGERPRINT_CACHE).is_file()
    monkeypatch.setattr(artifacts, "file_sha256", lambda path: pytest.fail("hashed again"))
    assert model_fingerprint(shared_dir) == first
    monkeypatch.undo()
    config = shared_dir / "config_sentence_transformers.json"
    config.write_text(config.read_text() + " ")
    assert model_fingerprint(shared_dir) != first
    export_onnx(load_model(shared_dir), shared_dir)  # the export is not part of the fingerprint
    assert model_fingerprint(shared_dir) == model_fingerprint(shared_dir)
    assert onnx_status(shared_dir) == "ok"


def test_an_in_memory_copy_encodes_as_the_model_did_when_copied(distinct_dir, caplog, monkeypatch):
    from towersearch.encoders import onnx_copy

    model = load_model(distinct_dir)
    copy = onnx_copy(model)
    assert isinstance(copy, OnnxTowers) and not list(distinct_dir.glob("onnx*"))  # nothing written beside the model
    for route in ("query", "document"):
        want = torch_vectors(model, route, TEXTS)
        got = copy.encode_query(TEXTS) if route == "query" else copy.encode_document(TEXTS)
        assert np.abs(got - want).max() <= 1e-4, route
    before = copy.encode_document(TEXTS)
    with torch.no_grad():  # training goes on: the copy keeps the weights it was made from
        for p in model[0].sub_modules["document"][0].parameters():
            p.add_(0.05 * torch.randn_like(p))
    np.testing.assert_array_equal(copy.encode_document(TEXTS), before)
    # an export that fails leaves the PyTorch towers, with a warning
    import towersearch.encoders.onnx as onnx_module

    def refuse(*args, **kwargs):
        raise ArtifactError("the ONNX document tower differs from PyTorch")

    monkeypatch.setattr(onnx_module, "export_onnx", refuse)
    assert onnx_copy(model) is model
    assert "ONNX copy of the towers failed" in caplog.text

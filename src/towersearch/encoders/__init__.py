"""Loading the towers for encoding: ONNX Runtime when the model folder holds a matching export, else PyTorch.

Training trains on PyTorch (:func:`towersearch.model.load_model`) and encodes whole catalogues through
:func:`onnx_copy`; indexing and search call :func:`load_encoder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from towersearch.encoders.onnx import ONNX_DIR, OnnxTowers, export_onnx, onnx_copy, read_onnx_manifest
from towersearch.errors import ArtifactError, ConfigError

BACKENDS = ("auto", "onnx", "torch")

__all__ = ["BACKENDS", "OnnxTowers", "export_onnx", "load_encoder", "onnx_copy", "onnx_status", "quantize"]


def onnx_status(model_dir: str | Path, fingerprint: str | None = None, manifest: dict | None = None) -> str:
    """``ok``, ``missing`` or ``stale`` (exported from other weights than the folder holds now); ``manifest`` is
    the export's, when the caller has read it already."""
    from towersearch.index.artifacts import model_fingerprint

    manifest = manifest or read_onnx_manifest(model_dir)
    if manifest is None:
        return "missing"
    return "ok" if manifest["fingerprint"] == (fingerprint or model_fingerprint(model_dir)) else "stale"


def quantize(model):
    """An int8 copy of a PyTorch model for CPU inference (dynamic quantisation of every ``nn.Linear``)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch marks the torch.ao API as deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def load_encoder(
    model_dir: str | Path | None,
    *,
    backend: str = "auto",
    quantized: bool = False,
    fingerprint: str | None = None,
) -> Any:
    """The towers of ``model_dir`` (the untrained base model when None) for encoding.

    Args:
        model_dir: A model folder.
        backend: ``onnx`` (its export must be there and match the weights), ``torch``, or ``auto``: ONNX when a
            matching export is there, else PyTorch.
        quantized: int8 towers: the export's int8 graphs with ONNX, PyTorch dynamic quantisation with PyTorch.
        fingerprint: The folder's fingerprint when the caller has it already (saves hashing the weights again).

    Raises:
        ConfigError: an unknown backend.
        ArtifactError: ``backend="onnx"`` without a matching export.
    """
    from towersearch.model import base_model_path, load_model

    if backend not in BACKENDS:
        raise ConfigError(f"unknown encoder backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    folder = Path(model_dir) if model_dir is not None else base_model_path()
    if backend != "torch":
        manifest = read_onnx_manifest(folder)
        status = onnx_status(folder, fingerprint, manifest)
        usable = status == "ok" and (not quantized or all("int8" in t for t in manifest["towers"].values()))
        if usable:
            return OnnxTowers(folder / ONNX_DIR, manifest, quantized=quantized)
        if backend == "onnx":
            why = {"missing": "has no ONNX export", "stale": "has an ONNX export of other weights"}.get(
                status, "has no int8 ONNX graphs"
            )
            raise ArtifactError(f"{folder} {why}: run `towersearch export-onnx {folder}`")
    model = load_model(model_dir)
    return quantize(model) if quantized else model

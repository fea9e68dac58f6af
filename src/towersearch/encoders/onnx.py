"""The towers on ONNX Runtime: exported with PyTorch's own exporter, checked against PyTorch, run on CPU.

:func:`export_onnx` writes ``MODEL_DIR/onnx/``: one graph per tower (``query.onnx`` and ``document.onnx`` for
distinct towers, ``shared.onnx`` for one encoder), each taking ``input_ids``, ``attention_mask`` and
``token_type_ids`` (dynamic batch and sequence axes) and returning the mean-pooled, L2-normalised embedding, so
pooling and normalisation are inside the graph. ``manifest.json`` there records the fingerprint of the weights it
came from (:func:`~towersearch.index.artifacts.model_fingerprint`), each tower's maximum sequence length and the
largest absolute difference from the PyTorch embeddings on a fixed sample of queries and product texts; an export
that differs by more than ``tolerance`` (1e-4) is refused. With ``quantize=True`` an int8 copy of each graph is
written too (ONNX Runtime dynamic quantisation of the weights), for ``load_encoder(..., quantized=True)``.

Attention is exported in its plain ("eager") form: the graph PyTorch traces from the scaled-dot-product kernel, which
PyTorch itself uses by default, is larger and ran 4–13 % slower on ONNX Runtime (one 6-token query 1.31 against
1.27 ms, 16 product texts of 100 tokens 142 against 124 ms on 2 cores); the embeddings are the same within the
tolerance either way.

:class:`OnnxTowers` runs those graphs with the tokenizer of each tower (Hugging Face ``tokenizers``) and offers the
three methods towersearch uses of a ``SentenceTransformer``: ``encode_query``, ``encode_document`` and
``get_embedding_dimension``. Batches are bucketed by length (texts sorted by token count), so a batch pads
to its own longest text, not the catalogue's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from towersearch.errors import ArtifactError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

ONNX_DIR = "onnx"
ONNX_MANIFEST = "manifest.json"
ONNX_FORMAT = 1
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TOLERANCE = 1e-4

SAMPLE_TEXTS = (
    "milk",
    "organic oat milk",
    "mac n cheese",
    "gluten free tortilla chips family size",
    "2% reduced fat milk 1 gallon",
    "toliet paper",
    "[NAME] Valley Fresh Organic Oat Milk [BRAND] Valley Fresh [CATEGORY] dairy eggs > milk [SIZE] 64 fl oz",
    "Sunny Lane Keto Hard Salami. Keto hard genoa salami, made by Sunny Lane. Perfect for sandwiches, wraps and "
    "snack plates. " * 6,
)
"""Texts the exported graphs are checked on: short and long queries, product texts, one past 128 tokens."""


def towers_of(model: SentenceTransformer) -> dict[str, Any]:
    """The towers of a model: ``{"query": ..., "document": ...}`` for a ``Router``, ``{"shared": model}`` else.

    Each tower is a sequence of sentence-transformers modules: a ``Transformer``, a mean ``Pooling`` and
    optionally ``Normalize``.

    Raises:
        ArtifactError: another architecture (the graph computes mean pooling of one transformer).
    """
    first = model[0]
    if type(first).__name__ == "Router":
        routes = first.sub_modules
        towers = {name: list(routes[name]) for name in ("query", "document") if name in routes}
        if set(towers) != {"query", "document"}:
            raise ArtifactError(f"a Router with routes {sorted(routes)} cannot be exported; expected query, document")
    else:
        towers = {"shared": list(model)}
    for name, modules in towers.items():
        kinds = [type(m).__name__ for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or not set(kinds[2:]) <= {"Normalize"}:
            raise ArtifactError(f"tower {name!r} is {kinds}: only Transformer + mean Pooling (+ Normalize) export")
        pooling = modules[1]
        mode = getattr(pooling, "pooling_mode", None) or (
            "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else "other"
        )
        if mode != "mean":
            raise ArtifactError(f"tower {name!r} pools by {mode!r}: only mean pooling exports")
    return towers


@contextlib.contextmanager
def _eager_attention(auto_model):
    """``auto_model`` with plain attention for the export, its own setting restored afterwards."""
    before = getattr(auto_model.config, "_attn_implementation", None)
    if before in (None, "eager") or not hasattr(auto_model, "set_attn_implementation"):
        yield
        return
    auto_model.set_attn_implementation("eager")
    try:
        yield
    finally:
        auto_model.set_attn_implementation(before)


def _graph_module(transformer):
    """``transformer`` (sentence-transformers' module) as a torch module: token ids → normalised mean embedding."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self, auto_model) -> None:
            super().__init__()
            self.auto_model = auto_model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.auto_model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Tower(transformer.auto_model).eval()


def export_onnx(
    model: SentenceTransformer,
    model_dir: str | Path,
    *,
    fingerprint: str | None = None,
    quantize: bool = False,
    tolerance: float = TOLERANCE,
) -> dict[str, Any]:
    """Export every tower of ``model`` (loaded from ``model_dir``) to ``model_dir/onnx/`` and return its manifest.

    The folder is written beside and renamed into place, so a failed export leaves any previous one intact.

    Raises:
        ArtifactError: an architecture that does not export, or a graph whose embeddings differ from PyTorch's by
            more than ``tolerance``.
    """
    import torch

    from towersearch.index.artifacts import model_fingerprint

    model_dir = Path(model_dir)
    fingerprint = fingerprint or model_fingerprint(model_dir)
    towers = towers_of(model)
    target = model_dir / ONNX_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".onnx-", dir=model_dir))
    try:
        entries = {}
        for name, modules in towers.items():
            transformer = modules[0]
            graph = _graph_module(transformer)
            sample = transformer.tokenizer(
                ["organic oat milk", "tortilla chips"], padding=True, truncation=True, return_tensors="pt"
            )
            args = tuple(sample[k] if k in sample else torch.zeros_like(sample["input_ids"]) for k in INPUTS)
            path = tmp / f"{name}.onnx"
            with warnings.catch_warnings(), torch.no_grad(), _eager_attention(transformer.auto_model):
                warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
                torch.onnx.export(
                    graph,
                    args,
                    str(path),
                    input_names=list(INPUTS),
                    output_names=["embedding"],
                    dynamic_axes={**{k: {0: "batch", 1: "sequence"} for k in INPUTS}, "embedding": {0: "batch"}},
                    opset_version=OPSET,
                    dynamo=False,
                )
            tokenizer_file = tmp / f"{name}.tokenizer.json"
            transformer.tokenizer.backend_tokenizer.save(str(tokenizer_file))
            entries[name] = {
                "file": path.name,
                "tokenizer": tokenizer_file.name,
                "max_seq_length": int(transformer.max_seq_length),
                "dim": int(modules[1].get_embedding_dimension()),
                "attention": "eager",
            }
            if quantize:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                int8 = tmp / f"{name}.int8.onnx"
                quantize_dynamic(str(path), str(int8), weight_type=QuantType.QInt8)
                entries[name]["int8"] = int8.name
        manifest = {"format": ONNX_FORMAT, "fingerprint": fingerprint, "opset": OPSET, "towers": entries}
        onnx_model = OnnxTowers(tmp, manifest)
        for name in entries:
            route = "query" if name != "document" else "document"
            want = _torch_embeddings(model, route, list(SAMPLE_TEXTS))
            got = onnx_model._encode(name, list(SAMPLE_TEXTS), batch_size=4)
            diff = float(np.abs(want - got).max())
            entries[name]["max_abs_diff"] = diff
            if diff > tolerance:
                raise ArtifactError(f"the ONNX {name} tower differs from PyTorch by {diff:.2e} (> {tolerance:g})")
        (tmp / ONNX_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            old = model_dir / f".onnx-old-{os.getpid()}"
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def onnx_copy(model: SentenceTransformer) -> Any:
    """``model``'s towers on ONNX Runtime, for encoding a whole catalogue while training (hard-negative mining, the
    merge weights, the fusion calibration): an export to a temporary folder, checked against PyTorch as
    :func:`export_onnx` checks every export, whose sessions live on after the folder is gone.

    On 2 cores the export takes about 3 s and then encodes 297 demo product texts a second against PyTorch's 131
    (benchmarks/README, "Product encoding during training"). ``model`` itself comes back on a GPU, where PyTorch is
    the fast path, and where the export fails (logged; it costs only speed). Later changes to ``model``'s weights do
    not reach the copy.
    """
    import logging

    import torch

    device = getattr(model, "device", None)
    if device is not None and torch.device(device).type != "cpu":
        return model
    folder = Path(tempfile.mkdtemp(prefix="towersearch-onnx-"))
    try:
        manifest = export_onnx(model, folder, fingerprint="in-memory")
        return OnnxTowers(folder / ONNX_DIR, manifest)
    except Exception as exc:  # noqa: BLE001 - any failure of the export leaves the PyTorch path, only slower
        logging.getLogger(__name__).warning("encoding on PyTorch: the ONNX copy of the towers failed (%s)", exc)
        return model
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _torch_embeddings(model: SentenceTransformer, route: str, texts: list[str]) -> np.ndarray:
    encode = model.encode_query if route == "query" else model.encode_document
    return np.asarray(encode(texts, batch_size=4, convert_to_numpy=True, normalize_embeddings=True), dtype=np.float32)


def read_onnx_manifest(model_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of ``model_dir/onnx/``, or None when there is no (readable) export."""
    path = Path(model_dir) / ONNX_DIR / ONNX_MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if manifest.get("format") == ONNX_FORMAT else None


def default_threads() -> int:
    """Intra-op threads of an ONNX Runtime session: ``TOWERSEARCH_ONNX_THREADS``, else the cores, at most 4."""
    value = os.environ.get("TOWERSEARCH_ONNX_THREADS")
    if value:
        return max(1, int(value))
    return max(1, min(4, os.cpu_count() or 1))


class OnnxTowers:
    """The towers of an ONNX export (see the module docstring); a stand-in for ``SentenceTransformer`` in search.

    Args:
        folder: The ``onnx/`` folder.
        manifest: Its manifest (read from the folder when None).
        quantized: Run the int8 graphs (they must have been exported with ``quantize=True``).
        threads: Intra-op threads (:func:`default_threads` when None).
    """

    backend = "onnx"
    default_batch_size = 16
    """Texts per batch when the caller does not say: on 2 cores, batches of 8–16 texts of similar length encoded
    127 demo products a second, batches of 128 only 90."""

    def __init__(
        self,
        folder: str | Path,
        manifest: dict[str, Any] | None = None,
        *,
        quantized: bool = False,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.manifest = manifest or json.loads((self.folder / ONNX_MANIFEST).read_text(encoding="utf-8"))
        self.quantized = quantized
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        self._sessions = {}
        self._tokenizers = {}
        for name, entry in self.manifest["towers"].items():
            file = entry.get("int8") if quantized else entry["file"]
            if file is None:
                raise ArtifactError(f"{self.folder} has no int8 graph of the {name} tower: export with quantize")
            self._sessions[name] = ort.InferenceSession(
                str(self.folder / file), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(self.folder / entry["tokenizer"]))
            tokenizer.enable_truncation(entry["max_seq_length"])
            tokenizer.no_padding()
            self._tokenizers[name] = tokenizer

    def _tower(self, route: str) -> str:
        return route if route in self._sessions else "shared"

    def get_embedding_dimension(self) -> int:
        return int(next(iter(self.manifest["towers"].values()))["dim"])

    def encode_query(self, texts: Sequence[str], batch_size: int = 32, **_: Any) -> np.ndarray:
        """Normalised query-tower embeddings (extra sentence-transformers arguments are accepted and ignored)."""
        return self._encode(self._tower("query"), list(texts), batch_size)

    def encode_document(
        self, texts: Sequence[str], batch_size: int = 32, show_progress_bar: bool = False, **_: Any
    ) -> np.ndarray:
        """Normalised product-tower embeddings, in batches of texts of similar length."""
        return self._encode(self._tower("document"), list(texts), batch_size, progress=show_progress_bar)

    def _encode(self, tower: str, texts: list[str], batch_size: int, progress: bool = False) -> np.ndarray:
        dim = self.get_embedding_dimension()
        out = np.zeros((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizers[tower].encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        session = self._sessions[tower]
        starts = range(0, len(texts), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Encoding", unit="batch")
        for start in starts:
            rows = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            feed = {k: np.zeros((len(rows), width), dtype=np.int64) for k in INPUTS}
            for j, i in enumerate(rows):
                e = encodings[i]
                n = len(e.ids)
                feed["input_ids"][j, :n] = e.ids
                feed["attention_mask"][j, :n] = e.attention_mask
                feed["token_type_ids"][j, :n] = e.type_ids
            out[rows] = session.run(None, feed)[0]
        return out

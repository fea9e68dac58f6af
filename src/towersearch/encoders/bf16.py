"""Product encoding in bfloat16 on CPU: PyTorch autocast, fast where the CPU multiplies bf16 matrices natively.

Index builds spend nearly all their time in the product tower. On CPUs with AMX (Intel Xeon since Sapphire Rapids)
or AVX-512 BF16, PyTorch's ``torch.autocast("cpu", dtype=torch.bfloat16)`` runs the tower's matrix products in
bf16 at several times the fp32 rate; the embeddings then differ from fp32 by about 1e-3 per coordinate, and
retrieval quality did not move measurably (benchmarks/README, "Product encoding in bf16"). Queries stay on the
fp32 encoder: one short query gains nothing from it and must match the head-query table built in fp32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from towersearch.errors import ConfigError

PRECISIONS = ("fp32", "bf16")
log = logging.getLogger(__name__)


def check_precision(precision: str) -> str:
    """Raise a clear error for an unknown product precision."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown product precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    return precision


def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` ("cpu", "cuda", "cuda:1", …) computes bf16 natively: a CPU that multiplies bf16 matrices
    itself (AMX tiles or AVX-512 BF16), a GPU that supports bf16. Elsewhere autocast emulates bf16, slower than fp32."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind != "cpu":
        return False
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


class Bf16Products:
    """Products through the PyTorch product tower under bf16 autocast; queries through ``queries`` (fp32).

    Embeddings come back as L2-normalised float32, as from every other encoder.
    """

    backend = "torch-bf16"
    default_batch_size = 128

    def __init__(self, model, queries: Any) -> None:
        self.model, self.queries = model, queries
        if not native_bf16():
            log.warning("this CPU has no native bf16 (AMX or AVX-512 BF16): bf16 product encoding will be slow")

    def get_embedding_dimension(self) -> int:
        return self.queries.get_embedding_dimension()

    def encode_document(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        import torch

        kwargs = {**kwargs, "convert_to_numpy": True}
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            emb = self.model.encode_document(list(texts), **kwargs)
        emb = np.asarray(emb, dtype=np.float32)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return emb / np.maximum(norms, 1e-12)

    def encode_query(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        return self.queries.encode_query(texts, **kwargs)


def product_encoder(model_dir, precision: str, queries: Any) -> Any:
    """The encoder for product text at ``precision``: ``queries`` itself for fp32, else :class:`Bf16Products`
    over the folder's PyTorch towers."""
    from towersearch.model import load_model

    if check_precision(precision) == "fp32":
        return queries
    return Bf16Products(load_model(model_dir), queries)

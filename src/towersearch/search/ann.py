"""Nearest-neighbour search over product embeddings, behind a small interface.

:class:`VectorIndex` is what retrieval and the service use (build, add, search, save, load). The FAISS backend
ships here; a distributed vector database can be added as another class with the same methods without touching
retrieval or the service. Exact search (``IndexFlatIP``) is the default for small catalogues and HNSW above
``hnsw_threshold`` products; the recall@10 of an approximate index against exact search is measured when it is
built (:func:`ann_recall`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from towersearch.errors import ArtifactError, ConfigError
from towersearch.search.retriever import top_k

KINDS = ("auto", "flat", "hnsw")


class VectorIndex(Protocol):
    """Inner-product search over L2-normalised vectors (so scores are cosine similarities)."""

    kind: str

    def add(self, vectors: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``, each of shape (queries, k); missing results have row -1."""
        ...

    def save(self, path: str | Path) -> None: ...

    @classmethod
    def load(cls, path: str | Path, kind: str) -> VectorIndex: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class AnnConfig:
    """Which index to build."""

    kind: str = field(default="auto", metadata={"help": "auto, flat (exact) or hnsw."})
    hnsw_threshold: int = field(default=20_000, metadata={"help": "auto picks HNSW from this many products."})
    hnsw_m: int = field(default=32, metadata={"help": "HNSW graph degree."})
    ef_construction: int = field(default=200, metadata={"help": "HNSW build-time candidate list."})
    ef_search: int = field(default=128, metadata={"help": "HNSW search-time candidate list."})

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown ANN index kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if self.hnsw_m < 4 or self.ef_construction < 1 or self.ef_search < 1:
            raise ConfigError("hnsw_m must be >= 4 and ef_construction, ef_search >= 1")

    def resolve(self, n: int) -> str:
        """The concrete kind for ``n`` vectors."""
        if self.kind != "auto":
            return self.kind
        return "hnsw" if n >= self.hnsw_threshold else "flat"


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - a core dependency
        raise ArtifactError("FAISS is missing: pip install faiss-cpu") from None
    return faiss


SINGLE_THREAD_QUERIES = 8
"""Searches of at most this many vectors run on the calling thread alone (see :func:`single_threaded_search`)."""


def single_threaded_search() -> None:
    """Make FAISS search on the calling thread only.

    A live search encodes one query with PyTorch and then searches FAISS; both run OpenMP thread pools, and PyTorch's
    threads keep spinning for a moment after encoding, so a multi-threaded FAISS search of one vector waits for
    them: 14.5 ms against 8.9 ms per uncached search at 10,000 products on 2 cores. One query gains nothing from
    threads, and a server gets its parallelism from concurrent requests. OpenMP keeps the setting per thread, so
    :meth:`FaissIndex.search` calls this for small batches on whichever thread it runs.
    """
    _faiss().omp_set_num_threads(1)


class FaissIndex:
    """A FAISS index (``IndexFlatIP`` or ``IndexHNSWFlat`` with inner product)."""

    def __init__(self, index, kind: str) -> None:
        self._index = index
        self.kind = kind

    @classmethod
    def build(cls, vectors: np.ndarray, config: AnnConfig | None = None) -> FaissIndex:
        """An index over ``vectors`` of the kind ``config`` resolves to."""
        faiss = _faiss()
        config = config or AnnConfig()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        kind = config.resolve(len(vectors))
        dim = vectors.shape[1]
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        else:
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.ef_construction
            index.hnsw.efSearch = config.ef_search
        out = cls(index, kind)
        out.add(vectors)
        return out

    def add(self, vectors: np.ndarray) -> None:
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        if len(queries) <= SINGLE_THREAD_QUERIES:
            single_threaded_search()  # OpenMP settings belong to the calling thread: set it in each server worker
        scores, rows = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, rows

    def save(self, path: str | Path) -> None:
        _faiss().write_index(self._index, str(path))

    @classmethod
    def load(cls, path: str | Path, kind: str) -> FaissIndex:
        if not Path(path).is_file():
            raise ArtifactError(f"ANN index file missing: {path}")
        try:
            index = _faiss().read_index(str(path))
        except RuntimeError as exc:
            raise ArtifactError(f"ANN index {path} cannot be read: {str(exc).strip().splitlines()[-1]}") from None
        return cls(index, kind)

    def __len__(self) -> int:
        return int(self._index.ntotal)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Rows of the exact top ``k`` by inner product (the slow reference), best first."""
    scores = queries @ vectors.T
    return np.stack([top_k(row, k) for row in scores]) if len(scores) else np.zeros((0, k), dtype=np.int64)


def ann_recall(index: VectorIndex, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-``k`` neighbours the index returns, averaged over ``queries``."""
    if len(queries) == 0:
        return 1.0
    _, got = index.search(queries, k)
    truth = exact_search(vectors, queries, k)
    hits = sum(len(set(g.tolist()) & set(t.tolist())) for g, t in zip(got, truth, strict=True))
    return hits / truth.size

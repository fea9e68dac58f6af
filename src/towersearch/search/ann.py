"""Nearest-neighbour search over product embeddings, behind a small interface.

:class:`VectorIndex` is what retrieval and the service use (build, add, search, save, load). The FAISS backend
ships here; a distributed vector database can be added as another class with the same methods without touching
retrieval or the service. Exact search (``IndexFlatIP``) is the default for small catalogues and HNSW above
``hnsw_threshold`` products; the recall@10 of an approximate index against exact search is measured when it is
built (:func:`ann_recall`).

HNSW cannot delete a vector, so catalogue updates (:mod:`towersearch.index.update`) keep the graph and give every
vector a stable 64-bit id: the HNSW index is wrapped in ``faiss.IndexIDMap2`` (ids ``0..n-1`` when built), a new or
changed product's vector is added with a new id, and ``ann_ids.npy`` beside ``ann.faiss`` holds the id of each live
row (each product, in row order). Vectors whose id no row holds (deleted products, old versions of changed ones) are
dead: a search skips them with a FAISS id selector (a bitmap of the live ids, passed per search in
``SearchParametersHNSW``; the id map translates HNSW's internal numbers to ids before asking it). An index without
``ann_ids.npy`` (flat, or built before ids existed) maps search results to rows one to one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from towersearch.errors import ArtifactError, ConfigError
from towersearch.search.retriever import top_k

KINDS = ("auto", "flat", "hnsw", "milvus")


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

    def __len__(self) -> int:
        """The live vectors: one per row (product)."""
        ...


@dataclass(frozen=True)
class AnnConfig:
    """Which index to build."""

    kind: str = field(default="auto", metadata={"help": "auto, flat (exact), hnsw, or milvus (needs milvus_uri)."})
    hnsw_threshold: int = field(default=20_000, metadata={"help": "auto picks HNSW from this many products."})
    hnsw_m: int = field(default=32, metadata={"help": "HNSW graph degree."})
    ef_construction: int = field(default=200, metadata={"help": "HNSW build-time candidate list."})
    ef_search: int = field(default=128, metadata={"help": "HNSW search-time candidate list."})
    milvus_uri: str | None = field(
        default=None, metadata={"help": "Milvus: a milvus-lite file (store.db) or a server (http://host:19530)."}
    )
    collection: str = field(
        default="towersearch", metadata={"help": "Milvus: collection name prefix (one collection per generation)."}
    )

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown ANN index kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if (self.kind == "milvus") != (self.milvus_uri is not None):
            raise ConfigError(
                "the Milvus backend needs a URI (--ann milvus --milvus-uri store.db), and a URI needs --ann milvus"
            )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.collection or ""):
            raise ConfigError(
                f"collection must be letters, digits and underscores, starting with a letter, got {self.collection!r}"
            )
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


def single_threaded_numpy_blas() -> None:
    """Run numpy's (and SciPy's) OpenBLAS on one thread, for the whole process.

    The ranking stage's features and autocomplete's folding multiply small matrices with numpy. OpenBLAS spreads a
    product of a few thousand rows over its threads, which then keep spinning after it returns, and the next query
    tower run competes with them: one 3,000 × 384 product made the next query encoding 2.3 × slower (23 → 54 ms
    p50, 2 cores), and an uncached ranked search cost 72 ms p50 against 31 ms for hybrid. A search engine encodes
    with PyTorch or ONNX Runtime, which have threads of their own, and gains nothing from BLAS threads on one query.
    FAISS's own OpenBLAS (used for batches of queries) is left alone.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency; without it searches are only slower
        return
    for lib in ThreadpoolController().lib_controllers:
        if lib.internal_api == "openblas" and ("numpy" in lib.filepath or "scipy" in lib.filepath):
            lib.set_num_threads(1)


IDS_SUFFIX = "_ids.npy"
"""Beside an index file: the vector id of each live row (``ann.faiss`` → ``ann_ids.npy``)."""


def ids_path(path: str | Path) -> Path:
    """Where the row ids of index file ``path`` are kept: ``ann.faiss`` → ``ann_ids.npy``."""
    path = Path(path)
    return path.with_name(path.stem + IDS_SUFFIX)


class FaissIndex:
    """A FAISS index: ``IndexFlatIP``, or ``IndexHNSWFlat`` with inner product inside ``IndexIDMap2``.

    Args:
        index: The FAISS index.
        kind: ``flat`` or ``hnsw``.
        ids: The vector id of each row (int64, unique), or None when rows are the ids and every vector is live (a
            flat index, or an HNSW index built before ids existed). Vectors of the index whose id is not here are
            dead: searches skip them.

    Raises:
        ArtifactError: ``ids`` repeat an id, name ids the index does not hold, or (without an id map) are not the
            rows.
    """

    def __init__(self, index, kind: str, ids: np.ndarray | None = None) -> None:
        self._index = index
        self.kind = kind
        self.set_rows(ids)

    @property
    def id_mapped(self) -> bool:
        """Whether vectors have ids of their own (``IndexIDMap2``)."""
        return hasattr(self._index, "id_map")

    @property
    def vectors(self) -> int:
        """Vectors in the index, dead ones included."""
        return int(self._index.ntotal)

    @property
    def dead(self) -> int:
        """Vectors no row holds any more (deleted products, old versions of changed ones)."""
        return self.vectors - len(self)

    def stored_ids(self) -> np.ndarray:
        """The id of every vector in the index, dead ones included (rows ``0..n-1`` without an id map)."""
        if self.id_mapped:
            return _faiss().vector_to_array(self._index.id_map).astype(np.int64, copy=False)
        return np.arange(self.vectors, dtype=np.int64)

    def row_ids(self) -> np.ndarray:
        """The vector id of each row."""
        return np.arange(self.vectors, dtype=np.int64) if self.ids is None else self.ids

    @property
    def next_id(self) -> int:
        """The smallest id above every id in the index: where new vectors' ids start."""
        stored = self.stored_ids()
        return int(stored.max()) + 1 if len(stored) else 0

    def set_rows(self, ids: np.ndarray | None) -> None:
        """Make ``ids`` the live rows, in row order (None: every vector, rows = ids); see the class arguments."""
        self._row_of_id = None  # id → row, where ids are not the rows
        self._selector = None  # the live ids, where some vectors are dead
        self._bitmap = None  # the selector's memory, kept alive with it
        if ids is None:
            self.ids = None
            self._live = self.vectors
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ArtifactError(f"row ids must be one-dimensional, got shape {ids.shape}")
        self.ids = ids
        self._live = len(ids)
        if len(ids) == self.vectors and np.array_equal(ids, np.arange(len(ids))):
            return  # every vector live, ids = rows: nothing to map
        if not self.id_mapped:
            raise ArtifactError(f"an index without an id map has rows 0..{self.vectors - 1}; got other row ids")
        stored = self.stored_ids()
        if len(np.unique(ids)) != len(ids):
            raise ArtifactError("row ids repeat an id")
        if not np.isin(ids, stored).all():
            missing = ids[~np.isin(ids, stored)][:5].tolist()
            raise ArtifactError(f"row ids {missing} are not in the index")
        row_of_id = np.full(int(stored.max()) + 1 if len(stored) else 0, -1, dtype=np.int64)
        row_of_id[ids] = np.arange(len(ids))
        self._row_of_id = row_of_id
        if self.dead:
            faiss = _faiss()
            self._bitmap = np.packbits(row_of_id >= 0, bitorder="little")  # bit i: whether id i is live
            self._selector = faiss.IDSelectorBitmap(len(self._bitmap), faiss.swig_ptr(self._bitmap))
            self._ef_search = int(self._hnsw().hnsw.efSearch)

    def _hnsw(self):
        """The HNSW index inside the id map."""
        return _faiss().downcast_index(self._index.index) if self.id_mapped else self._index

    @classmethod
    def build(cls, vectors: np.ndarray, config: AnnConfig | None = None) -> FaissIndex:
        """An index over ``vectors`` of the kind ``config`` resolves to (HNSW: with ids ``0..n-1``)."""
        faiss = _faiss()
        config = config or AnnConfig()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        kind = config.resolve(len(vectors))
        dim = vectors.shape[1]
        if kind == "flat":
            out = cls(faiss.IndexFlatIP(dim), kind)
        else:
            hnsw = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = config.ef_construction
            hnsw.hnsw.efSearch = config.ef_search
            out = cls(faiss.IndexIDMap2(hnsw), kind, np.zeros(0, dtype=np.int64))
        out.add(vectors)
        return out

    def with_ids(self) -> FaissIndex:
        """This index with ids of its own: an HNSW index built before ids existed, wrapped in ``IndexIDMap2`` with
        ids = rows (its graph is kept, nothing is re-added); itself when it has an id map already.

        Raises:
            ArtifactError: a flat index (it is rebuilt rather than given ids) or one with dead vectors.
        """
        if self.id_mapped:
            return self
        if self.kind == "flat":
            raise ArtifactError("a flat index has no ids: rebuild it from the embeddings")
        faiss = _faiss()
        inner = self._index
        wrapper = faiss.IndexIDMap2(faiss.IndexFlatIP(inner.d))  # IndexIDMap2 only wraps an empty index:
        wrapper.index = inner  # put the populated one in its place, with ids = rows
        wrapper.referenced_objects = [inner]  # the wrapper does not own it: Python keeps it alive
        wrapper.ntotal = inner.ntotal
        faiss.copy_array_to_vector(np.arange(inner.ntotal, dtype=np.int64), wrapper.id_map)
        wrapper.construct_rev_map()
        return FaissIndex(wrapper, self.kind, np.arange(inner.ntotal, dtype=np.int64))

    def add(self, vectors: np.ndarray) -> None:
        """Append ``vectors`` as new rows (with new ids where the index has an id map)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not self.id_mapped:
            self._index.add(vectors)
            self.set_rows(None if self.ids is None else np.arange(self.vectors))
            return
        ids = self.add_with_ids(vectors)
        self.set_rows(np.concatenate([self.row_ids(), ids]))

    def add_with_ids(self, vectors: np.ndarray) -> np.ndarray:
        """Add ``vectors`` under new ids (from :attr:`next_id`) and return the ids; the rows are not changed: the new
        vectors are dead until :meth:`set_rows` names their ids.

        Raises:
            ArtifactError: the index has no id map (see :meth:`with_ids`).
        """
        if not self.id_mapped:
            raise ArtifactError("this index has no id map: call with_ids() first")
        ids = np.arange(self.next_id, self.next_id + len(vectors), dtype=np.int64)
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        return ids

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        if len(queries) <= SINGLE_THREAD_QUERIES:
            single_threaded_search()  # OpenMP settings belong to the calling thread: set it in each server worker
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self._selector is None:
            scores, labels = self._index.search(queries, k)
        else:  # a new parameter object per search: the id map swaps its selector in and out while it searches
            params = _faiss().SearchParametersHNSW(sel=self._selector, efSearch=self._ef_search)
            scores, labels = self._index.search(queries, k, params=params)
        if self._row_of_id is None:
            return scores, labels
        return scores, np.where(labels >= 0, self._row_of_id[np.maximum(labels, 0)], -1)

    def save(self, path: str | Path) -> None:
        """Write the index to ``path`` and, where it has row ids, ``ann_ids.npy`` beside it (:func:`ids_path`)."""
        _faiss().write_index(self._index, str(path))
        if self.ids is not None:
            np.save(ids_path(path), self.ids)
        else:
            ids_path(path).unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path, kind: str) -> FaissIndex:
        """Read an index saved by :meth:`save` (row ids from ``ann_ids.npy`` where it exists, else rows = ids).

        Raises:
            ArtifactError: a file is missing or unreadable, or the row ids do not fit the index.
        """
        if not Path(path).is_file():
            raise ArtifactError(f"ANN index file missing: {path}")
        try:
            index = _faiss().read_index(str(path))
        except RuntimeError as exc:
            raise ArtifactError(f"ANN index {path} cannot be read: {str(exc).strip().splitlines()[-1]}") from None
        ids = None
        if ids_path(path).is_file():
            try:
                ids = np.load(ids_path(path), allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ArtifactError(f"{ids_path(path)} cannot be read as a numpy array: {exc}") from None
        try:
            return cls(index, kind, ids)
        except ArtifactError as exc:
            raise ArtifactError(f"{ids_path(path)} does not fit {path}: {exc}") from None

    def __len__(self) -> int:
        """Live vectors: one per row."""
        return self._live


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

"""Milvus as the vector index: the same :class:`~towersearch.search.ann.VectorIndex` methods over a Milvus collection.

``towersearch index --ann milvus --milvus-uri URI [--collection NAME]`` writes the product vectors to Milvus instead
of ``ann.faiss``. A file path as URI is milvus-lite (the embedded Milvus in the ``milvus-lite`` package: no server,
one process at a time per file); ``http://host:19530`` is a Milvus standalone or cluster, with the same code.

The collection (``NAME_<tag>_<generation>``, the tag from the index folder's path, so a build never touches the
collection the live generation reads) holds one entity per product vector: ``id`` (int64 primary key), ``vector``
(HNSW, inner product over L2-normalised vectors, so scores are cosines) and the product's ``department``,
``category`` (full path) and ``brand``, casefolded, so a filtered search runs inside Milvus
(:func:`filter_expression`) rather than over a longer list afterwards. Ids are stable across catalogue updates, as
in the FAISS HNSW index: ``milvus_ids.npy`` in the generation gives each row its vector's id; an update inserts new and
changed products' vectors under new ids and deletes the ids no row holds any more once the new generation is live
(:mod:`towersearch.index.update`). Generations of one index share their collection after an update, so an older
generation kept for rollback no longer finds the products changed since.

Gotchas handled here: a bulk insert is followed by ``flush`` (searches on unflushed data are slow) and the
collection is loaded before its first search.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from towersearch.data.schema import Product, split_category
from towersearch.errors import ArtifactError, ConfigError

INSTALL_HINT = "the Milvus backend needs pymilvus and milvus-lite: pip install 'towersearch[scale]'"
FILTER_FIELDS = ("department", "category", "brand")
MAX_TEXT = 1024
"""Longest stored department, category or brand (characters); longer values are cut."""
INSERT_BATCH = 5000
REMOTE_SCHEMES = ("http://", "https://", "tcp://", "grpc://", "unix:")


def _pymilvus():
    try:
        import pymilvus
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return pymilvus


def is_lite(uri: str) -> bool:
    """Whether ``uri`` names a milvus-lite file (anything but a server address)."""
    return not uri.startswith(REMOTE_SCHEMES)


def resolve_uri(uri: str) -> str:
    """A server address as it is; a milvus-lite file as an absolute path (the index may be served from elsewhere).

    Raises:
        ConfigError: an empty URI, or a milvus-lite file whose folder does not exist.
    """
    if not uri:
        raise ConfigError("--milvus-uri is empty: give a milvus-lite file (store.db) or a server (http://host:19530)")
    if not is_lite(uri):
        return uri
    path = Path(uri).expanduser().resolve()
    if not path.parent.is_dir():
        raise ConfigError(f"milvus-lite file {path}: folder {path.parent} does not exist")
    return str(path)


def index_tag(root: str | Path) -> str:
    """Eight hex digits of the index folder's absolute path: two index folders sharing a Milvus and a collection
    prefix never touch each other's collections."""
    return hashlib.sha1(str(Path(root).resolve()).encode("utf-8")).hexdigest()[:8]


def collection_name(prefix: str, root: str | Path, generation: str) -> str:
    """The collection of one generation of index folder ``root``: ``prefix_<tag>_<generation>`` (:func:`index_tag`),
    with characters Milvus refuses replaced."""
    return re.sub(r"[^0-9A-Za-z_]", "_", f"{prefix}_{index_tag(root)}_{generation}")


def connect(uri: str):
    """A ``MilvusClient`` for ``uri`` (a clear error when milvus-lite or the server cannot be opened)."""
    pymilvus = _pymilvus()
    try:
        return pymilvus.MilvusClient(uri)
    except Exception as exc:  # pymilvus raises its own exception types, and milvus-lite plain ones
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        extra = " (milvus-lite opens a file in one process at a time)" if is_lite(uri) else ""
        raise ArtifactError(f"cannot open Milvus at {uri}{extra}: {detail}") from None


def _text(value: str) -> str:
    return value.casefold()[:MAX_TEXT]


def product_fields(products: Sequence[Product]) -> dict[str, list[str]]:
    """Per filter field, each product's value as stored (casefolded; a category as its normalised path)."""
    return {
        "department": [_text(p.department) for p in products],
        "category": [_text(" > ".join(split_category(p.category.casefold()))) for p in products],
        "brand": [_text(p.brand) for p in products],
    }


def _literal(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_expression(department: str | None = None, category: str | None = None) -> str | None:
    """A Milvus boolean expression for the engine's filters (same meaning as its own post-filter): the department
    equal (casefolded), the category path equal to or under ``category``. None when there is nothing to push down,
    or the category holds a ``like`` wildcard (``%``, ``_``), which is then left to the post-filter."""
    parts = []
    if department:
        parts.append(f"department == {_literal(_text(department))}")
    if category:
        path = " > ".join(split_category(category.casefold()))
        if path and not any(c in path for c in "%_"):
            parts.append(f"(category == {_literal(path)} or category like {_literal(path + ' > %')})")
    return " and ".join(parts) if parts else None


class MilvusIndex:
    """Inner-product search over a Milvus collection (see the module docstring).

    Args:
        client: An open ``MilvusClient``.
        uri: Where it points (recorded in the manifest).
        collection: The collection.
        ids: The vector id of each row (int64, unique); ids in the collection that no row holds are skipped.
        ef_search: HNSW's search-time candidate list.
    """

    kind = "milvus"
    filterable = True

    def __init__(self, client, uri: str, collection: str, ids: np.ndarray, ef_search: int = 128) -> None:
        self.client = client
        self.uri = uri
        self.collection = collection
        self.ef_search = ef_search
        self.dead_ids = np.zeros(0, dtype=np.int64)  # ids to delete once a new generation is live (updates)
        self.set_rows(ids)

    def set_rows(self, ids: np.ndarray) -> None:
        """Make ``ids`` the live rows, in row order."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.ndim != 1 or len(np.unique(ids)) != len(ids):
            raise ArtifactError("row ids must be one-dimensional and unique")
        self.ids = ids
        self._row_of_id = {int(i): r for r, i in enumerate(ids.tolist())}

    def row_ids(self) -> np.ndarray:
        return self.ids

    @property
    def next_id(self) -> int:
        """Where new vectors' ids start: above every id a row holds (ids of dead vectors are deleted first)."""
        return int(self.ids.max()) + 1 if len(self.ids) else 0

    @classmethod
    def create(
        cls,
        uri: str,
        collection: str,
        dim: int,
        *,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
    ) -> MilvusIndex:
        """An empty collection (an existing one of that name is dropped first) with its HNSW index."""
        pymilvus = _pymilvus()
        client = connect(uri)
        if client.has_collection(collection):
            client.drop_collection(collection)
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
        schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=dim)
        for name in FILTER_FIELDS:
            schema.add_field(name, pymilvus.DataType.VARCHAR, max_length=MAX_TEXT * 4)  # bytes: UTF-8
        params = client.prepare_index_params()
        params.add_index(
            field_name="vector",
            index_type="HNSW",
            metric_type="IP",
            params={"M": hnsw_m, "efConstruction": ef_construction},
        )
        client.create_collection(collection, schema=schema, index_params=params)
        return cls(client, uri, collection, np.zeros(0, dtype=np.int64), ef_search)

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        fields: dict[str, list[str]],
        uri: str,
        collection: str,
        *,
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
    ) -> MilvusIndex:
        """A new collection holding ``vectors`` with ids ``0..n-1`` and their filter ``fields``
        (:func:`product_fields`)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = cls.create(
            uri, collection, vectors.shape[1], hnsw_m=hnsw_m, ef_construction=ef_construction, ef_search=ef_search
        )
        ids = np.arange(len(vectors), dtype=np.int64)
        index.upsert(ids, vectors, fields)
        index.set_rows(ids)
        return index

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, fields: dict[str, list[str]]) -> None:
        """Write ``vectors`` (with their filter ``fields``) under ``ids``, replacing entities of the same id, then
        flush. The rows are not changed: see :meth:`set_rows`."""
        if len(ids) != len(vectors) or any(len(fields[f]) != len(ids) for f in FILTER_FIELDS):
            raise ValueError("ids, vectors and every filter field need one entry per vector")
        vectors = np.asarray(vectors, dtype=np.float32)
        for start in range(0, len(ids), INSERT_BATCH):
            stop = min(start + INSERT_BATCH, len(ids))
            rows = [
                {
                    "id": int(ids[i]),
                    "vector": vectors[i].tolist(),
                    **{f: fields[f][i] for f in FILTER_FIELDS},
                }
                for i in range(start, stop)
            ]
            self.client.upsert(self.collection, rows)
        self.client.flush(self.collection)
        self.client.load_collection(self.collection)

    def delete(self, ids: Sequence[int]) -> None:
        """Delete the vectors of ``ids`` from the collection (the rows are not changed)."""
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), INSERT_BATCH):
            self.client.delete(self.collection, ids=ids[start : start + INSERT_BATCH])
        if ids:
            self.client.flush(self.collection)

    def stored(self) -> int:
        """Entities in the collection, dead ones included."""
        return int(self.client.get_collection_stats(self.collection).get("row_count", 0))

    def search(self, queries: np.ndarray, k: int, where: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, rows)``, each of shape (queries, k), rows -1 where fewer than ``k`` match; ``where`` is a
        Milvus filter expression (:func:`filter_expression`)."""
        queries = np.asarray(queries, dtype=np.float32)
        k = min(k, len(self))
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        if k == 0 or len(queries) == 0:
            return scores, rows
        # vectors from id next_id up belong to an update not yet live: leave them out inside Milvus, so that k of
        # this generation's vectors come back (skipping them afterwards would return fewer)
        own = f"id < {self.next_id}"
        extra = {"filter": f"{own} and ({where})" if where else own}
        answers = self.client.search(
            self.collection,
            data=[q.tolist() for q in queries],
            limit=k,
            search_params={"metric_type": "IP", "params": {"ef": max(self.ef_search, k)}},
            output_fields=[],
            **extra,
        )
        for i, hits in enumerate(answers):
            j = 0
            for hit in hits:
                row = self._row_of_id.get(int(hit["id"]))
                if row is None:  # a vector of the previous generation, deleted just after this one went live
                    continue
                scores[i, j], rows[i, j] = hit["distance"], row
                j += 1
        return scores, rows

    def save(self, path: str | Path) -> None:
        """Write the row ids to ``path`` (:data:`MILVUS_IDS` in a generation); the vectors stay in Milvus, and the
        manifest names the URI and collection (:meth:`manifest_entry`)."""
        np.save(Path(path), self.ids)

    def manifest_entry(self) -> dict[str, Any]:
        """What the manifest's ``ann`` entry records to find the collection again."""
        return {"milvus_uri": self.uri, "collection_name": self.collection}

    @classmethod
    def load(cls, folder: str | Path, info: dict[str, Any]) -> MilvusIndex:
        """Connect to the collection an index generation names (``info``: the manifest's ``ann`` entry) with the
        generation's row ids.

        Raises:
            ArtifactError: the row ids are missing, or Milvus or the collection cannot be reached.
        """
        folder = Path(folder)
        path = folder / MILVUS_IDS
        if not path.is_file():
            raise ArtifactError(f"index {folder} is incomplete: {MILVUS_IDS} is missing")
        try:
            ids = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path} cannot be read as a numpy array: {exc}") from None
        uri, collection = info.get("milvus_uri"), info.get("collection_name")
        if not uri or not collection:
            raise ArtifactError(f"index {folder}: the manifest's ann entry names no Milvus URI and collection")
        client = connect(uri)
        if not client.has_collection(collection):
            raise ArtifactError(f"index {folder}: Milvus at {uri} has no collection {collection!r}")
        client.load_collection(collection)
        return cls(client, uri, collection, ids, int(info.get("ef_search", 128)))

    def close(self) -> None:
        self.client.close()

    def __len__(self) -> int:
        return len(self.ids)


MILVUS_IDS = "milvus_ids.npy"
"""In an index generation on Milvus: the vector id of each row."""

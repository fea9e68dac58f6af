"""``towersearch update``: new, changed and deleted products in an index without encoding the rest again.

An update writes a new generation derived from the current one (:func:`~towersearch.index.generations.new_generation`:
the same build lock, the same flush, rename and atomic switch of ``CURRENT``, the same clean-up as a build), so it is
durable (on disk before :func:`update_index` returns) and atomic (a reader loads the previous generation or the new
one, never half of it); a failed or killed update leaves ``CURRENT`` and the previous generation as they were.

What the new generation holds:

- ``products.parquet`` and ``embeddings.npy``: live products only, in row order: unchanged rows keep their order, a
  changed product is replaced in its row, new products are appended. Only upserted products that are new or differ
  from the stored one (any field) run through the product tower; every other row's embedding is copied byte for
  byte. An upsert equal to the stored product changes nothing, and a batch that changes nothing writes nothing.
- ``ann.faiss``: a flat (exact) index is built again from the new embeddings (a copy in memory, no training). HNSW
  cannot delete, so its graph is kept: new vectors are added under new ids, ``ann_ids.npy`` gives each row its
  vector's id, and searches skip the ids no row holds (see :mod:`towersearch.search.ann`). Once dead vectors would be
  more than ``compact_share`` (0.2) of the graph, the update builds HNSW again from the live embeddings instead
  (compaction, ids ``0..n-1``). An HNSW index from before ids existed is wrapped in an id map by its first update.
- ``bm25/``: built again from the live products (bm25s cannot update an index in place).
- Autocomplete: the log's candidates are kept as they were; the catalogue's phrases are computed again for the new
  products (:func:`~towersearch.search.autocomplete.catalog_candidates`, with the blocklist of the build), and only
  suggestion texts that are new run through the query tower.
- ``head_queries.*`` and ``model/``: the same files (hard links where the file system allows).
- ``review_insights.json`` (when the index has review insights): the same entries, less those of deleted products;
  new products have none until the next build with ``--reviews``.
- ``manifest.json``: the previous one with the new counts, the ANN index's dead vectors and compactions, and a line
  of update history (``updates``, the newest 100; ``updates_total``). ``catalog.path`` and ``catalog.sha256`` stay
  those of the catalogue file the first build read; ``catalog.products`` counts the live products.

The summary's ``seconds`` has one entry per step: ``validate`` (reading the current products and checking the
batch), ``model`` (linking the towers), ``encode``, ``ann``, ``bm25``, ``suggest``, ``write``, ``switch`` (flushing
the generation to disk, renaming it, switching ``CURRENT``, deleting old generations) and ``total``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from towersearch.data.catalog import load_catalog, storable, write_catalog
from towersearch.data.schema import Product
from towersearch.errors import ArtifactError, ConfigError, DataError
from towersearch.index.artifacts import (
    INDEX_KIND,
    MODEL_DIR,
    copy_model,
    index_model_dir,
    model_fingerprint,
    read_manifest,
    write_manifest,
)
from towersearch.index.generations import index_root, new_generation, resolve
from towersearch.reviews.insights import INSIGHTS_FILE, load_index_insights, save_insights
from towersearch.search.ann import AnnConfig, FaissIndex, ann_recall
from towersearch.search.autocomplete import catalog_candidates, load_suggestions, save_suggestions
from towersearch.search.dense import encode_products, encode_queries
from towersearch.search.lexical import BM25Retriever
from towersearch.search.milvus import MILVUS_IDS, MilvusIndex, product_fields
from towersearch.search.phrases import Vocabulary
from towersearch.text import TextConfig

COMPACT_SHARE = 0.2
"""An HNSW index is built again from the live embeddings once more than this share of its vectors would be dead."""
HISTORY = 100
"""Update entries kept in a generation's manifest (the newest); ``updates_total`` counts them all."""
LINKED_FILES = ("head_queries.json", "head_queries.npy")
"""Files an update takes over unchanged."""


class BatchError(DataError):
    """A bad item of an update batch; nothing of the batch is applied.

    Args:
        message: What is wrong with it.
        batch: The list it is in: ``upserts`` or ``deletes``.
        item: Its position there, from 0.
        field: The field at fault.
        reason: A short machine-readable key (``unknown_product`` for a delete of an id the index does not hold).
    """

    def __init__(
        self, message: str, *, batch: str, item: int, field: str = "product_id", reason: str = "invalid"
    ) -> None:
        self.batch = batch
        self.item = item
        super().__init__(message, field=field, reason=reason)


@dataclass
class UpdatePlan:
    """What an update does, checked against the current products before anything is written.

    Args:
        products: The new catalogue, in row order.
        source: For each new row, its row in the current generation, or -1 where the product must be encoded.
        added: Ids of new products.
        changed: Ids of products that differ from the stored ones.
        unchanged: Ids of upserts equal to the stored product (nothing to do).
        deleted: Ids of deleted products.
    """

    products: list[Product]
    source: np.ndarray
    added: list[str]
    changed: list[str]
    unchanged: list[str]
    deleted: list[str]

    @property
    def noop(self) -> bool:
        """Whether the batch changes nothing."""
        return not (self.added or self.changed or self.deleted)

    @property
    def encode_rows(self) -> np.ndarray:
        """The new rows the product tower must encode."""
        return np.flatnonzero(self.source < 0)


def plan_update(current: Sequence[Product], upserts: Sequence[Product], deletes: Sequence[str]) -> UpdatePlan:
    """Check an update batch against the current products and plan the new rows.

    Args:
        current: The products of the current generation, in row order.
        upserts: New products and new versions of stored ones (already checked as catalogue rows are).
        deletes: Ids of products to delete.

    Raises:
        BatchError: an upsert that is not a product, has an empty id or name, repeats an id of the batch or has
            attributes the catalogue cannot store; a delete of an unknown, repeated or empty id; an id both upserted
            and deleted; or a batch that would delete every product.
    """
    rows = {p.product_id: i for i, p in enumerate(current)}
    incoming: dict[str, Product] = {}
    for i, product in enumerate(upserts):
        if not isinstance(product, Product):
            raise BatchError(f"upserts[{i}] is a {type(product).__name__}, not a Product", batch="upserts", item=i)
        if not product.product_id or not product.product_id.strip():
            raise BatchError("empty product_id", batch="upserts", item=i)
        if not product.name or not product.name.strip():
            raise BatchError(f"product {product.product_id!r} has an empty name", batch="upserts", item=i, field="name")
        if product.product_id in incoming:
            raise BatchError(f"product {product.product_id!r} is upserted twice in the batch", batch="upserts", item=i)
        try:
            incoming[product.product_id] = storable(product)
        except DataError as exc:
            raise BatchError(exc.message, batch="upserts", item=i, field="attributes") from None
    gone: set[str] = set()
    for i, product_id in enumerate(deletes):
        if not isinstance(product_id, str) or not product_id.strip():
            raise BatchError(f"deletes[{i}] is not a product id: {product_id!r}", batch="deletes", item=i)
        if product_id in incoming:
            raise BatchError(
                f"product {product_id!r} is both upserted and deleted in one batch", batch="deletes", item=i
            )
        if product_id in gone:
            raise BatchError(f"product {product_id!r} is twice in the delete list", batch="deletes", item=i)
        if product_id not in rows:
            raise BatchError(
                f"unknown product {product_id!r} in the delete list", batch="deletes", item=i, reason="unknown_product"
            )
        gone.add(product_id)
    products: list[Product] = []
    source: list[int] = []
    changed: list[str] = []
    unchanged: list[str] = []
    for row, product in enumerate(current):
        if product.product_id in gone:
            continue
        new = incoming.get(product.product_id)
        if new is not None and new != product:
            products.append(new)
            source.append(-1)
            changed.append(product.product_id)
        else:
            if new is not None:
                unchanged.append(product.product_id)
            products.append(product)
            source.append(row)
    added = [product_id for product_id in incoming if product_id not in rows]
    products.extend(incoming[product_id] for product_id in added)
    source.extend([-1] * len(added))
    if not products:
        raise BatchError(
            "the batch would delete every product; an index needs at least one",
            batch="deletes",
            item=max(len(deletes) - 1, 0),
        )
    return UpdatePlan(products, np.array(source, dtype=np.int64), added, changed, unchanged, [*deletes])


def read_ids(path: str | Path) -> list[tuple[int, str]]:
    """The product ids of a file holding one per line, with their line numbers (from 1); blank lines are skipped
    and surrounding spaces ignored.

    Raises:
        DataError: the file is missing or not UTF-8, naming the line of the first byte that is not.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path, reason="missing_file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"cannot decode byte 0x{data[exc.start]:02x} as UTF-8", path=path, line=line) from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _link(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a generation's files never change in place), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _text_config(manifest: dict[str, Any]) -> TextConfig:
    return TextConfig(**{k: tuple(v) if k == "fields" else v for k, v in manifest["text"].items()})


def _load_current(root: Path) -> tuple[Path, dict[str, Any], list[Product]]:
    """The current generation of ``root``, its manifest and its products.

    Raises:
        ConfigError: ``root`` is a generation folder, not the index folder.
        ArtifactError: no index, or an unreadable one.
    """
    folder = resolve(root)
    if index_root(folder).resolve() != root.resolve():
        raise ConfigError(f"{root} is a generation of index folder {index_root(folder)}: update the index folder")
    manifest = read_manifest(folder, INDEX_KIND)
    products = load_catalog(folder / "products.parquet").products
    if manifest.get("catalog", {}).get("products", len(products)) != len(products):
        raise ArtifactError(f"index {folder}: products.parquet does not hold the products its manifest counts")
    return folder, manifest, products


class _Encoder:
    """The generation's towers, loaded the first time something needs encoding."""

    def __init__(self, model_dir: Path, backend: str, fingerprint: str, precision: str = "fp32") -> None:
        self.model_dir, self.backend, self.fingerprint, self.precision = model_dir, backend, fingerprint, precision
        self._model = self._products = None

    @property
    def model(self):
        if self._model is None:
            from towersearch.encoders import load_encoder

            self._model = load_encoder(self.model_dir, backend=self.backend, fingerprint=self.fingerprint)
        return self._model

    @property
    def products(self):
        """The encoder of product text, at the precision the index was built with."""
        if self._products is None:
            from towersearch.encoders.bf16 import product_encoder

            self._products = product_encoder(self.model_dir, self.precision, self.model)
        return self._products


def update_index(
    index_dir: str | Path,
    *,
    upserts: Sequence[Product] = (),
    deletes: Sequence[str] = (),
    progress: bool = False,
    compact_share: float = COMPACT_SHARE,
    keep: int = 2,
) -> dict[str, Any]:
    """Apply new, changed and deleted products to index folder ``index_dir`` as a new generation and switch to it.

    The batch is checked first and applied whole or not at all (see :func:`plan_update`); only new and changed
    products are encoded (see the module docstring for what each file becomes). A batch that changes nothing writes
    no generation (the summary's ``generation`` is then the current one). Updates and builds of one index folder run
    one at a time; an update applies to whichever generation is current once it holds the lock.

    Args:
        index_dir: The index folder (``INDEX_DIR``).
        upserts: New products and new versions of stored ones (catalogue rows already checked, for instance read
            with :func:`~towersearch.data.catalog.load_catalog` or :func:`~towersearch.data.catalog.parse_product`).
        deletes: Ids of products to delete.
        progress: Show a progress bar while encoding.
        compact_share: Build HNSW again from the live embeddings once more than this share of its vectors would
            be dead (0 < share <= 1).
        keep: Generations kept, as for a build.

    Returns:
        A summary: ``generation`` (the new one), ``previous``, the counts ``upserted``, ``added``, ``changed``,
        ``unchanged``, ``deleted``, ``products`` and ``encoded``, ``ann`` (kind, vectors, dead, compacted, converted),
        ``suggest`` (candidates, encoded) and ``seconds`` per step.

    Raises:
        BatchError: a bad item of the batch (nothing is written).
        ConfigError: ``compact_share`` outside (0, 1], or ``index_dir`` is a generation folder.
        ArtifactError: the index is missing, incomplete, or its model no longer matches it.
    """
    if not 0.0 < compact_share <= 1.0:
        raise ConfigError(f"compact_share must be in (0, 1], got {compact_share}")
    start = time.perf_counter()
    root = Path(index_dir)
    folder, manifest, current = _load_current(root)
    plan = plan_update(current, upserts, deletes)
    seconds: dict[str, float] = {"validate": time.perf_counter() - start}
    if plan.noop:
        return _summary(plan, upserts, manifest.get("generation"), manifest.get("generation"), {}, {}, seconds, start)
    with new_generation(root, keep=keep) as generation:
        if resolve(root) != folder:  # another build or update switched CURRENT before we held the lock
            folder, manifest, current = _load_current(root)
            plan = plan_update(current, upserts, deletes)
        step = time.perf_counter()
        tmp = generation.path
        built_with = manifest["model"]
        model_dir = index_model_dir(folder, built_with)
        if not model_dir.is_dir():
            raise ArtifactError(f"the index's model folder {model_dir} is missing")
        copy_model(model_dir, tmp / MODEL_DIR)
        fingerprint = model_fingerprint(tmp / MODEL_DIR)
        if fingerprint != built_with["fingerprint"]:
            raise ArtifactError(
                f"index {folder} was built with a model of fingerprint {built_with['fingerprint']}, but its model "
                f"folder {model_dir} now has {fingerprint}: rebuild the index with `towersearch index`"
            )
        precision = built_with.get("product_precision", "fp32")
        encoder = _Encoder(tmp / MODEL_DIR, built_with.get("encoder", "torch"), fingerprint, precision)
        text = _text_config(manifest)
        seconds["model"] = time.perf_counter() - step

        step = time.perf_counter()
        embeddings = _embeddings(folder, manifest, plan, encoder, text, progress)
        seconds["encode"] = time.perf_counter() - step

        step = time.perf_counter()
        ann, ann_info, ann_summary = _ann(folder, manifest, len(current), plan, embeddings, compact_share)
        seconds["ann"] = time.perf_counter() - step

        step = time.perf_counter()
        bm = manifest["bm25"]
        bm25 = BM25Retriever(
            plan.products,
            fields=bm["fields"],
            stemmer=bm["stemmer"],
            stopwords=bm["stopwords"],
            spelling=bm.get("spelling", False),
        )
        seconds["bm25"] = time.perf_counter() - step

        step = time.perf_counter()
        suggest_info, suggest_summary = _suggest(folder, tmp, manifest, current, plan, encoder, text)
        seconds["suggest"] = time.perf_counter() - step

        step = time.perf_counter()
        write_catalog(plan.products, tmp / "products.parquet")
        np.save(tmp / "embeddings.npy", embeddings)
        ann.save(tmp / (MILVUS_IDS if ann.kind == "milvus" else "ann.faiss"))
        bm25.save(tmp / "bm25")
        for name in LINKED_FILES:
            _link(folder / name, tmp / name)
        insights_info = _insights(folder, tmp, manifest, plan)
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "from": manifest.get("generation"),
            **_counts(plan, upserts),
            "compacted": ann_summary["compacted"],
        }
        fields = {k: v for k, v in manifest.items() if k not in ("kind", "format_version", "towersearch_version")}
        fields.pop("created", None)
        fields.update(
            generation=generation.name,
            model={**built_with, "path": MODEL_DIR},
            catalog={**manifest.get("catalog", {}), "products": len(plan.products)},
            ann=ann_info,
            updates=[*manifest.get("updates", []), entry][-HISTORY:],
            updates_total=int(manifest.get("updates_total", len(manifest.get("updates", [])))) + 1,
        )
        if suggest_info is not None:
            fields["suggest"] = suggest_info
        if insights_info is not None:
            fields["review_insights"] = insights_info
        write_manifest(tmp, INDEX_KIND, **fields)
        seconds["write"] = time.perf_counter() - step
        switch_start = time.perf_counter()
    seconds["switch"] = time.perf_counter() - switch_start  # flush to disk, rename, switch CURRENT, clean up
    if ann.kind == "milvus":  # live now: the replaced and deleted products' vectors go
        ann.delete(ann.dead_ids.tolist())
        ann.close()
    return _summary(
        plan, upserts, generation.name, manifest.get("generation"), ann_summary, suggest_summary, seconds, start
    )


def _counts(plan: UpdatePlan, upserts: Sequence[Product]) -> dict[str, int]:
    """What an update did, in numbers (the summary's and the manifest's history entry's)."""
    return {
        "upserted": len(upserts),
        "added": len(plan.added),
        "changed": len(plan.changed),
        "unchanged": len(plan.unchanged),
        "deleted": len(plan.deleted),
        "products": len(plan.products),
        "encoded": 0 if plan.noop else int(len(plan.encode_rows)),
    }


def _summary(
    plan: UpdatePlan,
    upserts: Sequence[Product],
    generation: str | None,
    previous: str | None,
    ann: dict[str, Any],
    suggest: dict[str, Any],
    seconds: dict[str, float],
    start: float,
) -> dict[str, Any]:
    seconds["total"] = time.perf_counter() - start
    return {
        "generation": generation,
        "previous": previous,
        "changed_anything": not plan.noop,
        **_counts(plan, upserts),
        "ann": ann,
        "suggest": suggest,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }


def _embeddings(
    folder: Path, manifest: dict[str, Any], plan: UpdatePlan, encoder: _Encoder, text: TextConfig, progress: bool
) -> np.ndarray:
    """The new rows' embeddings: copied where the product is unchanged, from the product tower where it is not."""
    stored = np.load(folder / "embeddings.npy", mmap_mode="r", allow_pickle=False)
    if stored.ndim != 2 or stored.shape[1] != manifest["dim"]:
        raise ArtifactError(f"index {folder}: embeddings shape {stored.shape} does not match the manifest")
    out = np.empty((len(plan.products), stored.shape[1]), dtype=np.float32)
    kept = np.flatnonzero(plan.source >= 0)
    out[kept] = stored[plan.source[kept]]
    rows = plan.encode_rows
    if len(rows):
        products = [plan.products[r] for r in rows.tolist()]
        out[rows] = encode_products(encoder.products, products, text, progress=progress)
    return out


def _milvus(
    folder: Path, info: dict[str, Any], stored: int, plan: UpdatePlan, embeddings: np.ndarray
) -> tuple[MilvusIndex, dict[str, Any], dict[str, Any]]:
    """:func:`_ann` on Milvus: new and changed products' vectors are upserted under new ids into the collection the
    current generation reads (its searches skip ids it does not know); the ids no row holds any more are deleted
    once the new generation is live (``ann.dead_ids``)."""
    ann = MilvusIndex.load(folder, info)
    if len(ann) != stored:
        raise ArtifactError(f"index {folder}: {MILVUS_IDS} holds {len(ann)} ids, not one per product")
    stored_ids = ann.row_ids()
    ids = np.empty(len(plan.products), dtype=np.int64)
    kept = np.flatnonzero(plan.source >= 0)
    ids[kept] = stored_ids[plan.source[kept]]
    rows = plan.encode_rows
    ids[rows] = np.arange(ann.next_id, ann.next_id + len(rows), dtype=np.int64)
    if len(rows):
        ann.upsert(ids[rows], embeddings[rows], product_fields([plan.products[r] for r in rows.tolist()]))
    ann.dead_ids = np.setdiff1d(stored_ids, ids)
    ann.set_rows(ids)
    summary = {"kind": "milvus", "vectors": len(ids), "dead": 0, "compacted": False, "converted": False}
    return ann, {**info, "vectors": len(ids), "dead": 0}, summary


def _ann(
    folder: Path,
    manifest: dict[str, Any],
    stored: int,
    plan: UpdatePlan,
    embeddings: np.ndarray,
    compact_share: float,
) -> tuple[FaissIndex | MilvusIndex, dict[str, Any], dict[str, Any]]:
    """The new vector index, its manifest entry and its part of the summary."""
    info = dict(manifest["ann"])
    kind = info["kind"]
    converted = compacted = False
    compactions = int(info.get("compactions", 0))
    if kind == "milvus":
        return _milvus(folder, info, stored, plan, embeddings)
    if kind == "flat":
        ann = FaissIndex.build(embeddings, AnnConfig(kind="flat"))
    else:
        config = AnnConfig(
            kind="hnsw",
            hnsw_m=int(info.get("hnsw_m", AnnConfig.hnsw_m)),
            ef_construction=int(info.get("ef_construction", AnnConfig.ef_construction)),
            ef_search=int(info.get("ef_search", AnnConfig.ef_search)),
        )
        ann = FaissIndex.load(folder / "ann.faiss", kind)
        if len(ann) != stored:
            raise ArtifactError(f"index {folder}: ann.faiss holds {len(ann)} live vectors, not one per product")
        converted = not ann.id_mapped
        ann = ann.with_ids()
        rows = plan.encode_rows
        vectors = ann.vectors + len(rows)
        if vectors - len(plan.products) > compact_share * vectors:
            ann = FaissIndex.build(embeddings, config)
            compacted = True
            compactions += 1
        else:
            stored_ids = ann.row_ids()
            ids = np.empty(len(plan.products), dtype=np.int64)
            kept = np.flatnonzero(plan.source >= 0)
            ids[kept] = stored_ids[plan.source[kept]]
            ids[rows] = ann.add_with_ids(embeddings[rows])
            ann.set_rows(ids)
    recall, probes = 1.0, 0
    if kind != "flat":
        probe = np.load(folder / "head_queries.npy", allow_pickle=False)[: int(info.get("recall_queries", 500))]
        if len(probe) == 0:
            n = min(int(info.get("recall_queries", 500)) or 500, len(embeddings))
            probe = embeddings[np.random.default_rng(0).choice(len(embeddings), n, False)]
        recall, probes = ann_recall(ann, embeddings, probe, k=10), len(probe)
    info.update(
        {
            "recall@10": round(recall, 4),
            "recall_queries": int(probes) if kind != "flat" else info.get("recall_queries", 0),
            "vectors": ann.vectors,
            "dead": ann.dead,
            "compactions": compactions,
            "compact_share": compact_share,
        }
    )
    summary = {
        "kind": kind,
        "vectors": ann.vectors,
        "dead": ann.dead,
        "compacted": compacted,
        "converted": converted,
        "recall@10": round(recall, 4),
    }
    return ann, info, summary


def _insights(folder: Path, tmp: Path, manifest: dict[str, Any], plan: UpdatePlan) -> dict[str, Any] | None:
    """The current generation's review insights, less deleted products', written to ``tmp``; the manifest's
    ``review_insights`` entry, or None for an index without insights."""
    insights = load_index_insights(folder, manifest)
    if insights is None:
        return None
    live = {p.product_id for p in plan.products}
    kept = {product_id: entry for product_id, entry in insights.items() if product_id in live}
    save_insights(tmp / INSIGHTS_FILE, kept)
    return {**(manifest.get("review_insights") or {}), "path": INSIGHTS_FILE, "products": len(kept)}


def _suggest(
    folder: Path,
    tmp: Path,
    manifest: dict[str, Any],
    current: Sequence[Product],
    plan: UpdatePlan,
    encoder: _Encoder,
    text: TextConfig,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Autocomplete for the new products: the log's candidates kept, the catalogue's recomputed; new texts encoded.

    Returns the manifest's ``suggest`` entry and the summary's, or ``(None, {})`` for an index without autocomplete.
    """
    if not (folder / "suggest.jsonl").is_file():
        return None, {}
    candidates, stored, config, _ = load_suggestions(folder)
    logged = [c for c in candidates if c.source != "catalog"]
    taken = {c.text for c in logged}
    info = dict(manifest.get("suggest", {}))
    if "blocklist" in info:
        blocklist = set(info["blocklist"])
    else:  # built before the blocklist was recorded: the old catalogue's phrases its candidates lack were blocked
        before = {c.text for c in catalog_candidates(current, taken, config=config)}
        blocklist = before - {c.text for c in candidates if c.source == "catalog"}
    vocabulary = Vocabulary.from_products(plan.products)
    fresh = catalog_candidates(plan.products, taken, config=config, blocklist=blocklist, vocabulary=vocabulary)
    merged = sorted([*logged, *fresh], key=lambda c: c.text)
    vectors = None
    encoded = 0
    if stored is not None:
        row_of = {c.text: i for i, c in enumerate(candidates)}
        rows = np.fromiter((row_of.get(c.text, -1) for c in merged), dtype=np.int64, count=len(merged))
        vectors = np.empty((len(merged), stored.shape[1]), dtype=np.float32)
        found = np.flatnonzero(rows >= 0)
        vectors[found] = stored[rows[found]]
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            vectors[missing] = encode_queries(encoder.model, [merged[i].text for i in missing.tolist()], text)
        encoded = int(len(missing))
    save_suggestions(tmp, merged, vectors, config, vocabulary.modifiers)
    info.update(
        candidates=len(merged),
        from_log=len(logged),
        from_catalog=len(fresh),
        blocklist=sorted(blocklist),
    )
    return info, {"candidates": len(merged), "catalog": len(fresh), "encoded": encoded}

"""``towersearch index``: turn a catalogue (and a model, and a log) into a search index folder.

Each build is a new generation of the index folder (:mod:`towersearch.index.generations`):
``INDEX_DIR/generations/<name>/`` holds plain files: ``products.parquet`` (the catalogue), ``embeddings.npy``
(product tower, L2-normalised float32), ``ann.faiss``, ``bm25/`` (bm25s's own files), ``head_queries.json`` and
``head_queries.npy`` (the most frequent log queries, encoded by the query tower so that most live queries never
run the encoder), the autocomplete candidates with their query-tower embeddings (``suggest.jsonl``,
``suggest_embeddings.npy``, ``suggest_config.json``, ``suggest_modifiers.json``), ``model/`` (the towers it was
built with, hard-linked or copied, so the generation loads wherever it is moved), ``review_insights.json`` when the
build is given review insights (:mod:`towersearch.reviews.insights`) and ``manifest.json``.
``INDEX_DIR/CURRENT`` is switched to the new generation atomically once it is complete, so a crash or Ctrl-C
mid-build leaves the previous index intact and a reload during a build sees the previous generation or the new
one, never a mix. An HNSW index is built with vector ids (``ann_ids.npy``), so that catalogue updates
(:mod:`towersearch.index.update`) can replace and delete products without building it again.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from towersearch.data.catalog import Catalog, write_catalog
from towersearch.data.schema import LogEvent, normalize_query
from towersearch.encoders import BACKENDS, export_onnx, load_encoder, onnx_status
from towersearch.encoders.bf16 import check_precision, product_encoder
from towersearch.encoders.ray_engine import RayConfig, encode_on_ray
from towersearch.errors import ArtifactError, ConfigError
from towersearch.index.artifacts import (
    INDEX_KIND,
    MANIFEST,
    MODEL_DIR,
    copy_model,
    file_sha256,
    model_fingerprint,
    write_manifest,
)
from towersearch.index.generations import GENERATIONS, generations, new_generation
from towersearch.model import (
    base_model_path,
    load_model,
    model_feedback,
    model_fusion,
    model_text_config,
    text_config_dict,
)
from towersearch.reviews.insights import INSIGHTS_FILE, save_insights
from towersearch.search.ann import AnnConfig, FaissIndex, ann_recall
from towersearch.search.autocomplete import SuggestConfig, Suggester, build_candidates, load_blocklist
from towersearch.search.dense import encode_products, encode_queries
from towersearch.search.lexical import DEFAULT_FIELDS, BM25Retriever
from towersearch.search.milvus import (
    MILVUS_IDS,
    MilvusIndex,
    collection_name,
    index_tag,
    product_fields,
    resolve_uri,
)
from towersearch.search.phrases import Vocabulary
from towersearch.text import product_text, query_text

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class IndexConfig:
    """Options of ``towersearch index``."""

    ann: AnnConfig = field(default_factory=AnnConfig, metadata={"help": "ANN index kind and parameters."})
    head_queries: int = field(default=10_000, metadata={"help": "Most frequent log queries to pre-encode."})
    bm25_fields: tuple[str, ...] = field(default=DEFAULT_FIELDS, metadata={"help": "Fields BM25 indexes."})
    stemmer: str = field(default="english", metadata={"help": "BM25 stemmer: english or none."})
    spelling: bool = field(
        default=True,
        metadata={"help": "BM25 reads a query word it does not know as the index term it most likely misspells."},
    )
    batch_size: int | None = field(
        default=None,
        metadata={"help": "Products per encoding batch (default: 16 on ONNX Runtime, 128 on PyTorch)."},
    )
    recall_queries: int = field(default=500, metadata={"help": "Queries used to measure ANN recall@10."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})
    suggest: SuggestConfig = field(default_factory=SuggestConfig, metadata={"help": "Autocomplete options."})
    blocklist: Path | None = field(default=None, metadata={"help": "File of phrases never to suggest."})
    encoder: str = field(
        default="auto",
        metadata={
            "help": "Encoder backend: auto (ONNX Runtime, exporting the towers into the index when the model has no "
            "export), onnx, or torch (PyTorch)."
        },
    )
    product_precision: str = field(
        default="fp32",
        metadata={
            "help": "Precision of product encoding: fp32, or bf16 (PyTorch autocast: several times faster on CPUs "
            "with AMX or AVX-512 BF16, embeddings within about 1e-3; queries stay fp32)."
        },
    )
    engine: str = field(
        default="local",
        metadata={"help": "Where products and suggestions are encoded: local (this process) or ray (Ray Data)."},
    )
    ray: RayConfig = field(default_factory=RayConfig, metadata={"help": "Ray Data options (engine ray)."})

    def __post_init__(self) -> None:
        if self.head_queries < 0:
            raise ConfigError(f"head_queries must be >= 0, got {self.head_queries}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.encoder not in BACKENDS:
            raise ConfigError(f"encoder must be one of {', '.join(BACKENDS)}, got {self.encoder!r}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        check_precision(self.product_precision)
        if self.product_precision != "fp32" and self.engine != "local":
            raise ConfigError("bf16 product encoding runs in this process: use --engine local")


def head_queries(events: Sequence[LogEvent], n: int) -> list[str]:
    """The ``n`` most searched queries: counted once per session (or per row where sessions are missing)."""
    seen: set[tuple[str, str]] = set()
    counts: Counter[str] = Counter()
    for i, e in enumerate(events):
        query = normalize_query(e.query)
        key = (query, e.session_id or f"row{i}")
        if key not in seen:
            seen.add(key)
            counts[query] += e.count if not e.session_id else 1
    return [q for q, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]]


def build_index(
    catalog: Catalog,
    out_dir: str | Path,
    *,
    events: Sequence[LogEvent] = (),
    model: str | Path | None = None,
    config: IndexConfig | None = None,
    catalog_path: str | Path | None = None,
    keep: int = 2,
    activate: bool = True,
    insights: Mapping[str, Mapping[str, Any]] | None = None,
    insights_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a new generation of index folder ``out_dir``, switch ``CURRENT`` to it and return its manifest.

    The model folder is copied into the generation first (hard links where possible) and the generation is built
    with that copy, so the vectors and the stored towers always match. Generations other than the new one and
    the ``keep - 1`` before it are deleted after the switch.

    With ``activate=False`` the new generation is written but ``CURRENT`` is not switched and nothing is deleted
    (a staged candidate: see :func:`~towersearch.index.generations.new_generation`); the manifest's ``generation``
    names it for :func:`~towersearch.index.generations.promote` or :func:`~towersearch.index.generations.discard`.

    ``insights`` (product_id → review insights, from :func:`~towersearch.reviews.insights.product_insights`) are
    stored as ``review_insights.json`` for the products of the catalogue; entries of other products are dropped and
    counted in the manifest's ``review_insights`` (``products``, ``dropped_products``, and ``insights_info``: what
    they were made from).
    """
    config = config or IndexConfig()
    if insights is not None:
        kept_insights = {product_id: dict(entry) for product_id, entry in insights.items() if product_id in catalog}
        insights_entry = {
            **dict(insights_info or {}),
            "path": INSIGHTS_FILE,
            "products": len(kept_insights),
            "dropped_products": len(insights) - len(kept_insights),
        }
    start = time.perf_counter()
    source = Path(model) if model is not None else base_model_path()
    if not (source / "modules.json").is_file():
        raise ArtifactError(f"{source} is not a sentence-transformers model folder (no modules.json)")
    with new_generation(out_dir, keep=keep, activate=activate) as generation:
        tmp = generation.path
        model_dir = tmp / MODEL_DIR
        copy_model(source, model_dir)
        fingerprint = model_fingerprint(model_dir)
        if config.encoder != "torch" and onnx_status(model_dir, fingerprint) != "ok":
            export_onnx(load_model(model_dir), model_dir, fingerprint=fingerprint, quantize=True)
        encoder = load_encoder(model_dir, backend=config.encoder, fingerprint=fingerprint)
        text = model_text_config(model_dir)

        def on_ray(texts: list[str], tower: str, batch_size: int | None = None) -> np.ndarray:
            ray = replace(config.ray, batch_size=config.ray.batch_size or batch_size)
            backend = getattr(encoder, "backend", "torch")
            return encode_on_ray(
                model_dir, texts, tower=tower, backend=backend, fingerprint=fingerprint, config=ray,
                progress=config.progress,
            )  # fmt: skip

        if config.engine == "ray":
            embeddings = on_ray([product_text(p, text) for p in catalog.products], "document", config.batch_size)
        else:
            products_encoder = product_encoder(model_dir, config.product_precision, encoder)
            embeddings = encode_products(
                products_encoder, catalog.products, text, batch_size=config.batch_size, progress=config.progress
            )
            del products_encoder
        encode_seconds = time.perf_counter() - start
        ann = _vector_index(embeddings, catalog, config.ann, Path(out_dir), generation.name)
        heads = head_queries(events, config.head_queries) if events else []
        head_vectors = (
            encode_queries(encoder, heads, text) if heads else np.zeros((0, embeddings.shape[1]), dtype=np.float32)
        )
        probe = head_vectors[: config.recall_queries]
        if len(probe) == 0:
            rows = np.random.default_rng(0).choice(len(embeddings), min(config.recall_queries, len(embeddings)), False)
            probe = embeddings[rows]
        recall = ann_recall(ann, embeddings, probe, k=10) if ann.kind != "flat" else 1.0
        bm25 = BM25Retriever(
            catalog.products, fields=config.bm25_fields, stemmer=config.stemmer, spelling=config.spelling
        )
        vocabulary = Vocabulary.from_products(catalog.products)
        blocklist = load_blocklist(config.blocklist)
        suggest_candidates = build_candidates(
            events,
            catalog.products,
            config=config.suggest,
            blocklist=blocklist,
            returns_nothing=lambda q: not bm25.search([q], 1)[0],
            vocabulary=vocabulary,
        )
        if not suggest_candidates:
            suggest_vectors = np.zeros((0, embeddings.shape[1]), dtype=np.float32)
        elif config.engine == "ray":
            suggest_vectors = on_ray([query_text(c.text, text) for c in suggest_candidates], "query")
        else:
            suggest_vectors = encode_queries(encoder, [c.text for c in suggest_candidates], text)
        suggester = Suggester(suggest_candidates, suggest_vectors, config.suggest, vocabulary.modifiers)
        write_catalog(catalog.products, tmp / "products.parquet")
        np.save(tmp / "embeddings.npy", embeddings)
        ann.save(tmp / (MILVUS_IDS if ann.kind == "milvus" else "ann.faiss"))
        bm25.save(tmp / "bm25")
        np.save(tmp / "head_queries.npy", head_vectors)
        (tmp / "head_queries.json").write_text(json.dumps(heads, ensure_ascii=False), encoding="utf-8")
        suggester.save(tmp)
        if insights is not None:
            save_insights(tmp / INSIGHTS_FILE, kept_insights)
        extra = {"review_insights": insights_entry} if insights is not None else {}
        manifest = write_manifest(
            tmp,
            INDEX_KIND,
            generation=generation.name,
            model={
                "path": MODEL_DIR,
                "source": str(source),
                "untrained": model is None,
                "fingerprint": fingerprint,
                "encoder": getattr(encoder, "backend", "torch"),
                "product_precision": config.product_precision,
            },
            catalog={
                "path": str(catalog_path) if catalog_path else None,
                "sha256": file_sha256(catalog_path) if catalog_path else None,
                "products": len(catalog),
            },
            dim=int(embeddings.shape[1]),
            metric="cosine",
            text=text_config_dict(text),
            fusion=model_fusion(model_dir).as_dict(),
            feedback=model_feedback(model_dir).as_dict(),
            ann={
                "kind": ann.kind,
                "recall@10": round(recall, 4),
                "recall_queries": int(len(probe)),
                **{k: v for k, v in vars(config.ann).items() if k != "kind"},
                **(ann.manifest_entry() if ann.kind == "milvus" else {}),
            },
            bm25={
                "fields": list(config.bm25_fields),
                "stemmer": config.stemmer,
                "stopwords": "en",
                "spelling": config.spelling,
            },
            head_queries=len(heads),
            suggest={
                "candidates": len(suggest_candidates),
                "from_log": sum(c.source == "log" for c in suggest_candidates),
                "from_catalog": sum(c.source == "catalog" for c in suggest_candidates),
                "blocklist": sorted(blocklist),  # catalogue updates recompute the catalogue's phrases with it
            },
            build_seconds=round(time.perf_counter() - start, 1),
            encode_seconds=round(encode_seconds, 1),
            encode_engine={"engine": config.engine, "ray_address": config.ray.address}
            if config.engine == "ray"
            else {"engine": "local"},
            **extra,
        )
    if ann.kind == "milvus":  # the collections of generations the switch deleted go too
        drop_stale_collections(ann, out_dir, config.ann.collection)
        ann.close()
    return manifest


def drop_stale_collections(index: MilvusIndex, root: str | Path, prefix: str) -> list[str]:
    """Drop the collections ``prefix_<tag>_<generation>`` of index folder ``root`` that no generation's manifest
    names any more (their generations were deleted by a clean-up, or their build failed); returns their names. Other
    collections (other index folders', other prefixes') are never touched, and nothing is dropped when a
    generation's manifest cannot be read."""
    live = set()
    for name in generations(root):
        try:
            manifest = json.loads((Path(root) / GENERATIONS / name / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        live.add(manifest.get("ann", {}).get("collection_name"))
    pattern = re.compile(re.escape(f"{prefix}_{index_tag(root)}_"))
    stale = [c for c in index.client.list_collections() if pattern.match(c) and c not in live]
    for name in stale:
        index.client.drop_collection(name)
    return stale


def _vector_index(embeddings: np.ndarray, catalog: Catalog, config: AnnConfig, root: Path, generation: str):
    """The product vectors' index: FAISS (flat or HNSW), or a new Milvus collection for this generation."""
    if config.kind != "milvus":
        return FaissIndex.build(embeddings, config)
    return MilvusIndex.build(
        embeddings,
        product_fields(catalog.products),
        resolve_uri(config.milvus_uri or ""),
        collection_name(config.collection, root, generation),
        hnsw_m=config.hnsw_m,
        ef_construction=config.ef_construction,
        ef_search=config.ef_search,
    )

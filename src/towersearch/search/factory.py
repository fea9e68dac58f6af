"""The retrievers ``evaluate``, ``search`` and the service ask for, composed one way from their parts.

:func:`compose` is the one place that turns a lexical retriever, a dense retriever and a fusion into the named
retrievers (``bm25``, ``dense``, ``hybrid``). The in-memory path (:func:`build_retrievers`, for
``evaluate --catalog``) and a loaded index (:class:`~towersearch.search.engine.SearchEngine`) both call it, so the
same mode runs the same code whichever way its parts were made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from towersearch.data.catalog import Catalog
from towersearch.errors import ConfigError
from towersearch.search.dense import DenseRetriever
from towersearch.search.hybrid import Fusion, HybridRetriever
from towersearch.search.lexical import DEFAULT_FIELDS, BM25Retriever
from towersearch.search.retriever import Retriever

RETRIEVERS = ("bm25", "dense", "hybrid")
CANDIDATES = 100
"""Candidates each retriever hands to fusion (and later stages)."""


def parse_retriever_names(value: str, available: Sequence[str] = RETRIEVERS) -> list[str]:
    """``"all"`` (every available retriever) or a comma-separated subset of ``available``.

    Raises:
        ConfigError: an unknown name.
    """
    if value.strip() == "all":
        return list(available)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ConfigError(f"unknown retriever {', '.join(unknown) or '(none)'}; allowed: {', '.join(available)}, all")
    return list(dict.fromkeys(names))


def compose(
    lexical: BM25Retriever | None,
    dense: DenseRetriever | None,
    fusion: Fusion,
    *,
    candidates: int = CANDIDATES,
) -> dict[str, Retriever]:
    """Every retriever its parts allow: ``bm25``, ``dense`` and, with both, ``hybrid``."""
    built: dict[str, Retriever] = {}
    if lexical is not None:
        built["bm25"] = lexical
    if dense is not None:
        built["dense"] = dense
    if lexical is not None and dense is not None:
        built["hybrid"] = HybridRetriever(lexical, dense, candidates=candidates, fusion=fusion)
    return built


def build_retrievers(
    catalog: Catalog,
    names: Sequence[str],
    *,
    bm25_fields: Sequence[str] = DEFAULT_FIELDS,
    stemmer: str = "english",
    model: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Retriever]:
    """The requested retrievers over a catalogue in memory (exact dense search), in the order asked."""
    from towersearch.model import load_model, model_fusion, model_text_config

    products = catalog.products
    lexical = dense = None
    if "bm25" in names or "hybrid" in names:
        lexical = BM25Retriever(products, fields=bm25_fields, stemmer=stemmer)
    if "dense" in names or "hybrid" in names:
        dense = DenseRetriever.from_products(load_model(model), products, model_text_config(model), progress=progress)
    built = compose(lexical, dense, model_fusion(model))
    return {name: built[name] for name in names}

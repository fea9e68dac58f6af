"""Build the retrievers ``evaluate`` and ``search`` ask for, from a catalogue in memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from towersearch.data.catalog import Catalog
from towersearch.errors import ConfigError
from towersearch.search.retriever import Retriever

RETRIEVERS = ("bm25", "dense", "hybrid")


def parse_retriever_names(value: str) -> list[str]:
    """``"all"`` or a comma-separated subset of bm25, dense, hybrid.

    Raises:
        ConfigError: an unknown name.
    """
    if value.strip() == "all":
        return list(RETRIEVERS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in RETRIEVERS]
    if unknown or not names:
        raise ConfigError(f"unknown retriever {', '.join(unknown) or '(none)'}; allowed: {', '.join(RETRIEVERS)}, all")
    return list(dict.fromkeys(names))


def build_retrievers(
    catalog: Catalog,
    names: Sequence[str],
    *,
    bm25_fields: Sequence[str] = ("name", "brand", "category", "size", "attributes"),
    stemmer: str = "english",
    model: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Retriever]:
    """The requested retrievers, in the order asked; dense and hybrid share one encoded catalogue."""
    from towersearch.index.lexical import BM25Retriever

    products = catalog.products
    built: dict[str, Retriever] = {}
    bm25 = dense = None
    if "bm25" in names or "hybrid" in names:
        bm25 = BM25Retriever(products, fields=bm25_fields, stemmer=stemmer)
    if "dense" in names or "hybrid" in names:
        from towersearch.model import load_model, model_text_config
        from towersearch.search.dense import DenseRetriever

        dense = DenseRetriever.from_products(load_model(model), products, model_text_config(model), progress=progress)
    for name in names:
        if name == "bm25":
            built[name] = bm25
        elif name == "dense":
            built[name] = dense
        else:
            from towersearch.model import model_fusion
            from towersearch.search.hybrid import HybridRetriever

            built[name] = HybridRetriever(bm25, dense, fusion=model_fusion(model))
    return built

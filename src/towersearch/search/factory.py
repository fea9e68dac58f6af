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
from towersearch.data.schema import Product
from towersearch.errors import ConfigError
from towersearch.search.dense import DenseRetriever
from towersearch.search.features import FeatureExtractor
from towersearch.search.hybrid import Fusion, HybridRetriever
from towersearch.search.lexical import DEFAULT_FIELDS, BM25Retriever
from towersearch.search.ranker import RANKER_DIR, RankedRetriever, Ranker
from towersearch.search.retriever import Retriever

RETRIEVERS = ("bm25", "dense", "hybrid", "ranked")
"""Every retriever name; ``ranked`` exists when the model has a ranker."""
CANDIDATES = 100
"""Candidates each retriever hands to fusion (and later stages)."""


def parse_retriever_names(value: str, available: Sequence[str] = RETRIEVERS) -> list[str]:
    """``"all"`` (every retriever in ``available``) or a comma-separated subset of them.

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
    ranker: Ranker | None = None,
    products: Sequence[Product] = (),
    candidates: int = CANDIDATES,
) -> dict[str, Retriever]:
    """Every retriever its parts allow: ``bm25``, ``dense``; with both, ``hybrid``; with a ranker too, ``ranked``.

    The ranked retriever's name-only BM25 and feature token sets are built from ``products`` on its first search
    (a few seconds per 100,000 products), so an index whose default is hybrid never pays for them; the engine
    builds them at load when ``ranked`` is its default (:func:`prepare`).
    """
    built: dict[str, Retriever] = {}
    if lexical is not None:
        built["bm25"] = lexical
    if dense is not None:
        built["dense"] = dense
    if lexical is not None and dense is not None:
        hybrid = HybridRetriever(lexical, dense, candidates=candidates, fusion=fusion)
        built["hybrid"] = hybrid
        if ranker is not None:

            def extractor() -> FeatureExtractor:
                if [p.product_id for p in products] != hybrid.product_ids:
                    raise ConfigError("the ranking stage's products must be the retrievers' catalogue, in row order")
                name_lexical = BM25Retriever(
                    products, fields=("name",), stemmer=lexical.stemmer_name, spelling=lexical.spelling
                )
                name_lexical.prepare()
                return FeatureExtractor(
                    products, lexical, name_lexical, dense.embeddings, ranker.context, stemmer=lexical.stemmer_name
                )

            built["ranked"] = RankedRetriever(hybrid, ranker, extractor)
    return built


def prepare(retrievers: dict[str, Retriever], name: str) -> None:
    """Build what ``retrievers[name]`` builds lazily now (the ranked retriever's features and compiled trees, BM25's
    spelling tables), not on a first request."""
    if isinstance(retrievers.get(name), RankedRetriever):
        retrievers[name].extractor  # noqa: B018  (the property builds it)
        retrievers[name].ranker.forest()
    lexical = retrievers.get("bm25")
    if isinstance(lexical, BM25Retriever):
        lexical.prepare()


def default_retriever(retrievers: dict[str, Retriever]) -> str:
    """The retriever search uses by default: ``ranked`` when there is one that earned it, else ``hybrid``."""
    ranked = retrievers.get("ranked")
    if ranked is not None and ranked.ranker.default:
        return "ranked"
    return "hybrid" if "hybrid" in retrievers else next(iter(retrievers))


def build_retrievers(
    catalog: Catalog,
    names: Sequence[str],
    *,
    bm25_fields: Sequence[str] = DEFAULT_FIELDS,
    stemmer: str = "english",
    spelling: bool = True,
    model: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Retriever]:
    """The requested retrievers over a catalogue in memory (exact dense search), in the order asked."""
    from towersearch.encoders import load_encoder
    from towersearch.model import model_feedback, model_fusion, model_text_config

    products = catalog.products
    ranker = Ranker.load(model) if model is not None and "ranked" in names else None
    if "ranked" in names and ranker is None:
        raise ConfigError(f"retriever 'ranked' needs a model with a ranker; {model or 'the untrained model'} has none")
    lexical = dense = None
    if {"bm25", "hybrid", "ranked"} & set(names):
        lexical = BM25Retriever(products, fields=bm25_fields, stemmer=stemmer, spelling=spelling)
    if {"dense", "hybrid", "ranked"} & set(names):
        encoder = load_encoder(model)  # ONNX Runtime when the model holds a matching export, as an index would
        dense = DenseRetriever.from_products(
            encoder, products, model_text_config(model), progress=progress, feedback=model_feedback(model)
        )
    built = compose(lexical, dense, model_fusion(model), ranker=ranker, products=products)
    return {name: built[name] for name in names}


def available_retrievers(model: str | Path | None) -> list[str]:
    """The retrievers a model supports: ``ranked`` only with a ranker."""
    has_ranker = model is not None and (Path(model) / RANKER_DIR / "ranker.json").is_file()
    return [n for n in RETRIEVERS if n != "ranked" or has_ranker]

"""Product-signal expansion with review text (ITEMS): a product's most useful reviews as one more product field.

:func:`expand_catalog` gives every product with classified reviews the attribute
:data:`~towersearch.text.REVIEW_ATTRIBUTE` (``review_text``): the text of its ``per_product`` reviews with the highest
``p_highly_useful`` (ties: more helpful votes, then the smaller ``review_id``, as
:func:`~towersearch.reviews.insights.product_insights` picks its most useful review), joined with
:data:`SEPARATOR`, each clipped to ``max_words`` words. Reviews the classifier marked obnoxious are never used.
The towers read that attribute as the opt-in ``reviews`` text field (``--fields …,reviews``, marker ``[PRV]``);
``towersearch reviews expand`` writes the expanded catalogue.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from towersearch.data.catalog import storable
from towersearch.data.schema import Product
from towersearch.errors import ConfigError, DataError
from towersearch.reviews.data import Review
from towersearch.text import REVIEW_ATTRIBUTE, clip_words

SEPARATOR = " | "
"""Between the reviews of one product in ``review_text``."""

_CLEAN = str.maketrans({";": ",", "|": "/"})  # ";" ends a value in the catalogue's key=value;… attributes


@dataclass
class ExpandSummary:
    """What :func:`expand_catalog` did.

    Attributes:
        products: Products in the catalogue.
        products_expanded: Products given a ``review_text``.
        reviews_used: Reviews whose text went into one.
        reviews: Reviews read.
        unclassified: Reviews with no row in the classified-reviews file (not used).
        obnoxious: Classified reviews labelled obnoxious (never used).
        unknown_product: Reviews of products not in the catalogue (not used).
    """

    products: int = 0
    products_expanded: int = 0
    reviews_used: int = 0
    reviews: int = 0
    unclassified: int = 0
    obnoxious: int = 0
    unknown_product: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for ``--json``)."""
        return dataclasses.asdict(self)


def review_snippet(text: str, max_words: int) -> str:
    """One review's text as it goes into ``review_text``: its first ``max_words`` words, with ``;`` (which the
    catalogue's attribute format cannot hold in a value) written as ``,`` and ``|`` (the separator) as ``/``."""
    return clip_words(text.translate(_CLEAN), max_words)


def select_reviews(
    reviews: Iterable[Review],
    intents: Mapping[str, tuple[Mapping[str, int], Mapping[str, float]]],
    *,
    per_product: int = 2,
) -> dict[str, list[Review]]:
    """The reviews to use per product: classified, not obnoxious, the ``per_product`` most likely highly useful.

    Args:
        reviews: The reviews (from :func:`~towersearch.reviews.data.load_reviews`).
        intents: Their classification (from :func:`~towersearch.reviews.insights.load_review_intents`).
        per_product: Most reviews kept per product.

    Returns:
        product_id → its chosen reviews, highest ``p_highly_useful`` first (ties: more ``helpful_votes``, none
        counting as 0, then the smaller ``review_id``); products without a usable review are absent.

    Raises:
        ConfigError: ``per_product`` is below 1.
    """
    if per_product < 1:
        raise ConfigError(f"per_product must be at least 1; got {per_product}")
    by_product: dict[str, list[Review]] = defaultdict(list)
    for review in reviews:
        classified = intents.get(review.review_id)
        if classified is not None and not classified[0].get("obnoxious"):
            by_product[review.product_id].append(review)

    def rank(r: Review) -> tuple[float, int, str]:
        return (-intents[r.review_id][1]["highly_useful"], -(r.helpful_votes or 0), r.review_id)

    return {product_id: sorted(group, key=rank)[:per_product] for product_id, group in by_product.items()}


def expand_catalog(
    products: Iterable[Product],
    reviews: Iterable[Review],
    intents: Mapping[str, tuple[Mapping[str, int], Mapping[str, float]]],
    *,
    per_product: int = 2,
    max_words: int = 40,
) -> tuple[list[Product], ExpandSummary]:
    """Copies of ``products``, each with classified reviews given the ``review_text`` attribute (replacing any it had;
    the others are kept as they are).

    Args:
        products: The catalogue.
        reviews: The reviews (from :func:`~towersearch.reviews.data.load_reviews`).
        intents: Their classification (from :func:`~towersearch.reviews.insights.load_review_intents`).
        per_product: Most reviews per product (see :func:`select_reviews`).
        max_words: Each review is clipped to this many words.

    Returns:
        The products in their order, and a summary of what was done.

    Raises:
        ConfigError: ``per_product`` or ``max_words`` below 1.
        DataError: none of the reviews has a classification row (the files do not belong together), or a product's
            attributes cannot be stored in the catalogue's ``key=value;…`` form (naming the product).
    """
    if max_words < 1:
        raise ConfigError(f"max_words must be at least 1; got {max_words}")
    products, reviews = list(products), list(reviews)
    summary = ExpandSummary(products=len(products), reviews=len(reviews))
    summary.unclassified = sum(r.review_id not in intents for r in reviews)
    if reviews and summary.unclassified == len(reviews):
        raise DataError(
            f"none of the {len(reviews)} reviews has a classification row (for example {reviews[0].review_id!r}): "
            "classify the same reviews file with `towersearch reviews classify`",
            field="review_id",
            reason="unclassified_review",
        )
    summary.obnoxious = sum(1 for r in reviews if r.review_id in intents and intents[r.review_id][0].get("obnoxious"))
    known = {p.product_id for p in products}
    summary.unknown_product = sum(r.product_id not in known for r in reviews)
    chosen = select_reviews(reviews, intents, per_product=per_product)
    out: list[Product] = []
    for product in products:
        texts = [review_snippet(r.text, max_words) for r in chosen.get(product.product_id, [])]
        texts = [t for t in texts if t]
        if texts:
            attributes = {**product.attributes, REVIEW_ATTRIBUTE: SEPARATOR.join(texts)}
            product = dataclasses.replace(product, attributes=attributes)
            summary.products_expanded += 1
            summary.reviews_used += len(texts)
        out.append(storable(product))
    return out, summary

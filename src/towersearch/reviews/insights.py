"""Per-product review insights: how many reviews a product has, their intents, and its most useful review.

Inputs are a reviews file (:func:`towersearch.reviews.data.load_reviews`) and the classified-reviews CSV that
``towersearch reviews classify`` writes, one row per review::

    review_id,highly_useful,passionate,obnoxious,balanced,p_highly_useful,p_passionate,p_obnoxious,p_balanced

(a 0/1 label and a probability in [0, 1] per intent of :data:`~towersearch.reviews.data.INTENTS`).
:func:`product_insights` turns them into, per product::

    {"reviews": 5,
     "intent_share": {"highly_useful": 0.6, "passionate": 0.2, "obnoxious": 0.0, "balanced": 0.4},
     "most_useful": {"review_id": "r3", "title": "…", "text": "…", "rating": 4.0, "p_highly_useful": 0.93}}

``towersearch index --reviews R --review-intents C`` stores them in each index generation as
:data:`INSIGHTS_FILE` (:func:`save_insights`); the engine reads them back (:func:`load_index_insights`) and
``GET /products/{id}`` serves a product's entry.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from towersearch.data.io import cell, iter_rows, require_columns, write_json
from towersearch.errors import ArtifactError, DataError
from towersearch.reviews.data import INTENTS, Review, check_new_id, label_cell

INSIGHTS_FILE = "review_insights.json"
"""The insights file of an index generation."""
INSIGHTS_FORMAT = "towersearch-review-insights/1"
PROB_COLUMNS = tuple(f"p_{intent}" for intent in INTENTS)
CLASSIFIED_COLUMNS = ("review_id", *INTENTS, *PROB_COLUMNS)
"""The columns of a classified-reviews file, in order."""
TEXT_LIMIT = 600
"""Most characters of the most useful review's text kept in the insights."""
ELLIPSIS = "…"

Intents = dict[str, tuple[dict[str, int], dict[str, float]]]
"""review_id → ({intent: 0 or 1}, {intent: probability})."""


def load_review_intents(path: str | Path) -> Intents:
    """Read and validate a classified-reviews file (as ``towersearch reviews classify`` writes it).

    Args:
        path: The file (CSV; TSV, JSON Lines and Parquet with the same columns are read too).

    Returns:
        review_id → (labels, probabilities), each keyed by the intents of
        :data:`~towersearch.reviews.data.INTENTS`, in file order.

    Raises:
        DataError: the file is missing, malformed or has no rows, a column of :data:`CLASSIFIED_COLUMNS` is missing,
            or a row has an empty or repeated ``review_id``, a label that is not 0 or 1, or a probability that is
            not a number from 0 to 1. The message names the file, the line and the field.
    """
    intents: Intents = {}
    seen: dict[str, int] = {}
    checked_header = False
    for line, row in iter_rows(path):
        if not checked_header:
            require_columns(path, row.keys(), CLASSIFIED_COLUMNS, "classified-reviews file")
            checked_header = True
        review_id = cell(row, "review_id")
        if not review_id:
            raise DataError("empty review_id", path=path, line=line, field="review_id", reason="empty_review_id")
        check_new_id(path, line, review_id, seen)
        seen[review_id] = line
        labels = {intent: label_cell(path, line, row, intent) for intent in INTENTS}
        probs = {intent: _probability(path, line, row, f"p_{intent}") for intent in INTENTS}
        intents[review_id] = (labels, probs)
    if not checked_header:
        raise DataError("no rows: a classified-reviews file needs at least one review", path=path, reason="empty_file")
    return intents


def _probability(path: str | Path, line: int, row: dict, column: str) -> float:
    text = cell(row, column)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise DataError(
            f"{text!r} is not a probability: use a number from 0 to 1",
            path=path,
            line=line,
            field=column,
            reason="bad_probability",
        )
    return value


def shorten(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` as it is when it has at most ``limit`` characters, else cut at a word boundary and ended with "…"
    (``limit`` characters at most, the "…" included)."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(ELLIPSIS) + 1]  # one more: a space right after the cut keeps the last word whole
    cut = head.rstrip()
    if len(cut) == len(head):  # the cut falls inside a word: drop that word
        space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        cut = head[:space].rstrip() if space > 0 else head[:-1]
    return cut[: limit - len(ELLIPSIS)].rstrip(" ,;:") + ELLIPSIS


def product_insights(
    reviews: Iterable[Review],
    intents: Mapping[str, tuple[Mapping[str, int], Mapping[str, float]]],
    *,
    counts: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Review insights per product: review count, share of reviews per intent, and the most useful review.

    The most useful review is the one with the highest ``p_highly_useful``; ties go to more ``helpful_votes``
    (none counts as 0), then to the smaller ``review_id``. Its text is cut to :data:`TEXT_LIMIT` characters at a
    word (:func:`shorten`). Shares and probabilities are rounded to 4 places.

    Args:
        reviews: The reviews (from :func:`~towersearch.reviews.data.load_reviews`).
        intents: Their classification (from :func:`load_review_intents`).
        counts: If given, filled with ``reviews`` (reviews read), ``classified`` (classification rows),
            ``unmatched`` (classified ids with no review: ignored) and ``products`` (products with insights).

    Returns:
        product_id → ``{"reviews", "intent_share", "most_useful"}``, sorted by product id.

    Raises:
        DataError: reviews without a classification row (how many, and one of their ids).
    """
    reviews = list(reviews)
    missing = [r.review_id for r in reviews if r.review_id not in intents]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(reviews)} reviews have no classification row (for example "
            f"{missing[0]!r}): classify the same reviews file with `towersearch reviews classify`",
            field="review_id",
            reason="unclassified_review",
        )
    by_product: dict[str, list[Review]] = defaultdict(list)
    for review in reviews:
        by_product[review.product_id].append(review)
    insights: dict[str, dict[str, Any]] = {}
    for product_id in sorted(by_product):
        group = by_product[product_id]
        best = min(
            group, key=lambda r: (-intents[r.review_id][1]["highly_useful"], -(r.helpful_votes or 0), r.review_id)
        )
        insights[product_id] = {
            "reviews": len(group),
            "intent_share": {
                intent: round(sum(intents[r.review_id][0][intent] for r in group) / len(group), 4) for intent in INTENTS
            },
            "most_useful": {
                "review_id": best.review_id,
                "title": best.title,
                "text": shorten(best.text),
                "rating": best.rating,
                "p_highly_useful": round(float(intents[best.review_id][1]["highly_useful"]), 4),
            },
        }
    if counts is not None:
        reviewed = {r.review_id for r in reviews}
        counts.update(
            reviews=len(reviews),
            classified=len(intents),
            unmatched=sum(review_id not in reviewed for review_id in intents),
            products=len(insights),
        )
    return insights


def save_insights(path: str | Path, insights: Mapping[str, Mapping[str, Any]]) -> None:
    """Write product insights (from :func:`product_insights`) as JSON, atomically."""
    write_json(path, {"format": INSIGHTS_FORMAT, "intents": list(INTENTS), "products": dict(insights)})


def load_insights(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a file written by :func:`save_insights`: product_id → insights.

    Raises:
        DataError: the file is missing, not JSON, of another format, or an entry lacks ``reviews``,
            ``intent_share`` or ``most_useful`` (the field names the product).
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path, reason="missing_file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not valid JSON: {exc}", path=path, reason="malformed") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != INSIGHTS_FORMAT
        or not isinstance(data.get("products"), dict)
    ):
        raise DataError(f"not a review insights file (format {INSIGHTS_FORMAT})", path=path, reason="format")
    products = data["products"]
    for product_id, entry in products.items():
        if not isinstance(entry, dict) or not {"reviews", "intent_share", "most_useful"} <= entry.keys():
            raise DataError(
                "an entry needs reviews, intent_share and most_useful", path=path, field=product_id, reason="malformed"
            )
    return products


def load_index_insights(folder: str | Path, manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The review insights of an index generation, or None when it was built without them.

    Raises:
        ArtifactError: the manifest records insights but the file is missing or unreadable.
    """
    path = Path(folder) / INSIGHTS_FILE
    if not path.is_file():
        if manifest.get("review_insights"):
            raise ArtifactError(f"index {folder} is incomplete: {INSIGHTS_FILE} is missing")
        return None
    try:
        return load_insights(path)
    except DataError as exc:
        raise ArtifactError(f"index {folder}: {exc}") from None

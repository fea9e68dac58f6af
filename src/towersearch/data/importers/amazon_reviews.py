"""Import the SNAP "Amazon Fine Food Reviews" data (McAuley & Leskovec, WWW 2013) as a reviews file.

``Reviews.csv`` (UTF-8, usually with a byte-order mark) has the columns ``Id, ProductId, UserId, ProfileName,
HelpfulnessNumerator, HelpfulnessDenominator, Score, Time, Summary, Text``. What is written, ``reviews.csv`` in the
format of :mod:`towersearch.reviews.data`:

=================  ==========================================================
column             from
=================  ==========================================================
``review_id``      ``Id``
``product_id``     ``ProductId`` (the Amazon ASIN)
``title``          ``Summary``
``text``           ``Text``, HTML (``<br />``) turned into plain text
``rating``         ``Score`` (1–5)
``helpful_votes``  ``HelpfulnessNumerator``
``total_votes``    ``HelpfulnessDenominator``
``created_at``     ``Time`` (Unix seconds) as an ISO date, in UTC
=================  ==========================================================

Rows whose text is empty, and rows with more helpful votes than votes (two rows of the full dataset), are skipped
and counted by reason. Any other bad value (an empty or repeated ``Id``, a ``Score`` outside 1–5 …) is an error
naming the file, the line and the source column. Everything is read and checked before anything is written; the
file is written atomically.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from towersearch.data.io import open_csv, require_columns
from towersearch.errors import DataError
from towersearch.reviews.data import Review, parse_review, write_reviews

REVIEWS_FILE = "Reviews.csv"
OUT_FILE = "reviews.csv"

SOURCE_COLUMNS = {
    "review_id": "Id",
    "product_id": "ProductId",
    "title": "Summary",
    "text": "Text",
    "rating": "Score",
    "helpful_votes": "HelpfulnessNumerator",
    "total_votes": "HelpfulnessDenominator",
}
"""Reviews-format column → the ``Reviews.csv`` column it is taken from (``created_at`` comes from ``Time``)."""

SKIPPED_REASONS = ("empty_text", "helpful_above_total")
"""Reasons a source row is skipped (and counted) rather than failing the import."""


def _iso_date(text: str, path: Path, line: int) -> str:
    try:
        return datetime.fromtimestamp(int(text), tz=UTC).date().isoformat()
    except (ValueError, OverflowError, OSError):
        raise DataError(
            f"{text!r} is not a time in Unix seconds", path=path, line=line, field="Time", reason="bad_time"
        ) from None


def _read(path: Path, skipped: Counter[str]) -> tuple[list[Review], int]:
    """The reviews of ``Reviews.csv`` in file order, and the number of rows read."""
    header, rows = open_csv(path)
    require_columns(path, header, [*SOURCE_COLUMNS.values(), "Time"], "Amazon Fine Food Reviews file")
    reviews: list[Review] = []
    seen: dict[str, int] = {}
    count = 0
    for line, row in rows:
        count += 1
        mapped = {column: row[source] for column, source in SOURCE_COLUMNS.items()}
        try:
            review = parse_review(mapped, path=path, line=line)
        except DataError as exc:
            if exc.reason in SKIPPED_REASONS:
                skipped[exc.reason] += 1
                continue
            source = SOURCE_COLUMNS.get(exc.field or "", exc.field)
            message = f"empty {source}" if exc.reason.startswith("empty_") else exc.message
            raise DataError(message, path=path, line=line, field=source, reason=exc.reason) from None
        if review.review_id in seen:
            raise DataError(
                f"duplicate Id {review.review_id!r} (first on line {seen[review.review_id]})",
                path=path,
                line=line,
                field="Id",
                reason="duplicate_review_id",
            )
        seen[review.review_id] = line
        reviews.append(dataclasses.replace(review, created_at=_iso_date(row["Time"].strip(), path, line)))
    return reviews, count


def import_amazon_reviews(src: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write ``reviews.csv`` from the Amazon Fine Food Reviews' ``Reviews.csv``.

    Args:
        src: ``Reviews.csv``, or the folder holding it.
        out_dir: Output folder; created if missing.

    Returns:
        ``rows`` (read), ``reviews`` (written), ``products`` (distinct ``ProductId`` among them), ``skipped`` (rows
        by reason) and ``path`` (the file written).

    Raises:
        DataError: the source file is missing (the message names it) or malformed, a column is missing, no review is
            left, or a row has an empty or repeated ``Id``, an empty ``ProductId``, a ``Score`` outside 1–5, vote
            counts that are not whole numbers >= 0, or a ``Time`` that is not Unix seconds.
    """
    path = Path(src)
    if path.is_dir():
        path = path / REVIEWS_FILE
    skipped: Counter[str] = Counter()
    reviews, rows = _read(path, skipped)
    if not reviews:
        raise DataError("no reviews to import", path=path, reason="empty_file")
    out = Path(out_dir) / OUT_FILE
    write_reviews(out, reviews)
    return {
        "rows": rows,
        "reviews": len(reviews),
        "products": len({r.product_id for r in reviews}),
        "skipped": dict(sorted(skipped.items())),
        "path": str(out),
    }

"""Product reviews and their intent labels: reading, validating and writing them.

A reviews file (CSV, TSV, JSON Lines or Parquet) has one row per review:

================  ========  ==================================================================
column            required  value
================  ========  ==================================================================
``review_id``     yes       unique, non-empty
``product_id``    yes       non-empty; the catalogue's id of the reviewed product
``text``          yes       non-empty; HTML (``<br />``) is turned into plain text
``title``         no        the review's headline; HTML is turned into plain text
``rating``        no        a number from 1 to 5
``helpful_votes`` no        a whole number >= 0, at most ``total_votes``
``total_votes``   no        a whole number >= 0
``created_at``    no        an ISO 8601 date or date and time
================  ========  ==================================================================

An intent-labels file has a ``review_id`` column and one 0/1 column per label, at least one of them from
:data:`INTENTS`; other label columns (``useful``) are kept as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from towersearch.data.io import LoadReport, RowErrors, cell, iter_rows, require_columns, write_table
from towersearch.data.schema import strip_html
from towersearch.errors import DataError

INTENTS = ("highly_useful", "passionate", "obnoxious", "balanced")
"""The review intents towersearch classifies."""

REVIEW_REQUIRED = ("review_id", "product_id", "text")
REVIEW_OPTIONAL = ("title", "rating", "helpful_votes", "total_votes", "created_at")
REVIEW_COLUMNS = REVIEW_REQUIRED + REVIEW_OPTIONAL

MIN_RATING, MAX_RATING = 1.0, 5.0

_SENTENCE_END = ".!?…;:,"


@dataclass(frozen=True, slots=True)
class Review:
    """One review of one product."""

    review_id: str
    product_id: str
    text: str
    title: str = ""
    rating: float | None = None
    helpful_votes: int | None = None
    total_votes: int | None = None
    created_at: str = ""

    @property
    def full_text(self) -> str:
        """Title and text as one passage, ``"Title. Text"`` (no added full stop after a title that ends in one, or in
        ``!``, ``?`` and the like); just the text when there is no title."""
        title = self.title.strip()
        if not title:
            return self.text
        separator = " " if title.endswith(tuple(_SENTENCE_END)) else ". "
        return f"{title}{separator}{self.text}"


def load_reviews(path: str | Path, *, skip_bad_rows: bool = False) -> tuple[list[Review], LoadReport]:
    """Read and validate a reviews file (CSV, TSV, JSON Lines or Parquet).

    Args:
        path: The file.
        skip_bad_rows: Skip bad rows and count them in the report by reason instead of failing on the first one.

    Returns:
        The reviews in file order, and what was read, kept and skipped.

    Raises:
        DataError: the file is missing, malformed or has no rows, a required column is missing, no valid review is
            left, or (without ``skip_bad_rows``) a row has an empty ``review_id``, ``product_id`` or ``text``, a
            ``rating`` that is not a number from 1 to 5, vote counts that are not whole numbers >= 0 or more
            helpful than total votes, a ``created_at`` that is not ISO 8601, or a ``review_id`` of an earlier row.
            The message names the file, the line and the field.
    """
    report = LoadReport(path=str(path))
    errors = RowErrors(report, skip_bad_rows=skip_bad_rows)
    reviews: list[Review] = []
    seen: dict[str, int] = {}
    checked_header = False
    for line, row in iter_rows(path):
        if not checked_header:
            require_columns(path, row.keys(), REVIEW_REQUIRED, "reviews file")
            checked_header = True
        report.rows += 1
        try:
            reviews.append(_review(path, line, row, seen))
        except DataError as exc:
            errors(exc)
    if not checked_header:
        raise DataError("no rows: a reviews file needs at least one review", path=path, reason="empty_file")
    report.loaded = len(reviews)
    if not reviews:
        raise DataError("no valid reviews left after skipping bad rows", path=path, reason="empty_file")
    return reviews, report


def parse_review(row: Mapping[str, Any], *, path: str | Path | None = None, line: int | None = None) -> Review:
    """One reviews row (column → value) as a :class:`Review`, checked by the rules :func:`load_reviews` applies to
    each row of a file. Duplicates across rows are the caller's to check.

    Args:
        row: The row.
        path: The file it comes from, if any, for the error message.
        line: Its line there, for the error message.

    Raises:
        DataError: naming the field at fault; its ``reason`` says which rule was broken (``"empty_text"``,
            ``"bad_rating"``, ``"helpful_above_total"`` …).
    """
    return _review(path, line, dict(row), {})


def _required(path: str | Path | None, line: int | None, row: dict, column: str, *, html: bool = False) -> str:
    value = cell(row, column)
    if html:
        value = strip_html(value)
    if not value:
        raise DataError(f"empty {column}", path=path, line=line, field=column, reason=f"empty_{column}")
    return value


def _rating(path: str | Path | None, line: int | None, row: dict) -> float | None:
    text = cell(row, "rating")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not MIN_RATING <= value <= MAX_RATING:  # also false for NaN
        raise DataError(
            f"{text!r} is not a number from {MIN_RATING:g} to {MAX_RATING:g}",
            path=path,
            line=line,
            field="rating",
            reason="bad_rating",
        )
    return value


def _votes(path: str | Path | None, line: int | None, row: dict, column: str) -> int | None:
    text = cell(row, column)
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise DataError(
            f"{text!r} is not a whole number >= 0", path=path, line=line, field=column, reason=f"bad_{column}"
        )
    return int(text)


def _created_at(path: str | Path | None, line: int | None, row: dict) -> str:
    text = cell(row, "created_at")
    if text:
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise DataError(
                f"{text!r} is not an ISO 8601 date or date and time (such as 2012-03-07 or 2012-03-07T10:00:00Z)",
                path=path,
                line=line,
                field="created_at",
                reason="bad_created_at",
            ) from None
    return text


def _review(path: str | Path | None, line: int | None, row: dict, seen: dict[str, int | None]) -> Review:
    review_id = _required(path, line, row, "review_id")
    check_new_id(path, line, review_id, seen)
    product_id = _required(path, line, row, "product_id")
    text = _required(path, line, row, "text", html=True)
    rating = _rating(path, line, row)
    helpful = _votes(path, line, row, "helpful_votes")
    total = _votes(path, line, row, "total_votes")
    if helpful is not None and total is not None and helpful > total:
        raise DataError(
            f"{helpful} helpful votes out of {total} votes: helpful votes cannot exceed the total",
            path=path,
            line=line,
            field="helpful_votes",
            reason="helpful_above_total",
        )
    created_at = _created_at(path, line, row)
    seen[review_id] = line
    return Review(
        review_id=review_id,
        product_id=product_id,
        text=text,
        title=strip_html(cell(row, "title")),
        rating=rating,
        helpful_votes=helpful,
        total_votes=total,
        created_at=created_at,
    )


def write_reviews(path: str | Path, reviews: Iterable[Review]) -> int:
    """Write reviews atomically in the reviews format (CSV, TSV, JSON Lines or Parquet, by suffix); returns the count.

    :func:`load_reviews` reads the file back as the same reviews, as long as their text is plain text (it is, when
    they were read by :func:`load_reviews`, except for text holding an escaped tag such as ``&lt;b&gt;``).
    """
    rows = (
        (
            r.review_id,
            r.product_id,
            r.text,
            r.title,
            r.rating,
            r.helpful_votes,
            r.total_votes,
            r.created_at,
        )
        for r in reviews
    )
    return write_table(path, REVIEW_COLUMNS, rows)


def load_intent_labels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a file of intent labels: ``review_id`` and one 0/1 column per label.

    Args:
        path: The file (CSV, TSV, JSON Lines or Parquet).

    Returns:
        review_id → {label: 0 or 1} for every label column of the file (those of :data:`INTENTS` and any other, such
        as ``useful``), in file order.

    Raises:
        DataError: the file is missing, malformed or has no rows, it has no ``review_id`` column or none of
            :data:`INTENTS`, or a row has an empty or repeated ``review_id`` or a label that is not 0 or 1. The
            message names the file, the line and the field.
    """
    labels: dict[str, dict[str, int]] = {}
    seen: dict[str, int] = {}
    columns: list[str] | None = None
    for line, row in iter_rows(path):
        if columns is None:
            require_columns(path, row.keys(), ("review_id",), "labels file")
            columns = [c for c in row if c and c != "review_id"]
            if not any(c in INTENTS for c in columns):
                raise DataError(
                    f"no intent column: a labels file needs at least one of {', '.join(INTENTS)}; "
                    f"found: {', '.join(row) or 'none'}",
                    path=path,
                    line=1,
                    reason="missing_column",
                )
        review_id = _required(path, line, row, "review_id")
        check_new_id(path, line, review_id, seen)
        seen[review_id] = line
        labels[review_id] = {column: label_cell(path, line, row, column) for column in columns}
    if columns is None:
        raise DataError("no rows: a labels file needs at least one labelled review", path=path, reason="empty_file")
    return labels


def check_new_id(path: str | Path | None, line: int | None, review_id: str, seen: dict) -> None:
    """Raise the duplicate-``review_id`` error if ``seen`` (id → first line) holds ``review_id`` already."""
    if review_id in seen:
        raise DataError(
            f"duplicate review_id {review_id!r} (first on line {seen[review_id]})",
            path=path,
            line=line,
            field="review_id",
            reason="duplicate_review_id",
        )


def label_cell(path: str | Path, line: int, row: dict, column: str) -> int:
    """A 0/1 label cell as an int (DataError naming path, line and column otherwise)."""
    text = cell(row, column)
    if text not in ("0", "1"):
        raise DataError(f"{text!r} is not a label: use 0 or 1", path=path, line=line, field=column, reason="bad_label")
    return int(text)

"""The search log: one row per event (impression, click, add_to_cart, purchase), optionally aggregated."""

from __future__ import annotations

from collections.abc import Container, Iterable
from pathlib import Path

from towersearch.data.io import LoadReport, RowErrors, cell, iter_rows, require_columns, write_table
from towersearch.data.schema import EVENTS, LOG_COLUMNS, LOG_REQUIRED, LogEvent, normalize_query
from towersearch.errors import DataError


def load_log(
    path: str | Path,
    *,
    product_ids: Container[str] | None = None,
    skip_bad_rows: bool = False,
) -> tuple[list[LogEvent], LoadReport]:
    """Read and validate a search log.

    Queries are normalised (:func:`~towersearch.data.schema.normalize_query`) on load.

    Args:
        path: The file (CSV, TSV, JSON Lines or Parquet).
        product_ids: The catalogue's ids; when given, events about other products are errors.
        skip_bad_rows: Skip and count malformed rows instead of failing on the first one.

    Raises:
        DataError: a required column is missing, or (without ``skip_bad_rows``) a row has an empty query,
            an unknown event, an unknown product or a bad ``count`` / ``position``.
    """
    report = LoadReport(path=str(path))
    errors = RowErrors(report, skip_bad_rows)
    events: list[LogEvent] = []
    checked_header = False
    for line, row in iter_rows(path):
        if not checked_header:
            require_columns(path, row.keys(), LOG_REQUIRED, "search log")
            checked_header = True
        report.rows += 1
        try:
            events.append(_event(path, line, row, product_ids))
        except DataError as exc:
            errors(exc)
    report.loaded = len(events)
    return events, report


def _int_cell(path: str | Path, line: int, row: dict, column: str, default: int | None, minimum: int) -> int | None:
    text = cell(row, column)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise DataError(
            f"{text!r} is not a whole number", path=path, line=line, field=column, reason=f"bad_{column}"
        ) from None
    if value < minimum:
        raise DataError(f"{value} is below {minimum}", path=path, line=line, field=column, reason=f"bad_{column}")
    return value


def query_and_product(path: str | Path, line: int, row: dict, product_ids: Container[str] | None) -> tuple[str, str]:
    """The normalised query and the product id of a log or judgements row, both checked.

    Raises:
        DataError: an empty query or product id, or a product the catalogue does not have.
    """
    query = normalize_query(cell(row, "query"))
    if not query:
        raise DataError("empty query", path=path, line=line, field="query", reason="empty_query")
    product_id = cell(row, "product_id")
    if not product_id:
        raise DataError("empty product_id", path=path, line=line, field="product_id", reason="empty_product_id")
    if product_ids is not None and product_id not in product_ids:
        raise DataError(
            f"unknown product {product_id!r}: not in the catalogue",
            path=path,
            line=line,
            field="product_id",
            reason="unknown_product",
        )
    return query, product_id


def _event(path: str | Path, line: int, row: dict, product_ids: Container[str] | None) -> LogEvent:
    query, product_id = query_and_product(path, line, row, product_ids)
    event = cell(row, "event").lower()
    if event not in EVENTS:
        raise DataError(
            f"unknown event {event!r}; allowed: {', '.join(EVENTS)}",
            path=path,
            line=line,
            field="event",
            reason="unknown_event",
        )
    return LogEvent(
        query=query,
        product_id=product_id,
        event=event,
        count=_int_cell(path, line, row, "count", 1, 1) or 1,
        position=_int_cell(path, line, row, "position", None, 1),
        session_id=cell(row, "session_id"),
        timestamp=cell(row, "timestamp"),
    )


def write_log(events: Iterable[LogEvent], path: str | Path) -> int:
    """Write events atomically in the search-log format; returns the count."""
    rows = (
        (
            e.query,
            e.product_id,
            e.event,
            e.position if e.position is not None else "",
            e.session_id,
            e.timestamp,
            e.count,
        )
        for e in events
    )
    return write_table(path, LOG_COLUMNS, rows)

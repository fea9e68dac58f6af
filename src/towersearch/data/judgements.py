"""Graded relevance judgements: (query, product_id, grade)."""

from __future__ import annotations

from collections.abc import Container, Iterable
from pathlib import Path

from towersearch.data.io import LoadReport, RowErrors, cell, iter_rows, require_columns, write_table
from towersearch.data.log import query_and_product
from towersearch.data.schema import ESCI_GRADES, JUDGEMENT_COLUMNS
from towersearch.errors import DataError

Judgements = dict[str, dict[str, float]]
"""query (normalised) → {product_id: grade}."""


def parse_grade(text: str) -> float:
    """A grade from a number ≥ 0 or an ESCI letter (E/S/C/I → 3/2/1/0).

    Raises:
        ValueError: anything else.
    """
    letter = text.strip().upper()
    if letter in ESCI_GRADES:
        return ESCI_GRADES[letter]
    try:
        grade = float(text)
    except ValueError:
        raise ValueError(f"grade {text!r} is neither a number >= 0 nor one of E/S/C/I") from None
    if not grade >= 0 or grade == float("inf"):
        raise ValueError(f"grade {text!r} must be a finite number >= 0")
    return grade


def load_judgements(
    path: str | Path,
    *,
    product_ids: Container[str] | None = None,
    skip_bad_rows: bool = False,
) -> tuple[Judgements, LoadReport]:
    """Read and validate judgements; queries are normalised on load.

    A (query, product) pair judged twice keeps the higher grade.

    Raises:
        DataError: a required column is missing, or (without ``skip_bad_rows``) a row has an empty query,
            an unknown product or a bad grade.
    """
    report = LoadReport(path=str(path))
    errors = RowErrors(report, skip_bad_rows)
    judgements: Judgements = {}
    checked_header = False
    for line, row in iter_rows(path):
        if not checked_header:
            require_columns(path, row.keys(), JUDGEMENT_COLUMNS, "judgements file")
            checked_header = True
        report.rows += 1
        try:
            query, product_id = query_and_product(path, line, row, product_ids)
            try:
                grade = parse_grade(cell(row, "grade"))
            except ValueError as exc:
                raise DataError(str(exc), path=path, line=line, field="grade", reason="bad_grade") from None
        except DataError as exc:
            errors(exc)
            continue
        graded = judgements.setdefault(query, {})
        graded[product_id] = max(grade, graded.get(product_id, 0.0))
        report.loaded += 1
    return judgements, report


def write_judgements(rows: Iterable[tuple[str, str, float]], path: str | Path) -> int:
    """Write ``(query, product_id, grade)`` rows atomically; returns the count."""
    return write_table(path, JUDGEMENT_COLUMNS, ((q, p, _fmt(g)) for q, p, g in rows))


def _fmt(grade: float) -> str | float:
    return str(int(grade)) if float(grade).is_integer() else grade

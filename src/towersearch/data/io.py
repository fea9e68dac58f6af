"""Reading and atomically writing tables (CSV, JSON Lines, Parquet).

Readers yield ``(line, row)`` pairs, where ``line`` is the 1-based line of the file (CSV, JSON Lines; the header
is line 1) or the 1-based row (Parquet), so every later check can name where a bad value sits.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from towersearch.errors import DataError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def table_format(path: str | Path) -> str:
    """The table format of ``path``, from its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        allowed = ", ".join(sorted(FORMATS))
        raise DataError(f"unknown file type '{suffix}'; allowed: {allowed}", path=path, reason="format")
    return FORMATS[suffix]


def _decode(path: Path, encodings: Sequence[str] = ("utf-8-sig",)) -> str:
    """The text of ``path`` in the first of ``encodings`` that decodes it.

    Raises:
        DataError: none does; the message names the first byte the first encoding cannot decode, and its line.
    """
    data = path.read_bytes()
    errors = []
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            errors.append(exc)
    start = errors[0].start
    tried = " or ".join("UTF-8" if e.lower().startswith("utf-8") else e for e in encodings)
    raise DataError(
        f"cannot decode byte 0x{data[start]:02x} as {tried}; save the file as UTF-8",
        path=path,
        line=data[:start].count(b"\n") + 1,
        reason="encoding",
    )


def read_header(path: str | Path) -> list[str]:
    """The column names of a table without reading all of it (JSON Lines: the keys of the first row)."""
    path = Path(path)
    for _, row in iter_rows(path):
        return list(row)
    return []


def iter_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, row)`` for every data row of a CSV, TSV, JSON Lines or Parquet file.

    Raises:
        DataError: the file is missing, not decodable as UTF-8, or not a well-formed table.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path, reason="missing_file")
    fmt = table_format(path)
    if fmt in ("csv", "tsv"):
        yield from open_csv(path, delimiter="," if fmt == "csv" else "\t")[1]
    elif fmt == "jsonl":
        yield from _iter_jsonl(path)
    else:
        yield from _iter_parquet(path)


def iter_csv_records(
    path: str | Path, *, delimiter: str = ",", encodings: Sequence[str] = ("utf-8-sig",)
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, values)`` for every record of a CSV (or TSV) file, blank ones included, header not told apart.

    ``line`` is the file line the record starts on (a quoted field may span lines; CRLF and LF both work). The
    table readers build on this; it is public for files whose header needs its own handling (an importer's).

    Args:
        path: The file.
        delimiter: The field separator.
        encodings: Tried in turn; the first that decodes the whole file is used.

    Raises:
        DataError: the file is missing, no encoding decodes it, or it is not well-formed CSV.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path, reason="missing_file")
    reader = csv.reader(io.StringIO(_decode(path, encodings), newline=""), delimiter=delimiter, strict=True)
    line = 0
    try:
        for values in reader:
            start, line = line + 1, reader.line_num
            yield start, values
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path=path, line=reader.line_num, reason="malformed") from None


def is_blank(values: Sequence[str]) -> bool:
    """Whether a CSV record is empty or holds only whitespace (readers skip such rows)."""
    return all(not v.strip() for v in values)


def open_csv(
    path: str | Path, *, delimiter: str = ",", encodings: Sequence[str] = ("utf-8-sig",)
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header of a CSV (or TSV) file, read at once, and an iterator of ``(line, row)`` over its data rows.

    Header names are stripped; blank rows are skipped; ``line`` is the file line a row starts on.

    Raises:
        DataError: what :func:`iter_csv_records` raises; the file is empty or its header repeats a column; (while
            iterating) a row has more or fewer values than the header.
    """
    path = Path(path)
    records = iter_csv_records(path, delimiter=delimiter, encodings=encodings)
    first = next(records, None)
    if first is None:
        raise DataError("empty file: expected a header row", path=path, line=1, reason="empty_file")
    header = [h.strip() for h in first[1]]
    dupes = [h for h, n in Counter(header).items() if n > 1]
    if dupes:
        raise DataError(f"duplicate column(s) {dupes} in header", path=path, line=1, reason="header")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for line, values in records:
            if is_blank(values):
                continue
            if len(values) != len(header):
                raise DataError(
                    f"expected {len(header)} values (as in the header), found {len(values)}",
                    path=path,
                    line=line,
                    reason="ragged_row",
                )
            yield line, dict(zip(header, values, strict=True))

    return header, rows()


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(_decode(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", path=path, line=number, reason="malformed") from None
        if not isinstance(row, dict):
            raise DataError("each line must be a JSON object", path=path, line=number, reason="malformed")
        yield number, row


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(f"cannot read Parquet file: {exc}", path=path, reason="malformed") from None
    number = 0
    for batch in table.to_batches():
        for row in batch.to_pylist():
            number += 1
            yield number, row


def cell(row: dict[str, Any], column: str) -> str:
    """A cell as a stripped string ("" for missing, null or NaN)."""
    value = row.get(column)
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass
class LoadReport:
    """What a reader did with a file: rows read, rows kept and rows skipped by reason."""

    path: str
    rows: int = 0
    loaded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "loaded": self.loaded,
            "skipped": dict(self.skipped),
            "examples": self.examples,
        }


class RowErrors:
    """Collects row-level errors: raises the first one, or (``skip_bad_rows``) counts them all.

    Args:
        report: The report whose ``skipped`` counter is filled.
        skip_bad_rows: Count and skip bad rows instead of raising.
        max_examples: How many error messages to keep in the report.
    """

    def __init__(self, report: LoadReport, skip_bad_rows: bool = False, max_examples: int = 5) -> None:
        self.report = report
        self.skip_bad_rows = skip_bad_rows
        self.max_examples = max_examples

    def __call__(self, error: DataError) -> None:
        if not self.skip_bad_rows:
            raise error
        self.report.skipped[error.reason] += 1
        if len(self.report.examples) < self.max_examples:
            self.report.examples.append(str(error))


def require_columns(path: str | Path, columns: Iterable[str], required: Sequence[str], kind: str) -> None:
    """Raise a :class:`DataError` naming every missing required column."""
    missing = [c for c in required if c not in set(columns)]
    if missing:
        raise DataError(
            f"missing required column(s) {', '.join(missing)} for a {kind}; found: {', '.join(columns) or 'none'}",
            path=path,
            line=1,
            field=missing[0],
            reason="missing_column",
        )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it takes ``path``'s place, on error it is removed.

    The previous folder, if any, stays in place until the new one is complete. Replacing it takes two renames, so a
    reader in between finds no folder at all: folders read while they are rewritten (index folders) use
    generations and a pointer file instead (:mod:`towersearch.index.generations`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_table(path: str | Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write rows atomically as CSV, TSV, JSON Lines or Parquet (by suffix); returns the row count."""
    fmt = table_format(path)
    count = 0
    with atomic_path(path) as tmp:
        if fmt in ("csv", "tsv"):
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                writer = csv.writer(fh, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
                writer.writerow(columns)
                for row in rows:
                    writer.writerow(["" if v is None else v for v in row])
                    count += 1
        elif fmt == "jsonl":
            with tmp.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False) + "\n")
                    count += 1
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            materialised = [list(r) for r in rows]
            count = len(materialised)
            data = {c: [r[i] for r in materialised] for i, c in enumerate(columns)}
            pq.write_table(pa.table(data), tmp)
    return count


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

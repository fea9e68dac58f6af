"""The product catalogue: reading, validating and writing it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from towersearch.data.io import LoadReport, RowErrors, cell, iter_rows, require_columns, write_table
from towersearch.data.schema import CATALOG_COLUMNS, CATALOG_REQUIRED, Product
from towersearch.errors import DataError


def parse_attributes(value: object) -> dict[str, str]:
    """Parse ``key=value;key=value`` or a JSON object into a dict of strings.

    Raises:
        ValueError: the text is neither form.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    text = str(value).strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"attributes look like JSON but do not parse: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise ValueError("attributes JSON must be an object")
        return parse_attributes(obj)
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"attributes must be key=value pairs separated by ';' or a JSON object; got {part!r}")
        out[key.strip()] = val.strip()
    return out


def format_attributes(attributes: dict[str, str]) -> str:
    """The inverse of :func:`parse_attributes` for the ``key=value;…`` form."""
    return ";".join(f"{k}={v}" for k, v in attributes.items())


@dataclass
class Catalog:
    """Products in file order, with a lookup by id."""

    products: list[Product]
    report: LoadReport | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {p.product_id: i for i, p in enumerate(self.products)}
        if len(self._index) != len(self.products):
            raise DataError("duplicate product_id in catalogue", field="product_id", reason="duplicate_product_id")

    def __len__(self) -> int:
        return len(self.products)

    def __iter__(self) -> Iterator[Product]:
        return iter(self.products)

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._index

    def __getitem__(self, product_id: str) -> Product:
        return self.products[self._index[product_id]]

    def position(self, product_id: str) -> int:
        """Row number (0-based) of a product in the catalogue."""
        return self._index[product_id]

    @property
    def ids(self) -> list[str]:
        return [p.product_id for p in self.products]


def load_catalog(path: str | Path, *, skip_bad_rows: bool = False) -> Catalog:
    """Read and validate a catalogue file (CSV, TSV, JSON Lines or Parquet).

    Args:
        path: The file.
        skip_bad_rows: Skip and count malformed rows instead of failing on the first one.

    Raises:
        DataError: a required column is missing, or (without ``skip_bad_rows``) a row has an empty
            ``product_id`` or ``name``, a duplicate ``product_id`` or unparsable ``attributes``.
    """
    report = LoadReport(path=str(path))
    errors = RowErrors(report, skip_bad_rows)
    products: list[Product] = []
    seen: dict[str, int] = {}
    checked_header = False
    for line, row in iter_rows(path):
        if not checked_header:
            require_columns(path, row.keys(), CATALOG_REQUIRED, "catalogue")
            checked_header = True
        report.rows += 1
        try:
            products.append(_product(path, line, row, seen))
        except DataError as exc:
            errors(exc)
    if not checked_header:
        raise DataError("no rows: a catalogue needs at least one product", path=path, reason="empty_file")
    report.loaded = len(products)
    if not products:
        raise DataError("no valid products left after skipping bad rows", path=path, reason="empty_file")
    return Catalog(products, report=report)


def parse_product(row: Mapping[str, Any], *, path: str | Path | None = None, line: int | None = None) -> Product:
    """One catalogue row (column → value, as a file or a JSON object gives it) as a :class:`Product`, checked by the
    rules :func:`load_catalog` applies to each row of a file: a non-empty ``product_id`` and ``name``, parsable
    ``attributes``, any other column kept as an attribute. Duplicates across rows are the caller's to check.

    Args:
        row: The row.
        path: The file it comes from, if any, for the error message.
        line: Its line (or item) there, for the error message.

    Raises:
        DataError: naming the field at fault (``product_id``, ``name`` or ``attributes``).
    """
    return _product(path, line, dict(row), {})


def storable(product: Product) -> Product:
    """``product`` as :func:`write_catalog` stores it and :func:`load_catalog` reads it back (attributes go through
    their ``key=value;…`` form), so an update compares and encodes what the index will hold.

    Raises:
        DataError: an attribute that form cannot hold (a ``;`` or ``=`` in a key, a ``;`` in a value), naming the
            field ``attributes``.
    """
    text = format_attributes(product.attributes)
    try:
        attributes = parse_attributes(text)
    except ValueError:
        attributes = None
    if attributes != {k.strip(): v.strip() for k, v in product.attributes.items() if k.strip()}:
        raise DataError(
            f"attributes {product.attributes!r} of product {product.product_id!r} cannot be stored: a key may not "
            "hold ';' or '=' and a value may not hold ';'",
            field="attributes",
            reason="bad_attributes",
        )
    return dataclasses.replace(product, attributes=attributes)


def _product(path: str | Path | None, line: int | None, row: dict, seen: dict[str, int]) -> Product:
    product_id = cell(row, "product_id")
    if not product_id:
        raise DataError("empty product_id", path=path, line=line, field="product_id", reason="empty_product_id")
    if product_id in seen:
        raise DataError(
            f"duplicate product_id {product_id!r} (first on line {seen[product_id]})",
            path=path,
            line=line,
            field="product_id",
            reason="duplicate_product_id",
        )
    name = cell(row, "name")
    if not name:
        raise DataError("empty name", path=path, line=line, field="name", reason="empty_name")
    try:
        attributes = parse_attributes(row.get("attributes"))
    except ValueError as exc:
        raise DataError(str(exc), path=path, line=line, field="attributes", reason="bad_attributes") from None
    for key in row:
        if key not in CATALOG_COLUMNS and key:
            text = cell(row, key)
            if text:
                attributes.setdefault(key, text)
    seen[product_id] = line
    return Product(
        product_id=product_id,
        name=name,
        brand=cell(row, "brand"),
        category=cell(row, "category"),
        size=cell(row, "size"),
        description=cell(row, "description"),
        attributes=attributes,
        created_at=cell(row, "created_at"),
    )


def write_catalog(products: Iterable[Product], path: str | Path) -> int:
    """Write products atomically in the catalogue format (by suffix); returns the count."""
    rows = (
        (
            p.product_id,
            p.name,
            p.brand,
            p.category,
            p.size,
            p.description,
            format_attributes(p.attributes),
            p.created_at,
        )
        for p in products
    )
    return write_table(path, CATALOG_COLUMNS, rows)

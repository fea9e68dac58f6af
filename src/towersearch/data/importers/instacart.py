"""Import the Instacart 2017 product catalogue (and its aisle-retrieval judgements).

Instacart's ``products.csv``, ``aisles.csv`` and ``departments.csv`` become a towersearch catalogue whose category
is ``"department > aisle"``. With ``judgements=True`` the aisle-retrieval task is written as well: every aisle
with enough products (leaving out "missing" and "other") is a query, and the products in that aisle are its
relevant items with grade 1.

Two layouts of the files are in circulation and both are read: the Kaggle one with a header row and a copy with
no header row (its first cell is a number). Product names have their whitespace collapsed, since one copy lost
the commas inside names and left double spaces.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

from towersearch.data.catalog import write_catalog
from towersearch.data.io import is_blank, iter_csv_records
from towersearch.data.judgements import write_judgements
from towersearch.data.schema import CATEGORY_SEPARATOR, Product, collapse_whitespace
from towersearch.errors import ConfigError, DataError

PRODUCTS_FILE = "products.csv"
AISLES_FILE = "aisles.csv"
DEPARTMENTS_FILE = "departments.csv"

PRODUCT_COLUMNS = ("product_id", "product_name", "aisle_id", "department_id")
AISLE_COLUMNS = ("aisle_id", "aisle")
DEPARTMENT_COLUMNS = ("department_id", "department")

EXCLUDED_AISLES = ("missing", "other")
"""Aisles that are not real shelves and so never become aisle-retrieval queries."""


class InstacartSummary(TypedDict):
    """What :func:`import_instacart` read and wrote (JSON-serialisable)."""

    source: str
    layout: str
    """``"header"`` or ``"headerless"``: whether ``products.csv`` had a header row."""
    products: int
    departments: int
    aisles: int
    queries: int
    judgements: int
    written: dict[str, str]
    """Output kind (``"catalog"``, ``"judgements"``) → path of the file written."""


def import_instacart(
    src_dir: str | Path,
    out_dir: str | Path,
    *,
    judgements: bool = False,
    category: bool = True,
    min_aisle_products: int = 5,
) -> InstacartSummary:
    """Convert Instacart's products, aisles and departments into ``catalog.csv`` (and ``judgements.csv``).

    Every input row is read and checked before anything is written, so a bad file leaves ``out_dir`` as it was;
    each output file is then written atomically.

    Args:
        src_dir: Folder with ``products.csv``, ``aisles.csv`` and ``departments.csv`` (with or without header rows).
        out_dir: Folder to write ``catalog.csv`` (and ``judgements.csv``) into; created if missing.
        judgements: Also write the aisle-retrieval judgements: each aisle with at least ``min_aisle_products``
            products, other than "missing" and "other", is a query (its name) and its products are relevant
            (grade 1).
        category: Write ``"department > aisle"`` as each product's category. Turn it off for the aisle-retrieval
            task, where no aisle or department label may reach the model. Aisle and department ids never reach
            any text field.
        min_aisle_products: The fewest products an aisle needs to become a query.

    Returns:
        Counts of products, departments and aisles read, queries and judgements written, and the paths written.

    Raises:
        ConfigError: ``min_aisle_products`` is below 1.
        DataError: a file is missing or malformed, an id is not a whole number, an id is duplicated, a product
            has an empty name, or a product names an aisle or department that is not in its file; the message
            names the file and line.
    """
    if min_aisle_products < 1:
        raise ConfigError(f"min_aisle_products must be >= 1, got {min_aisle_products}")
    src = Path(src_dir)
    out = Path(out_dir)

    departments = _read_names(src / DEPARTMENTS_FILE, DEPARTMENT_COLUMNS)
    aisles = _read_names(src / AISLES_FILE, AISLE_COLUMNS)
    products_path = src / PRODUCTS_FILE
    products: list[Product] = []
    by_aisle: dict[int, list[str]] = defaultdict(list)
    seen: dict[str, int] = {}
    layout = "header"
    for line, row, has_header in _read_rows(products_path, PRODUCT_COLUMNS):
        layout = "header" if has_header else "headerless"
        product_id = str(_int(products_path, line, row, "product_id"))
        if product_id in seen:
            raise DataError(
                f"duplicate product_id {product_id} (first on line {seen[product_id]})",
                path=products_path,
                line=line,
                field="product_id",
                reason="duplicate_product_id",
            )
        name = collapse_whitespace(row["product_name"])
        if not name:
            raise DataError("empty product_name", path=products_path, line=line, field="product_name")
        aisle_id = _lookup(products_path, line, row, "aisle_id", aisles, AISLES_FILE)
        department_id = _lookup(products_path, line, row, "department_id", departments, DEPARTMENTS_FILE)
        seen[product_id] = line
        path = f" {CATEGORY_SEPARATOR} ".join((departments[department_id], aisles[aisle_id])) if category else ""
        products.append(Product(product_id=product_id, name=name, category=path))
        by_aisle[aisle_id].append(product_id)
    if not products:
        raise DataError("no products: the file has no data rows", path=products_path, reason="empty_file")

    rows: list[tuple[str, str, float]] = []
    queries = 0
    if judgements:
        for aisle_id, product_ids in by_aisle.items():
            query = aisles[aisle_id]
            if query.casefold() in EXCLUDED_AISLES or len(product_ids) < min_aisle_products:
                continue
            queries += 1
            rows.extend((query, product_id, 1.0) for product_id in product_ids)
        if not rows:
            raise DataError(
                f"no aisle has {min_aisle_products} or more products: no aisle-retrieval queries to write",
                path=products_path,
                reason="no_queries",
            )

    written: dict[str, str] = {}
    catalog_path = out / "catalog.csv"
    write_catalog(products, catalog_path)
    written["catalog"] = str(catalog_path)
    if judgements:
        judgements_path = out / "judgements.csv"
        write_judgements(rows, judgements_path)
        written["judgements"] = str(judgements_path)
    return InstacartSummary(
        source=str(src),
        layout=layout,
        products=len(products),
        departments=len(departments),
        aisles=len(aisles),
        queries=queries,
        judgements=len(rows),
        written=written,
    )


def _read_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str], bool]]:
    """Yield ``(line, row, has_header)`` for every data row; a first row whose first cell is a number is data."""
    if not path.is_file():
        raise DataError(f"file not found; expected Instacart's {path.name} here", path=path, reason="missing_file")
    has_header: bool | None = None
    for start, values in iter_csv_records(path):
        if is_blank(values):
            continue
        if has_header is None:
            has_header = not values[0].strip().isdigit()
            if has_header:
                header = [v.strip() for v in values]
                missing = [c for c in columns if c not in header]
                if missing:
                    raise DataError(
                        f"missing column(s) {', '.join(missing)}; expected {', '.join(columns)} "
                        f"(a file without a header row must start with a numeric id); found: {', '.join(header)}",
                        path=path,
                        line=start,
                        field=missing[0],
                        reason="missing_column",
                    )
                continue
            header = list(columns)
        if len(values) != len(header):
            raise DataError(
                f"expected {len(header)} values ({', '.join(header)}), found {len(values)}",
                path=path,
                line=start,
                reason="ragged_row",
            )
        yield start, dict(zip(header, values, strict=True)), has_header


def _int(path: Path, line: int, row: dict[str, str], column: str) -> int:
    value = row[column].strip()
    if not value.isdigit():
        raise DataError(
            f"{column} must be a whole number, got {value!r}", path=path, line=line, field=column, reason="bad_id"
        )
    return int(value)


def _read_names(path: Path, columns: tuple[str, str]) -> dict[int, str]:
    """Read an id → name file such as ``aisles.csv``."""
    id_column, name_column = columns
    names: dict[int, str] = {}
    lines: dict[int, int] = {}
    for line, row, _ in _read_rows(path, columns):
        key = _int(path, line, row, id_column)
        if key in names:
            raise DataError(
                f"duplicate {id_column} {key} (first on line {lines[key]})",
                path=path,
                line=line,
                field=id_column,
                reason="duplicate_id",
            )
        name = collapse_whitespace(row[name_column])
        if not name:
            raise DataError(f"empty {name_column}", path=path, line=line, field=name_column, reason="empty_name")
        names[key] = name
        lines[key] = line
    if not names:
        raise DataError("no rows", path=path, reason="empty_file")
    return names


def _lookup(path: Path, line: int, row: dict[str, str], column: str, names: dict[int, str], source: str) -> int:
    key = _int(path, line, row, column)
    if key not in names:
        raise DataError(
            f"unknown {column} {key}: not in {source}", path=path, line=line, field=column, reason="unknown_id"
        )
    return key

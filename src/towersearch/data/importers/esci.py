"""Import the Amazon Shopping Queries dataset (ESCI): a catalogue and graded judgements.

The original release has two Parquet files: ``shopping_queries_dataset_examples.parquet`` (one row per judged
query–product pair, 2.6M rows) and ``shopping_queries_dataset_products.parquet``. The examples are filtered with
pyarrow before any row becomes a Python object, and only the products the kept examples refer to are converted.

Products may also come as JSON Lines (or CSV) and with the short column names of other copies (``id, title,
description, bullets, brand, color, locale``); Vespa feed lines (``{"put": …, "fields": {…}}``) are unwrapped.
The ESCI label becomes the grade: E=3, S=2, C=1, I=0 (:data:`towersearch.data.schema.ESCI_GRADES`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

from towersearch.data.catalog import write_catalog
from towersearch.data.io import iter_rows, table_format
from towersearch.data.judgements import write_judgements
from towersearch.data.schema import ESCI_GRADES, Product, collapse_whitespace, normalize_query, strip_html
from towersearch.errors import ConfigError, DataError

EXAMPLES_FILE = "shopping_queries_dataset_examples.parquet"
PRODUCTS_FILE = "shopping_queries_dataset_products.parquet"

LOCALES = ("us", "es", "jp", "all")
VERSIONS = ("small", "large", "all")
SPLITS = ("train", "test", "all")

PRODUCT_ALIASES: dict[str, tuple[str, ...]] = {
    "product_id": ("product_id", "id"),
    "product_title": ("product_title", "title"),
    "product_description": ("product_description", "description"),
    "product_bullet_point": ("product_bullet_point", "bullets", "bullet_point"),
    "product_brand": ("product_brand", "brand"),
    "product_color": ("product_color", "color"),
    "product_locale": ("product_locale", "locale"),
}
"""Canonical products column → the names it is accepted under, in order of preference."""

LABEL_WORDS = {"exact": "E", "substitute": "S", "complement": "C", "irrelevant": "I"}

_BATCH_ROWS = 65_536


class EsciSummary(TypedDict):
    """What :func:`import_esci` read and wrote (JSON-serialisable)."""

    examples_path: str
    products_path: str
    filters: dict[str, str]
    examples_read: int
    examples_kept: int
    queries: int
    products: int
    judgements: int
    skipped: dict[str, int]
    """Reason → count: ``judgement_missing_product`` (the product is not in the products file),
    ``judgement_empty_title`` (its product has no title), ``judgement_duplicate`` (the same normalised query and
    product again; the higher grade is kept), ``product_empty_title``, ``product_duplicate``."""
    product_ids: str
    """``"asin"``, or ``"locale:asin"`` with ``locale="all"``, where the same ASIN can be a different product per
    locale."""
    written: dict[str, str]


def import_esci(
    src_dir: str | Path,
    out_dir: str | Path,
    *,
    locale: str = "us",
    version: str = "small",
    split: str = "test",
    examples: str | Path | None = None,
    products: str | Path | None = None,
) -> EsciSummary:
    """Convert Shopping Queries examples and products into ``catalog.csv`` and ``judgements.csv``.

    The catalogue holds the products the kept examples refer to, in the order first referred to: ``name`` is the
    title, ``brand`` the brand, ``description`` the description without HTML tags, and ``attributes`` the color and
    the bullet points (joined with ``" | "``). The judgements are ``(query, product_id, grade)`` with the grade
    from the ESCI label. Examples whose product is missing from the products file, or has an empty title, are
    skipped and counted. Everything is read and checked before anything is written.

    Args:
        src_dir: Folder with the dataset's files.
        out_dir: Folder to write ``catalog.csv`` and ``judgements.csv`` into; created if missing.
        locale: Keep examples of this market: ``us``, ``es``, ``jp`` or ``all``. With ``all`` the product ids
            become ``locale:product_id``, because one ASIN may be a different listing in each market.
        version: ``small`` (the reduced Task 1 set, ``small_version == 1``), ``large`` (``large_version == 1``)
            or ``all``.
        split: ``train``, ``test`` or ``all``.
        examples: The examples file, instead of ``src_dir/shopping_queries_dataset_examples.parquet``. A relative
            path is looked up in ``src_dir`` first, then in the current folder.
        products: The products file (Parquet, JSON Lines or CSV), instead of
            ``src_dir/shopping_queries_dataset_products.parquet``; looked up like ``examples``.

    Returns:
        Counts of examples read and kept, queries, products and judgements written, skipped rows by reason, and
        the paths read and written.

    Raises:
        ConfigError: ``locale``, ``version`` or ``split`` is not one of the allowed values.
        DataError: a file is missing or malformed, a required column is missing, a kept example has an empty
            query or product id or an unknown label, or the filters keep no example (or no product with a title).
    """
    _check_choice("locale", locale, LOCALES)
    _check_choice("version", version, VERSIONS)
    _check_choice("split", split, SPLITS)
    src = Path(src_dir)
    out = Path(out_dir)
    examples_path = _resolve(src, examples, EXAMPLES_FILE, "examples")
    products_path = _resolve(src, products, PRODUCTS_FILE, "products")
    filters = {"locale": locale, "version": version, "split": split}

    read, kept = _read_examples(examples_path, filters)
    qualify = locale == "all"
    wanted: dict[str, set[str]] = {}
    for _, _, product_id, example_locale in kept:
        wanted.setdefault(product_id, set()).add(example_locale)

    skipped: Counter[str] = Counter()
    found, untitled = _read_products(products_path, wanted, locale, skipped)

    catalog: dict[str, Product] = {}
    index: dict[tuple[str, str], int] = {}
    rows: list[tuple[str, str, float]] = []
    for query, label, product_id, example_locale in kept:
        key = (product_id, example_locale if qualify else "")
        if key not in found:
            skipped["judgement_empty_title" if key in untitled else "judgement_missing_product"] += 1
            continue
        catalog_id = f"{example_locale}:{product_id}" if qualify else product_id
        if catalog_id not in catalog:
            catalog[catalog_id] = found[key]
            catalog[catalog_id].product_id = catalog_id
        pair = (normalize_query(query), catalog_id)
        grade = ESCI_GRADES[label]
        if pair in index:
            skipped["judgement_duplicate"] += 1
            first = rows[index[pair]]
            rows[index[pair]] = (first[0], catalog_id, max(first[2], grade))
            continue
        index[pair] = len(rows)
        rows.append((query, catalog_id, grade))
    if not rows:
        raise DataError(
            f"none of the {len(kept)} kept examples refers to a product with a title in this file "
            f"(skipped: {dict(skipped)})",
            path=products_path,
            reason="empty_selection",
        )

    catalog_path = out / "catalog.csv"
    judgements_path = out / "judgements.csv"
    write_catalog(catalog.values(), catalog_path)
    write_judgements(rows, judgements_path)
    return EsciSummary(
        examples_path=str(examples_path),
        products_path=str(products_path),
        filters=filters,
        examples_read=read,
        examples_kept=len(kept),
        queries=len({query for query, _ in index}),
        products=len(catalog),
        judgements=len(rows),
        skipped=dict(sorted(skipped.items())),
        product_ids="locale:asin" if qualify else "asin",
        written={"catalog": str(catalog_path), "judgements": str(judgements_path)},
    )


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} {value!r} is not allowed; allowed: {', '.join(allowed)}")


def _resolve(src: Path, given: str | Path | None, default: str, kind: str) -> Path:
    """The examples or products file: ``given`` (looked up in ``src`` first when relative) or the default name."""
    if given is None:
        path = src / default
    else:
        path = Path(given)
        if not path.is_absolute() and (src / path).is_file():
            path = src / path
    if path.is_file():
        return path
    hint = ""
    if src.is_dir():
        candidates = sorted(p.name for p in src.iterdir() if p.suffix.lower() in (".parquet", ".jsonl", ".csv"))
        if candidates:
            hint = f"; files in {src}: {', '.join(candidates)}; name the {kind} file explicitly if it is one of them"
    raise DataError(f"{kind} file not found{hint}", path=path, reason="missing_file")


# Examples ---------------------------------------------------------------------------------------------------------


def _read_examples(path: Path, filters: dict[str, str]) -> tuple[int, list[tuple[str, str, str, str]]]:
    """Filter the examples file with pyarrow; return the row count and the kept ``(query, label, id, locale)``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if table_format(path) != "parquet":
        raise DataError("the examples file must be Parquet, as in the ESCI release", path=path, reason="format")
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(f"cannot read Parquet file: {exc}", path=path, reason="malformed") from None
    locale, version, split = filters["locale"], filters["version"], filters["split"]
    columns = ["query", "product_id", "esci_label", "product_locale"]
    if version != "all":
        columns.append(f"{version}_version")
    if split != "all":
        columns.append("split")
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)} for an ESCI examples file; found: {', '.join(names)}",
            path=path,
            field=missing[0],
            reason="missing_column",
        )
    try:
        table = pq.read_table(path, columns=columns)
    except Exception as exc:
        raise DataError(f"cannot read Parquet file: {exc}", path=path, reason="malformed") from None

    conditions = []
    flagged = ""
    if locale != "all":
        conditions.append(pc.equal(_as_text(table["product_locale"]), locale))
    if version != "all":
        column = f"{version}_version"
        try:
            flags = pc.cast(table[column], pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"{column} must be 0 or 1: {exc}", path=path, field=column, reason="bad_value") from None
        conditions.append(pc.equal(flags, 1))
        flagged = f"; {column}=1 on {pc.sum(flags).as_py() or 0} rows"
    if split != "all":
        conditions.append(pc.equal(_as_text(table["split"]), split))
    mask = None
    for condition in conditions:
        mask = condition if mask is None else pc.and_(mask, condition)
    kept = table if mask is None else table.filter(mask)
    if kept.num_rows == 0:
        raise DataError(
            f"no examples match locale={locale}, version={version}, split={split}; the file has "
            + "; ".join(f"{c}: {_distinct(table[c])}" for c in columns if c in ("product_locale", "split"))
            + flagged,
            path=path,
            reason="empty_selection",
        )

    def line(position: int) -> int:
        """The 1-based row of the file behind the ``position``-th kept example."""
        if mask is None:
            return position + 1
        return pc.indices_nonzero(pc.fill_null(mask, False))[position].as_py() + 1

    rows: list[tuple[str, str, str, str]] = []
    columns_kept = [kept[c].to_pylist() for c in ("query", "esci_label", "product_id", "product_locale")]
    for position, (query, label, product_id, example_locale) in enumerate(zip(*columns_kept, strict=True)):
        query = "" if query is None else str(query).strip()
        product_id = "" if product_id is None else str(product_id).strip()
        if not query:
            raise DataError("empty query", path=path, line=line(position), field="query", reason="empty_query")
        if not product_id:
            raise DataError(
                "empty product_id", path=path, line=line(position), field="product_id", reason="empty_product_id"
            )
        letter = _label(label)
        if letter is None:
            raise DataError(
                f"esci_label {label!r} is not one of E, S, C, I",
                path=path,
                line=line(position),
                field="esci_label",
                reason="bad_label",
            )
        rows.append((query, letter, product_id, "" if example_locale is None else str(example_locale)))
    return table.num_rows, rows


def _as_text(column: Any) -> Any:
    """A column as plain strings (dictionary-encoded columns, as pandas writes categoricals, included)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return column if pa.types.is_string(column.type) else pc.cast(column, pa.string())


def _label(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    if text.upper() in ESCI_GRADES:
        return text.upper()
    return LABEL_WORDS.get(text.lower())


def _distinct(column: Any) -> str:
    import pyarrow.compute as pc

    values = sorted(str(v) for v in pc.unique(column).to_pylist() if v is not None)
    return ", ".join(values) or "(none)"


# Products ---------------------------------------------------------------------------------------------------------


def _read_products(
    path: Path, wanted: dict[str, set[str]], locale: str, skipped: Counter[str]
) -> tuple[dict[tuple[str, str], Product], set[tuple[str, str]]]:
    """Read the wanted products, keyed by ``(product_id, locale)`` with ``locale="all"``, else ``(product_id, "")``.

    Returns:
        The products with a title, and the keys of those without one.
    """
    found: dict[tuple[str, str], Product] = {}
    untitled: set[tuple[str, str]] = set()
    rows = _iter_parquet_products(path, wanted, locale) if table_format(path) == "parquet" else _iter_rows(path)
    for row in rows:
        product_id = _text(row.get("product_id"))
        if product_id not in wanted:
            continue
        row_locale = _text(row.get("product_locale")) if "product_locale" in row else None
        if locale == "all":
            # Without a locale column, one row stands for its product in every locale it is judged in.
            keys = [(product_id, x) for x in sorted(wanted[product_id]) if row_locale in (None, x)]
        elif row_locale is None or row_locale == locale:
            keys = [(product_id, "")]
        else:
            keys = []
        for key in keys:
            if key in found or key in untitled:
                skipped["product_duplicate"] += 1
                continue
            product = _product(product_id, row)
            if product is None:
                untitled.add(key)
                skipped["product_empty_title"] += 1
            else:
                found[key] = product
    return found, untitled


def _iter_parquet_products(path: Path, wanted: dict[str, set[str]], locale: str) -> Iterator[dict[str, Any]]:
    """Rows of a Parquet products file (canonical column names) whose id is wanted, filtered batch by batch."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(f"cannot read Parquet file: {exc}", path=path, reason="malformed") from None
    columns = _aliases(parquet.schema_arrow.names, path)
    ids = pa.array(sorted(wanted), pa.string())
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=list(columns.values())):
            mask = pc.is_in(pc.cast(batch.column(columns["product_id"]), pa.string()), value_set=ids)
            if locale != "all" and "product_locale" in columns:
                mask = pc.and_(mask, pc.equal(_as_text(batch.column(columns["product_locale"])), locale))
            for row in batch.filter(mask).to_pylist():
                yield {canonical: row[actual] for canonical, actual in columns.items()}
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read Parquet file: {exc}", path=path, reason="malformed") from None


def _iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSON Lines or CSV products file with canonical column names; Vespa feed lines are unwrapped."""
    for line, row in iter_rows(path):
        if isinstance(row.get("fields"), dict) and not any(a in row for a in PRODUCT_ALIASES["product_id"]):
            row = row["fields"]
        columns = _aliases(row.keys(), path, line)
        yield {canonical: row[actual] for canonical, actual in columns.items()}


def _aliases(names: Any, path: Path, line: int | None = None) -> dict[str, str]:
    """Canonical column → the column of ``names`` that holds it; product id and title are required."""
    present = set(names)
    columns = {}
    for canonical, aliases in PRODUCT_ALIASES.items():
        for alias in aliases:
            if alias in present:
                columns[canonical] = alias
                break
    missing = [c for c in ("product_id", "product_title") if c not in columns]
    if missing:
        accepted = "; ".join(f"{c}: {' or '.join(PRODUCT_ALIASES[c])}" for c in missing)
        raise DataError(
            f"missing column(s) for an ESCI products file ({accepted}); found: {', '.join(map(str, names))}",
            path=path,
            line=line,
            field=missing[0],
            reason="missing_column",
        )
    return columns


def _product(product_id: str, row: dict[str, Any]) -> Product | None:
    """A catalogue product from a products row; ``None`` when it has no title."""
    name = collapse_whitespace(_text(row.get("product_title")))
    if not name:
        return None
    attributes = {}
    color = _attribute(strip_html(_text(row.get("product_color"))))
    if color:
        attributes["color"] = color
    bullets = _bullets(row.get("product_bullet_point"))
    if bullets:
        attributes["bullets"] = bullets
    return Product(
        product_id=product_id,
        name=name,
        brand=collapse_whitespace(_text(row.get("product_brand"))),
        description=strip_html(_text(row.get("product_description"))),
        attributes=attributes,
    )


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def _attribute(text: str) -> str:
    """An attribute value safe for the catalogue's ``key=value;…`` column (which has no escape for ``;``)."""
    return text.replace(";", ",").strip()


def _bullets(value: Any) -> str:
    """Bullet points (one per line, or a list) as one line joined with ``" | "``."""
    if isinstance(value, (list, tuple)):
        lines = [_text(v) for v in value]
    else:
        lines = _text(value).splitlines()
    cleaned = (_attribute(strip_html(line)) for line in lines)
    return " | ".join(line for line in cleaned if line)

"""Import the Home Depot "Product Search Relevance" data: real search terms, human ratings, a real catalogue.

The folder holds ``products.csv`` (``product_uid, product_title``: the catalogue) and ``train.csv`` (``id,
product_uid, product_title, search_term, relevance``: one row per rated term–product pair). ``relevance`` is the
mean of (usually three) raters' grades on 1–3 (1 = irrelevant, 2 = partly relevant, 3 = perfectly relevant),
written with two decimals, so 1.33, 2.33, 2.5, 2.67 … occur.

What is written:

- ``catalog.csv``: every product of ``products.csv``; ``product_id`` is the ``product_uid``, ``name`` the title with
  its HTML character references decoded (about 1,300 titles hold ``&amp;``, ``&#39;`` or ``&quot;``: left as they
  are, "Briggs &amp; Stratton" would match a search for "30 amp" and "Baker&#39;s Rack" one for "39").
- The search terms are grouped by their normalised form (:func:`~towersearch.data.schema.normalize_query`, so
  ``"Slide  Bolt"`` and ``"slide bolt"`` are one query) and split with ``numpy.random.default_rng(seed)``:
  ``eval_queries`` of them are held out for evaluation, the others make the log. No held-out term appears in the
  log.
- ``log.csv``: every rated pair of a log term becomes events, by its ``relevance`` r:

  ============================  =============================================
  rating                        events
  ============================  =============================================
  any                           ``impression``
  r ≥ ``click_at`` (2.33)       ``impression``, ``click``
  r ≥ ``cart_at`` (2.67)        ``impression``, ``click``, ``add_to_cart``
  r ≥ ``purchase_at`` (3)       … and ``purchase``
  ============================  =============================================

  Each query is one session (``session_id`` ``hd-<index>``, the index of the term in order of first appearance
  in ``train.csv``), and ``position`` is the 1-based order of the term's rated products as they appear in the
  file. ``train.csv`` is sorted by ``id``, which follows ``product_uid``, so positions carry no ranking signal.
  Because ratings are written with two decimals, a rating counts as reaching a threshold when it is at most
  :data:`TOLERANCE` below it: ``2.33`` reaches a threshold of ``2.3333`` (7/3) as well as ``2.33``.
- ``judgements.csv``: the held-out terms' ratings as ``(query, product_id, grade)`` with
  ``grade = relevance - 1`` (0–2), rounded to 4 decimals. A pair rated 2.33 gets grade 1.33, so evaluate with
  ``--relevant-grade 1.33`` to count the same pairs relevant as the log counts as clicked.

A product rated twice for one normalised query (two spellings of a term) keeps its higher rating and its first
position; such pairs are counted in the summary. Rows with an empty search term are skipped and counted.
Everything is read and checked before anything is written; each file is written atomically.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from towersearch.data.catalog import write_catalog
from towersearch.data.io import open_csv, require_columns
from towersearch.data.judgements import write_judgements
from towersearch.data.log import write_log
from towersearch.data.schema import EVENTS, LogEvent, Product, collapse_whitespace, normalize_query
from towersearch.errors import ConfigError, DataError

PRODUCTS_FILE = "products.csv"
RATINGS_FILE = "train.csv"
PRODUCT_COLUMNS = ("product_uid", "product_title")
RATING_COLUMNS = ("product_uid", "search_term", "relevance")

CLICK_AT = 2.33
CART_AT = 2.67
PURCHASE_AT = 3.0
MIN_RELEVANCE, MAX_RELEVANCE = 1.0, 3.0
TOLERANCE = 0.005
"""How far below a threshold a rating may be and still reach it: half the unit of the two-decimal ratings."""

ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
"""Encodings tried in turn; the Kaggle originals are Latin-1, copies are often UTF-8."""


def events_for(
    relevance: float, *, click_at: float = CLICK_AT, cart_at: float = CART_AT, purchase_at: float = PURCHASE_AT
) -> tuple[str, ...]:
    """The log events a rated pair turns into.

    Args:
        relevance: The pair's mean rating, 1–3.
        click_at: Lowest rating that is clicked.
        cart_at: Lowest rating that is added to the cart.
        purchase_at: Lowest rating that is bought.

    Returns:
        ``("impression",)`` plus, in order, ``click``, ``add_to_cart`` and ``purchase`` for every threshold the
        rating reaches (within :data:`TOLERANCE`).
    """
    events = ["impression"]
    for event, threshold in (("click", click_at), ("add_to_cart", cart_at), ("purchase", purchase_at)):
        if relevance >= threshold - TOLERANCE:
            events.append(event)
    return tuple(events)


def read_csv(path: Path, required: Sequence[str], kind: str) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` for each data row of a CSV file in UTF-8, Windows-1252 or Latin-1.

    Lines are file lines (the header is line 1); CRLF and LF line ends both work, and quoted fields may span lines.
    Cells are stripped of surrounding whitespace.

    Args:
        path: The file.
        required: Columns the header must have.
        kind: What the file is, for the error message (``"Home Depot products file"``).

    Raises:
        DataError: the file is missing, empty, lacks a required column, repeats a column, has a ragged row or is not
            well-formed CSV.
    """
    header, rows = open_csv(path, encodings=ENCODINGS)
    require_columns(path, header, required, kind)
    for line, row in rows:
        yield line, {h: v.strip() for h, v in row.items()}


def _read_products(path: Path) -> dict[str, Product]:
    products: dict[str, Product] = {}
    for line, row in read_csv(path, PRODUCT_COLUMNS, "Home Depot products file"):
        uid, title = row["product_uid"], collapse_whitespace(html.unescape(row["product_title"]))
        if not uid:
            raise DataError("empty product_uid", path=path, line=line, field="product_uid", reason="empty_product_id")
        if uid in products:
            raise DataError(
                f"duplicate product_uid {uid!r}",
                path=path,
                line=line,
                field="product_uid",
                reason="duplicate_product_id",
            )
        if not title:
            raise DataError("empty product_title", path=path, line=line, field="product_title", reason="empty_name")
        products[uid] = Product(uid, title)
    if not products:
        raise DataError("no products", path=path, reason="empty_file")
    return products


def _parse_relevance(text: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not MIN_RELEVANCE <= value <= MAX_RELEVANCE:  # also false for NaN
        raise DataError(
            f"relevance {text!r} is not a number from {MIN_RELEVANCE:g} to {MAX_RELEVANCE:g}",
            path=path,
            line=line,
            field="relevance",
            reason="bad_relevance",
        )
    return value


def _read_ratings(
    path: Path, products: dict[str, Product], skipped: Counter[str]
) -> tuple[dict[str, dict[str, float]], int]:
    """Normalised term → {product_uid: relevance}, both in order of first appearance; and the rows read."""
    rated: dict[str, dict[str, float]] = {}
    rows = 0
    for line, row in read_csv(path, RATING_COLUMNS, "Home Depot ratings file"):
        rows += 1
        relevance = _parse_relevance(row["relevance"], path, line)
        uid = row["product_uid"]
        if uid not in products:
            raise DataError(
                f"unknown product_uid {uid!r}: not in {PRODUCTS_FILE}",
                path=path,
                line=line,
                field="product_uid",
                reason="unknown_product",
            )
        query = normalize_query(row["search_term"])
        if not query:
            skipped["empty_search_term"] += 1
            continue
        pairs = rated.setdefault(query, {})
        if uid in pairs:
            skipped["duplicate_pair"] += 1
            relevance = max(relevance, pairs[uid])
        pairs[uid] = relevance
    if not rated:
        raise DataError("no rated search terms", path=path, reason="empty_file")
    return rated, rows


def _check_options(click_at: float, cart_at: float, purchase_at: float) -> None:
    thresholds = {"click_at": click_at, "cart_at": cart_at, "purchase_at": purchase_at}
    for name, value in thresholds.items():
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
    if not click_at <= cart_at <= purchase_at:
        raise ConfigError(
            f"thresholds must satisfy click_at <= cart_at <= purchase_at, got {click_at}, {cart_at}, {purchase_at}"
        )


def import_homedepot(
    src_dir: str | Path,
    out_dir: str | Path,
    *,
    eval_queries: int = 2000,
    seed: int = 0,
    click_at: float = CLICK_AT,
    cart_at: float = CART_AT,
    purchase_at: float = PURCHASE_AT,
) -> dict[str, Any]:
    """Write ``catalog.csv``, ``log.csv`` (training terms) and ``judgements.csv`` (held-out terms).

    Args:
        src_dir: Folder with ``products.csv`` and ``train.csv``.
        out_dir: Output folder; created if missing.
        eval_queries: How many normalised search terms to hold out as judgements.
        seed: Seed of the split (``numpy.random.default_rng``).
        click_at: Lowest relevance that makes a click.
        cart_at: Lowest relevance that makes an add-to-cart.
        purchase_at: Lowest relevance that makes a purchase.

    Returns:
        Counts: products, ratings read, distinct normalised terms, log queries, log events by type, eval queries,
        judgements, skipped or merged rows by reason, the seed and the thresholds.

    Raises:
        DataError: a file is missing or malformed, a required column is missing, a product_uid is empty,
            duplicated or unknown, a title is empty, or a relevance is not a number from 1 to 3.
        ConfigError: ``eval_queries`` is negative or more than the number of terms, or the thresholds are not
            ordered.
    """
    _check_options(click_at, cart_at, purchase_at)
    if eval_queries < 0:
        raise ConfigError(f"eval_queries must be >= 0, got {eval_queries}")
    src, out = Path(src_dir), Path(out_dir)
    products = _read_products(src / PRODUCTS_FILE)
    skipped: Counter[str] = Counter()
    rated, rows = _read_ratings(src / RATINGS_FILE, products, skipped)
    terms = list(rated)  # order of first appearance: the session index
    if eval_queries > len(terms):
        raise ConfigError(f"eval_queries ({eval_queries}) is more than the {len(terms)} distinct search terms")

    ordered = sorted(terms)  # the split does not depend on the file's row order
    chosen = np.random.default_rng(seed).choice(len(ordered), size=eval_queries, replace=False)
    held_out = {ordered[i] for i in chosen.tolist()}

    events: list[LogEvent] = []
    judgements: list[tuple[str, str, float]] = []
    for index, query in enumerate(terms):
        pairs = rated[query]
        if query in held_out:
            judgements.extend((query, uid, round(relevance - 1.0, 4)) for uid, relevance in pairs.items())
            continue
        session = f"hd-{index}"
        for position, (uid, relevance) in enumerate(pairs.items(), start=1):
            for event in events_for(relevance, click_at=click_at, cart_at=cart_at, purchase_at=purchase_at):
                events.append(LogEvent(query, uid, event, position=position, session_id=session))

    write_catalog(products.values(), out / "catalog.csv")
    write_log(events, out / "log.csv")
    write_judgements(judgements, out / "judgements.csv")
    by_type = Counter(e.event for e in events)
    return {
        "products": len(products),
        "ratings": rows,
        "terms": len(terms),
        "log_queries": len(terms) - len(held_out),
        "log_events": {event: by_type[event] for event in EVENTS},
        "eval_queries": len(held_out),
        "judgements": len(judgements),
        "skipped": dict(sorted(skipped.items())),
        "seed": seed,
        "thresholds": {"click": click_at, "add_to_cart": cart_at, "purchase": purchase_at},
    }

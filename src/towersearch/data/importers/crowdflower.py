"""Import the CrowdFlower "Search Results Relevance" data: real shopping queries with graded judgements.

The file holds ``query, product_title, product_description, median_relevance`` rows. The catalogue is every
distinct title (with its description, HTML stripped). Queries are split in two seeded halves: the first half's
judgements become a search log with :func:`judgements_to_log` (better grades become clicks, carts and purchases),
the second half is written as held-out judgements with gain ``median_relevance - 1``, so a model can be trained
on one half and judged on queries it never saw.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from towersearch.data.catalog import write_catalog
from towersearch.data.io import cell, iter_rows, require_columns
from towersearch.data.judgements import write_judgements
from towersearch.data.log import write_log
from towersearch.data.schema import LogEvent, Product, normalize_query, strip_html
from towersearch.errors import ConfigError, DataError

COLUMNS = ("query", "product_title", "product_description", "median_relevance")

EVENTS_BY_GRADE: Mapping[int, tuple[str, ...]] = {
    0: ("impression",),
    1: ("impression", "click"),
    2: ("impression", "click", "add_to_cart"),
    3: ("impression", "click", "add_to_cart", "purchase"),
}
"""Events a judged (query, product) pair turns into, by grade (0 = irrelevant … 3 = exact)."""


def judgements_to_log(
    judgements: Mapping[str, Mapping[str, float]], *, max_grade: float = 3.0, seed: int = 0
) -> list[LogEvent]:
    """A search log in which better-graded products were engaged with more deeply.

    Grades are scaled to 0–3 by ``max_grade``; a pair of scaled grade g gets the events ``EVENTS_BY_GRADE[g]``,
    positioned in the order of a seeded shuffle (the log does not reveal the grades through positions).
    """
    rng = random.Random(seed)
    events: list[LogEvent] = []
    for n, query in enumerate(sorted(judgements)):
        products = sorted(judgements[query])
        rng.shuffle(products)
        for position, pid in enumerate(products, start=1):
            level = max(0, min(3, round(3 * judgements[query][pid] / max_grade)))
            for event in EVENTS_BY_GRADE[level]:
                events.append(LogEvent(query, pid, event, position=position, session_id=f"q{n:05d}"))
    return events


def _product_id(title: str) -> str:
    return "cf-" + hashlib.sha1(title.encode("utf-8")).hexdigest()[:12]


def import_crowdflower(
    src: str | Path, out_dir: str | Path, *, seed: int = 0, train_share: float = 0.5
) -> dict[str, Any]:
    """Write ``catalog.csv``, ``log.csv`` (training queries) and ``judgements.csv`` (held-out queries).

    Args:
        src: ``train.csv`` of the competition, or the folder holding it.
        out_dir: Output folder.
        seed: Seed of the query split.
        train_share: Share of the queries whose judgements become the log.

    Raises:
        DataError: a missing column or a grade outside 1–4.
        ConfigError: ``train_share`` outside (0, 1).
    """
    if not 0.0 < train_share < 1.0:
        raise ConfigError(f"train_share must be between 0 and 1 (exclusive), got {train_share}")
    path = Path(src)
    if path.is_dir():
        path = path / "train.csv"
    products: dict[str, Product] = {}
    graded: dict[str, dict[str, float]] = {}
    checked = False
    for line, row in iter_rows(path):
        if not checked:
            require_columns(path, row.keys(), COLUMNS, "CrowdFlower file")
            checked = True
        title = strip_html(cell(row, "product_title"))
        query = normalize_query(cell(row, "query"))
        if not title or not query:
            continue
        try:
            grade = int(cell(row, "median_relevance"))
        except ValueError:
            grade = 0
        if not 1 <= grade <= 4:
            raise DataError("median_relevance must be 1-4", path=path, line=line, field="median_relevance")
        pid = _product_id(title)
        if pid not in products:
            products[pid] = Product(pid, title, description=strip_html(cell(row, "product_description")))
        graded.setdefault(query, {})[pid] = max(grade - 1.0, graded.get(query, {}).get(pid, 0.0))
    queries = sorted(graded)
    random.Random(seed).shuffle(queries)
    cut = round(len(queries) * train_share)
    train_queries, test_queries = sorted(queries[:cut]), sorted(queries[cut:])
    out = Path(out_dir)
    events = judgements_to_log({q: graded[q] for q in train_queries}, seed=seed)
    write_catalog(products.values(), out / "catalog.csv")
    write_log(events, out / "log.csv")
    rows = [(q, pid, g) for q in test_queries for pid, g in sorted(graded[q].items())]
    write_judgements(rows, out / "judgements.csv")
    return {
        "products": len(products),
        "queries": len(queries),
        "train_queries": len(train_queries),
        "test_queries": len(test_queries),
        "log_events": len(events),
        "judgements": len(rows),
        "seed": seed,
    }

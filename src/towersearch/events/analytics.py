"""Search analytics from the event store: top queries, queries without results or clicks, CTR and conversion.

Only searches (kind "search") count; autocomplete requests do not. A search *clicked* when it has at least one
click, and *converted* when it has at least one add_to_cart or purchase; CTR is clicked searches / searches and
conversion is converted searches / searches (0.0 without searches), so a shopper who clicks three results of one
search counts once. Queries are the normalised ones. SQLite does the counting, inside one read transaction, so
every number of a report comes from the same state of the store, while the service keeps writing.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from towersearch.data.io import atomic_path
from towersearch.errors import ConfigError
from towersearch.events.store import EventStore, parse_window, window_condition

# One row per search in the window, with whether it showed anything, was clicked, converted.
_PER_SEARCH = """
    SELECT s.query_norm AS query, s.shown AS shown,
        EXISTS (SELECT 1 FROM events e WHERE e.search = s.id AND e.event = 'click') AS clicked,
        EXISTS (SELECT 1 FROM events e WHERE e.search = s.id AND e.event IN ('add_to_cart', 'purchase')) AS converted
    FROM searches s
    WHERE s.kind = 'search'{window}
"""
_PER_QUERY = f"""
    WITH per_search AS ({_PER_SEARCH})
    SELECT query,
        COUNT(*) AS searches,
        SUM(shown = 0) AS no_result_searches,
        SUM(shown > 0) AS result_searches,
        SUM(clicked) AS clicked_searches,
        SUM(converted) AS converted_searches,
        1.0 * SUM(clicked) / COUNT(*) AS ctr,
        1.0 * SUM(converted) / COUNT(*) AS conversion
    FROM per_search
    GROUP BY query
"""


def analytics(
    store: EventStore,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    top: int = 20,
) -> dict[str, Any]:
    """A JSON-ready report of the searches in a time window.

    Returns a dict with:

    * ``window``: ``{"since", "until"}`` as stored (ISO-8601 UTC) or None for an open end;
    * ``totals``: ``searches``, ``queries`` (distinct), ``no_result_searches``, ``clicked_searches``,
      ``converted_searches``, ``ctr``, ``conversion``, and the event counts ``impressions``, ``clicks``,
      ``add_to_cart``, ``purchases``;
    * ``top_queries``: the ``top`` most searched queries, each ``{"query", "searches", "no_result_searches",
      "clicked_searches", "converted_searches", "ctr", "conversion"}``;
    * ``no_results``: the queries whose searches showed nothing, each ``{"query", "searches"}`` with the number of
      such searches, most first;
    * ``no_clicks``: the queries that showed results but were never clicked in the window, each ``{"query",
      "searches"}`` with the number of searches that showed results, most first.

    Lists are sorted by count, then query, and hold at most ``top`` entries.

    Args:
        store: The event store.
        since: Only searches at or after this time (ISO-8601); None = from the start.
        until: Only searches before this time; None = up to now.
        top: How many queries each list holds, at most.

    Raises:
        ConfigError: ``top`` is not a whole number >= 1.
        EventError: a bound is not an ISO-8601 time, or ``until`` is not after ``since``.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be a whole number >= 1, got {top!r}")
    start, end = parse_window(since, until)
    window, params = window_condition(start, end)
    per_query = _PER_QUERY.format(window=window)
    with store.snapshot() as conn:
        totals = _totals(conn, per_query, window, params)
        top_queries = _rows(conn, f"SELECT * FROM ({per_query}) ORDER BY searches DESC, query LIMIT ?", params, top)
        no_results = _rows(
            conn,
            f"SELECT query, no_result_searches AS searches FROM ({per_query})"
            " WHERE no_result_searches > 0 ORDER BY searches DESC, query LIMIT ?",
            params,
            top,
        )
        no_clicks = _rows(
            conn,
            f"SELECT query, result_searches AS searches FROM ({per_query})"
            " WHERE result_searches > 0 AND clicked_searches = 0 ORDER BY searches DESC, query LIMIT ?",
            params,
            top,
        )
    for row in top_queries:
        del row["result_searches"]
    return {
        "window": {"since": start, "until": end},
        "totals": totals,
        "top_queries": top_queries,
        "no_results": no_results,
        "no_clicks": no_clicks,
    }


def _rows(conn: sqlite3.Connection, sql: str, params: list[str], top: int) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, [*params, top])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _totals(conn: sqlite3.Connection, per_query: str, window: str, params: list[str]) -> dict[str, Any]:
    searches, queries, no_result, clicked, converted = conn.execute(
        f"""SELECT COALESCE(SUM(searches), 0), COUNT(*), COALESCE(SUM(no_result_searches), 0),
            COALESCE(SUM(clicked_searches), 0), COALESCE(SUM(converted_searches), 0)
        FROM ({per_query})""",
        params,
    ).fetchone()
    impressions = conn.execute(
        f"SELECT COUNT(*) FROM searches s JOIN impressions i ON i.search = s.id WHERE s.kind = 'search'{window}",
        params,
    ).fetchone()[0]
    events = dict(
        conn.execute(
            f"SELECT e.event, COUNT(*) FROM searches s JOIN events e ON e.search = s.id"
            f" WHERE s.kind = 'search'{window} GROUP BY e.event",
            params,
        ).fetchall()
    )
    return {
        "searches": searches,
        "queries": queries,
        "no_result_searches": no_result,
        "clicked_searches": clicked,
        "converted_searches": converted,
        "ctr": clicked / searches if searches else 0.0,
        "conversion": converted / searches if searches else 0.0,
        "impressions": impressions,
        "clicks": events.get("click", 0),
        "add_to_cart": events.get("add_to_cart", 0),
        "purchases": events.get("purchase", 0),
    }


def save_chart(report: dict[str, Any], path: str | Path, *, title: str = "towersearch: top queries") -> Path:
    """Write a PNG bar chart of the report's top queries: CTR and conversion per query, with its searches.

    matplotlib's Agg canvas draws it without pyplot (no global state, so any thread of the service may call
    this); the file is written to a temporary name and renamed into place.

    Args:
        report: What :func:`analytics` returned.
        path: The PNG file.
        title: The chart's title.

    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report["top_queries"]
    labels = [f"{row['query']} ({row['searches']})" for row in rows]
    fig = Figure(figsize=(8, max(2.5, 0.9 + 0.32 * len(rows))), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if rows:
        y = list(range(len(rows)))
        height = 0.38
        ctr = ax.barh([v - height / 2 for v in y], [r["ctr"] for r in rows], height, label="CTR")
        conversion = ax.barh([v + height / 2 for v in y], [r["conversion"] for r in rows], height, label="conversion")
        ax.bar_label(ctr, fmt="%.2f", fontsize=7, padding=2)
        ax.bar_label(conversion, fmt="%.2f", fontsize=7, padding=2)
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()  # most searched on top
        ax.set_xlim(0, 1.08)
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.text(0.5, 0.5, "no searches in this window", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("share of searches (query, with its number of searches)")
    totals = report.get("totals", {})
    ax.set_title(f"{title}: {totals.get('searches', 0)} searches, CTR {totals.get('ctr', 0.0):.2f}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path

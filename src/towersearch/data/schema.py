"""The three data formats towersearch reads: catalogue, search log and judgements.

The column contracts live here, in one place; the readers in :mod:`towersearch.data.catalog`,
:mod:`towersearch.data.log` and :mod:`towersearch.data.judgements` enforce them.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field

CATALOG_REQUIRED = ("product_id", "name")
CATALOG_OPTIONAL = ("brand", "category", "size", "description", "attributes", "created_at")
CATALOG_COLUMNS = CATALOG_REQUIRED + CATALOG_OPTIONAL

LOG_REQUIRED = ("query", "product_id", "event")
LOG_OPTIONAL = ("position", "session_id", "timestamp", "count")
LOG_COLUMNS = LOG_REQUIRED + LOG_OPTIONAL
EVENTS = ("impression", "click", "add_to_cart", "purchase")
POSITIVE_EVENTS = ("click", "add_to_cart", "purchase")
CONVERSION_EVENTS = ("add_to_cart", "purchase")

JUDGEMENT_COLUMNS = ("query", "product_id", "grade")
ESCI_GRADES = {"E": 3.0, "S": 2.0, "C": 1.0, "I": 0.0}

CATEGORY_SEPARATOR = ">"

_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]+>")


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace as one space, none at either end."""
    return _SPACE.sub(" ", text).strip()


def strip_html(text: str) -> str:
    """Plain text from an HTML fragment: tags become spaces, entities their characters, whitespace is collapsed.

    Tags are removed before entities are decoded, so an escaped ``&lt;b&gt;`` stays as the text ``<b>``.

    >>> strip_html("<b>Red</b>&amp;  <br/>Blue ")
    'Red & Blue'
    """
    if "<" in text or "&" in text:
        text = html.unescape(_TAG.sub(" ", text))
    return collapse_whitespace(text)


def normalize_query(text: str) -> str:
    """Normalise a query for counting and matching: Unicode NFKC, case-folded, whitespace collapsed.

    >>> normalize_query("  Organic\\u00a0MILK ")
    'organic milk'
    """
    return collapse_whitespace(unicodedata.normalize("NFKC", text).casefold())


def split_category(category: str) -> list[str]:
    """Split a category path such as ``"dairy eggs > milk"`` into its levels."""
    return [part.strip() for part in category.split(CATEGORY_SEPARATOR) if part.strip()]


@dataclass(slots=True)
class Product:
    """One catalogue row. Unknown input columns end up in :attr:`attributes`."""

    product_id: str
    name: str
    brand: str = ""
    category: str = ""
    size: str = ""
    description: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    created_at: str = ""

    @property
    def department(self) -> str:
        """The first level of the category path ("" when there is none)."""
        levels = split_category(self.category)
        return levels[0] if levels else ""


@dataclass(slots=True, frozen=True)
class LogEvent:
    """One search-log row; ``count`` > 1 stands for that many identical events (aggregated logs)."""

    query: str
    product_id: str
    event: str
    count: int = 1
    position: int | None = None
    session_id: str = ""
    timestamp: str = ""

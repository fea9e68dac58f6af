"""Product and query text, with the field markers the towers are trained on.

A product becomes ``[PN] Organic 2% Milk [PBN] GreenWise [PCS] dairy > milk [PSZ] 1 gal [PAS] organic, kosher
[PDS] Fresh reduced fat milk…`` and a query ``[QRY] milk``. The markers tell one encoder which field a word comes
from (ITEMS' "expanding product signals"); :class:`TextConfig` chooses the fields, so an ablation can switch any off.

The optional ``reviews`` field (``[PRV]``, not among :data:`DEFAULT_FIELDS`) is the product attribute
:data:`REVIEW_ATTRIBUTE`, the text of its most useful reviews that ``towersearch reviews expand`` writes; the
``attributes`` field leaves that attribute out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from towersearch.data.schema import Product
from towersearch.errors import ConfigError

MARKERS = {
    "name": "[PN]",
    "brand": "[PBN]",
    "category": "[PCS]",
    "size": "[PSZ]",
    "attributes": "[PAS]",
    "description": "[PDS]",
    "reviews": "[PRV]",
}
QUERY_MARKER = "[QRY]"
PRODUCT_FIELDS = tuple(MARKERS)
DEFAULT_FIELDS = ("name", "brand", "category", "size", "attributes", "description")
"""The fields products are read with unless told otherwise (``reviews`` is opt-in)."""
REVIEW_ATTRIBUTE = "review_text"
"""The product attribute the ``reviews`` field reads."""


def parse_fields(value: str | Sequence[str]) -> tuple[str, ...]:
    """Parse a comma-separated field list such as ``"name,brand"`` and check every name.

    Raises:
        ConfigError: an unknown or empty field list.
    """
    names = [f.strip() for f in value.split(",")] if isinstance(value, str) else [f.strip() for f in value]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in MARKERS]
    if unknown or not names:
        raise ConfigError(f"unknown product field(s) {unknown or '(none given)'}; allowed: {', '.join(PRODUCT_FIELDS)}")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class TextConfig:
    """How products and queries are turned into text."""

    fields: tuple[str, ...] = field(
        default=DEFAULT_FIELDS,
        metadata={"help": "Product fields to include, in order (comma-separated): " + ", ".join(PRODUCT_FIELDS)},
    )
    markers: bool = field(default=True, metadata={"help": "Prefix each field (and queries) with its marker token."})
    max_description_words: int = field(default=24, metadata={"help": "Clip descriptions to this many words."})
    max_attribute_values: int = field(default=6, metadata={"help": "Keep at most this many attribute values."})
    max_review_words: int = field(
        default=40, metadata={"help": "Clip the reviews field (the review_text attribute) to this many words."}
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", parse_fields(self.fields))
        if self.max_description_words < 0 or self.max_attribute_values < 0 or self.max_review_words < 0:
            raise ConfigError("max_description_words, max_attribute_values and max_review_words must be >= 0")


def attribute_text(attributes: dict[str, str], limit: int) -> str:
    """Attribute values as short text: ``dietary`` tags bare, others as ``key: value``; :data:`REVIEW_ATTRIBUTE` is
    left out (it is the ``reviews`` field)."""
    parts: list[str] = []
    for key, value in attributes.items():
        if not value or key == REVIEW_ATTRIBUTE:
            continue
        if key in ("dietary", "tags", "labels"):
            parts.extend(v.strip() for v in value.split(",") if v.strip())
        else:
            parts.append(f"{key.replace('_', ' ')}: {value}")
    return ", ".join(parts[:limit])


def clip_words(text: str, limit: int) -> str:
    """The first ``limit`` words of ``text``, separated by single spaces."""
    return " ".join(text.split()[:limit])


def field_value(product: Product, name: str, config: TextConfig) -> str:
    """The text of one product field under ``config``."""
    if name == "attributes":
        return attribute_text(product.attributes, config.max_attribute_values)
    if name == "description":
        return clip_words(product.description, config.max_description_words)
    if name == "reviews":
        return clip_words(product.attributes.get(REVIEW_ATTRIBUTE, ""), config.max_review_words)
    return str(getattr(product, name)).strip()


def product_text(product: Product, config: TextConfig | None = None) -> str:
    """The text the product tower (and BM25) reads for a product."""
    config = config or TextConfig()
    parts = []
    for name in config.fields:
        value = field_value(product, name, config)
        if value:
            parts.append(f"{MARKERS[name]} {value}" if config.markers else value)
    return " ".join(parts)


def query_text(query: str, config: TextConfig | None = None) -> str:
    """The text the query tower reads for a query."""
    config = config or TextConfig()
    return f"{QUERY_MARKER} {query}" if config.markers else query

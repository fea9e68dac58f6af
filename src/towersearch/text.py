"""Product and query text, with the field markers the towers are trained on.

A product becomes ``[PN] Organic 2% Milk [PBN] GreenWise [PCS] dairy > milk [PSZ] 1 gal [PAS] organic, kosher
[PDS] Fresh reduced fat milk…`` and a query ``[QRY] milk``. The markers tell one encoder which field a word comes
from (ITEMS' "expanding product signals"); :class:`TextConfig` chooses the fields, so an ablation can switch any off.
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
}
QUERY_MARKER = "[QRY]"
PRODUCT_FIELDS = tuple(MARKERS)
DEFAULT_FIELDS = ("name", "brand", "category", "size", "attributes", "description")


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", parse_fields(self.fields))
        if self.max_description_words < 0 or self.max_attribute_values < 0:
            raise ConfigError("max_description_words and max_attribute_values must be >= 0")


def attribute_text(attributes: dict[str, str], limit: int) -> str:
    """Attribute values as short text: ``dietary`` tags bare, others as ``key: value``."""
    parts: list[str] = []
    for key, value in attributes.items():
        if not value:
            continue
        if key in ("dietary", "tags", "labels"):
            parts.extend(v.strip() for v in value.split(",") if v.strip())
        else:
            parts.append(f"{key.replace('_', ' ')}: {value}")
    return ", ".join(parts[:limit])


def field_value(product: Product, name: str, config: TextConfig) -> str:
    """The text of one product field under ``config``."""
    if name == "attributes":
        return attribute_text(product.attributes, config.max_attribute_values)
    if name == "description":
        words = product.description.split()
        return " ".join(words[: config.max_description_words])
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

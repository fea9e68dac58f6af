"""Data formats, validating readers, writers, the demo store and importers."""

from towersearch.data.catalog import Catalog, load_catalog, write_catalog
from towersearch.data.judgements import Judgements, load_judgements, write_judgements
from towersearch.data.log import load_log, write_log
from towersearch.data.schema import EVENTS, LogEvent, Product, normalize_query

__all__ = [
    "EVENTS",
    "Catalog",
    "Judgements",
    "LogEvent",
    "Product",
    "load_catalog",
    "load_judgements",
    "load_log",
    "normalize_query",
    "write_catalog",
    "write_judgements",
    "write_log",
]

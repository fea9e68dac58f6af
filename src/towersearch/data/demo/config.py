"""Settings of the demo store generator, and the small helpers its stages share."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from towersearch.errors import ConfigError


@dataclass
class DemoConfig:
    """Settings of the demo store generator; every value is checked by :meth:`validate`."""

    n_products: int = field(default=5000, metadata={"help": "Products in the catalogue (100 to 2,000,000)."})
    seed: int = field(default=0, metadata={"help": "Random seed: the same seed and settings give identical files."})
    n_searches: int = field(
        default=10_000,
        metadata={"help": "Searches to simulate (at least 100); each writes about 7 log events on average."},
    )
    cold_start_fraction: float = field(
        default=0.05,
        metadata={"help": "Share of products that are new (created after the log ends, no events); 0 to 0.5."},
    )
    heldout_fraction: float = field(
        default=0.12,
        metadata={"help": "Share of query intents held out of the log and judged instead; above 0, at most 0.5."},
    )
    days: int = field(default=60, metadata={"help": "Length of the period in days (14 to 3650)."})
    start_date: str = field(default="2024-03-01", metadata={"help": "First day of the period, ISO format."})
    page_size: int = field(default=10, metadata={"help": "Products the simulated store shows per search (5 to 50)."})
    synonym_rate: float = field(
        default=0.35, metadata={"help": "Share of searches typed with a synonym, when the intent has one (0 to 0.9)."}
    )
    misspelling_rate: float = field(
        default=0.08, metadata={"help": "Share of searches typed with a misspelling (0 to 0.5)."}
    )
    zipf_exponent: float = field(
        default=1.0, metadata={"help": "Exponent of the Zipf law of intent popularity over rank (0.5 to 2)."}
    )
    reviews_per_product: float = field(
        default=2.0,
        metadata={
            "help": "Mean number of reviews per product (0 to 50; 0 writes no reviews.csv). Popular products get "
            "more, cold-start ones few or none."
        },
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~towersearch.errors.ConfigError` naming the first value that is not allowed."""
        _check_int("n_products", self.n_products, 100, 2_000_000)
        _check_int("seed", self.seed, -(2**63), 2**63 - 1)
        _check_int("n_searches", self.n_searches, 100, 50_000_000)
        _check_float("cold_start_fraction", self.cold_start_fraction, 0.0, 0.5)
        _check_float("heldout_fraction", self.heldout_fraction, 0.0, 0.5)
        if self.heldout_fraction == 0:
            raise ConfigError("heldout_fraction must be above 0: the judgements are made for held-out intents")
        _check_int("days", self.days, 14, 3650)
        _check_int("page_size", self.page_size, 5, 50)
        _check_float("synonym_rate", self.synonym_rate, 0.0, 0.9)
        _check_float("misspelling_rate", self.misspelling_rate, 0.0, 0.5)
        _check_float("zipf_exponent", self.zipf_exponent, 0.5, 2.0)
        _check_float("reviews_per_product", self.reviews_per_product, 0.0, 50.0)
        try:
            date.fromisoformat(str(self.start_date))
        except ValueError:
            raise ConfigError(f"start_date must be an ISO date such as 2024-03-01; got {self.start_date!r}") from None


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number; got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:,} and {high:,}; got {value:,}")


def _check_float(name: str, value: object, low: float, high: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        raise ConfigError(f"{name} must be a number; got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}; got {value}")


def stage_rng(config: DemoConfig, stage: str) -> random.Random:
    """The random generator of one stage ("brands", "products", "intents", "split", "log", "judgements",
    "reviews").

    Each stage draws from its own stream, seeded by the seed and the stage name, so the stages can run in any order
    and a change inside one stage leaves the draws of the others as they were.
    """
    return random.Random(f"towersearch-demo:{config.seed}:{stage}")


def iso(ts: int) -> str:
    """A Unix time in seconds as an ISO-8601 UTC timestamp, ``2024-03-01T00:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def cumsum(values: Sequence[float]) -> list[float]:
    """Running totals, for drawing by weight with :func:`bisect.bisect_right`."""
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out

"""Replay the demo store's shoppers against a running service, so that its event store fills as a live store's would.

The shoppers are the demo generator's own (:mod:`towersearch.data.demo.log`): sessions of one to several searches;
each search picks an intent by its Zipf weight (or, 2% of the time, something the store does not sell) and types it
canonically, as a synonym or misspelled (:meth:`~towersearch.data.demo.log.Simulator.surface`). Instead of the
simulated store's page, the shopper gets the service's answer to ``GET /search``; the true grade of each result for
the intent (:meth:`~towersearch.data.demo.intents.Intents.grade`) drives the same decisions as in the demo log:
views the top four positions and scrolls on with probability 1/2 per position, clicks with the position bias
1 / position^0.7 times an attractiveness by grade, adds some clicked products to the cart, retypes a synonym or
misspelling canonically after a search without a click, and buys some cart items at the end of the session. Clicks
and add-to-carts go to ``POST /events`` with the search's ``search_id`` after each search, purchases at the end of
the session; the service stamps them with the time they arrive.

Held-out intents stay held out (as in the demo log), so ``demo/data/judgements.csv`` still measures queries the
loop never trained on. The demo store must be the one the service serves: ``--products`` and ``--demo-seed`` as
given to ``towersearch demo-data`` (5000 and 0 for ``make demo``).

Run it with ``python -m towersearch.data.demo.replay --url http://127.0.0.1:8000 --searches 500`` or
``make replay``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from towersearch.data.demo.catalog import DemoCatalog
from towersearch.data.demo.config import DemoConfig
from towersearch.data.demo.intents import Intents
from towersearch.data.demo.log import (
    Simulator,
    adds_to_cart,
    buys,
    clicks,
    pick_intent,
    retypes,
    session_size,
    view_depth,
)
from towersearch.errors import ConfigError, ServiceError, TowersearchError
from towersearch.http_client import Client, JsonClient, detail


@dataclass(frozen=True)
class ReplayConfig:
    """Options of the replay (each field is the flag of the same name, ``--searches``, ``--demo-seed``, …)."""

    searches: int = field(default=200, metadata={"help": "Searches to send."})
    seed: int = field(default=0, metadata={"help": "Seed of the shoppers' draws: the same seed, the same shoppers."})
    rate: float = field(default=0.0, metadata={"help": "Searches per second (0: as fast as the service answers)."})
    k: int = field(default=10, metadata={"help": "Results asked for per search (the page the shopper sees)."})
    mode: str | None = field(default=None, metadata={"help": "Search mode (default: the index's default)."})
    products: int = field(default=5000, metadata={"help": "Products of the served demo store (demo-data --products)."})
    demo_seed: int = field(default=0, metadata={"help": "Seed of the served demo store (demo-data --seed)."})

    def __post_init__(self) -> None:
        if self.searches < 1:
            raise ConfigError(f"searches must be >= 1, got {self.searches}")
        if self.rate < 0:
            raise ConfigError(f"rate must be >= 0 searches per second (0: no pause), got {self.rate}")
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")


class Replay:
    """The demo store's shoppers (:class:`ReplayConfig` says which store and how many searches).

    Args:
        config: The options.
    """

    def __init__(self, config: ReplayConfig | None = None) -> None:
        self.config = config or ReplayConfig()
        demo = DemoConfig(n_products=self.config.products, seed=self.config.demo_seed)
        self.catalog = DemoCatalog(demo)
        self.intents = Intents(demo, self.catalog)
        self.simulator = Simulator(demo, self.catalog, self.intents)
        self.rows = {p.product_id: j for j, p in enumerate(self.catalog.products)}

    def grade(self, intent, result: dict[str, Any]) -> int | None:
        """The true grade of a search result for the intent; None for a product the demo store does not have (its
        id, or its name under that id: two demo stores share ids)."""
        row = self.rows.get(result["product_id"])
        if row is None or self.catalog.products[row].name != result.get("name"):
            return None
        return self.intents.grade(intent, row)

    def run(self, client: Client) -> dict[str, Any]:
        """Send the searches and the shoppers' events through ``client``; returns what was sent.

        Raises:
            ServiceError: the service answers a search or an event batch with an error, or records no events.
            ConfigError: the service serves another catalogue than this demo store.
        """
        cfg = self.config
        rng = random.Random(f"towersearch-replay:{cfg.seed}")
        sent: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        start = time.perf_counter()
        session = 0
        checked = False
        while counts["searches"] < cfg.searches:
            session += 1
            size = min(session_size(rng), cfg.searches - counts["searches"])
            session_id = f"replay-{cfg.seed}-{session}"
            cart: list[tuple[str, str, int, int]] = []
            retype = None
            for q in range(size):
                if retype is not None:
                    intent, text, kind = retype, retype.key, "canonical"
                else:
                    intent = pick_intent(self.intents, rng)
                    text, kind = self.simulator.surface(intent, rng)
                retype = None
                self._pace(start, counts["searches"])
                body = self._search(client, text, session_id)
                counts["searches"] += 1
                results = [(r["product_id"], self.grade(intent, r)) for r in body["results"]]
                foreign = sum(g is None for _, g in results)
                counts["foreign_results"] += foreign
                if results and not checked:  # the first answer tells whether this is the served store
                    checked = True
                    if foreign == len(results):
                        raise ConfigError(
                            f"the service's results ({results[0][0]!r}, …) are not products of the demo store with "
                            f"--products {cfg.products} --demo-seed {cfg.demo_seed}: pass the values the served "
                            "store was generated with (towersearch demo-data --products N --seed S)"
                        )
                batch = []
                clicked = 0
                depth = view_depth(len(results), rng)
                for position, (product_id, grade) in enumerate(results[:depth], start=1):
                    if grade is None or not clicks(grade, position, rng):
                        continue
                    event = {"search_id": body["search_id"], "product_id": product_id, "position": position}
                    batch.append({**event, "event": "click"})
                    clicked += 1
                    if adds_to_cart(grade, rng):
                        batch.append({**event, "event": "add_to_cart"})
                        cart.append((body["search_id"], product_id, position, grade))
                counts["searches_with_click"] += clicked > 0
                self._post(client, batch, sent)
                if retypes(kind, clicked > 0, q + 1 < size, rng):
                    retype = intent
            bought = [
                {"search_id": search_id, "product_id": product_id, "position": position, "event": "purchase"}
                for search_id, product_id, position, grade in cart
                if buys(grade, rng)
            ]
            self._post(client, bought, sent)
        seconds = time.perf_counter() - start
        return {
            "searches": counts["searches"],
            "sessions": session,
            "searches_with_click": counts["searches_with_click"],
            "events": {name: sent.get(name, 0) for name in ("click", "add_to_cart", "purchase")},
            "foreign_results": counts["foreign_results"],
            "seconds": round(seconds, 2),
            "searches_per_second": round(counts["searches"] / seconds, 2) if seconds > 0 else None,
        }

    def _pace(self, start: float, done: int) -> None:
        if self.config.rate > 0:
            wait = start + done / self.config.rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)

    def _search(self, client: Client, text: str, session_id: str) -> dict[str, Any]:
        params: dict[str, Any] = {"q": text, "k": self.config.k, "session_id": session_id}
        if self.config.mode:
            params["mode"] = self.config.mode
        response = client.get("/search", params=params)
        if response.status_code != 200:
            raise ServiceError(f"GET /search?q={text!r} answered {response.status_code}: {detail(response)}")
        body = response.json()
        if body.get("search_id") is None:
            raise ServiceError(
                "the service records no events (search_id is null): start it with TOWERSEARCH_RECORD_EVENTS=true"
            )
        return body

    @staticmethod
    def _post(client: Client, events: list[dict[str, Any]], sent: Counter[str]) -> None:
        if not events:
            return
        response = client.post("/events", json={"events": events})
        if response.status_code != 200:
            raise ServiceError(f"POST /events answered {response.status_code}: {detail(response)}")
        sent.update(e["event"] for e in events)


def replay(client: Client, config: ReplayConfig | None = None) -> dict[str, Any]:
    """Replay the demo store's shoppers through ``client`` (see the module docstring); returns what was sent.

    Args:
        client: An HTTP client on the service: :class:`~towersearch.http_client.JsonClient` for a URL, or FastAPI's
            ``TestClient`` in process.
        config: The options.

    Raises:
        ServiceError: the service answers with an error or records no events.
        ConfigError: bad options, or the service serves another catalogue.
    """
    return Replay(config).run(client)


def main(argv: list[str] | None = None) -> int:
    """``python -m towersearch.data.demo.replay --url URL [--searches N] [--seed S] [--rate R] …``."""
    parser = argparse.ArgumentParser(
        prog="python -m towersearch.data.demo.replay",
        description="Replay the demo store's shoppers against a running towersearch service.",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="The service (default: %(default)s).")
    parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for each answer.")
    defaults = ReplayConfig()
    for f in fields(ReplayConfig):
        value = getattr(defaults, f.name)
        kind = type(value) if isinstance(value, int | float) else str
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=kind,
            default=value,
            help=f"{f.metadata['help']} (default: %(default)s)",
        )
    args = parser.parse_args(argv)
    try:
        config = ReplayConfig(**{f.name: getattr(args, f.name) for f in fields(ReplayConfig)})
        summary = replay(JsonClient(args.url, timeout=args.timeout), config)
    except TowersearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    events = ", ".join(f"{n} {name}" for name, n in summary["events"].items())
    print(
        f"{summary['searches']} searches in {summary['sessions']} sessions in {summary['seconds']} s "
        f"({summary['searches_per_second']}/s), {summary['searches_with_click']} with a click; events sent: {events}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

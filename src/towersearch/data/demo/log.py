"""The simulated search log: sessions of searches, the pages the store shows, and the shoppers' events.

A search picks a live intent by its Zipf weight and types it canonically, as a synonym or misspelled, sometimes
with extra words; the store shows a noisy page of relevant, same-aisle, lexically similar and random products; the
shopper views the top four positions and scrolls on with probability 1/2 per position, clicks with a position
bias times an attractiveness that depends on the true grade, adds some clicked products to the cart and buys some
of them at the end of the session. Draws come from the "log" random stream.

Each of the shopper's decisions is a public function (:func:`session_size`, :func:`pick_intent`, :func:`view_depth`,
:func:`clicks`, :func:`adds_to_cart`, :func:`buys`, :func:`retypes`), and :meth:`Simulator.surface` types a query,
so that :mod:`towersearch.data.demo.replay` sends the same shoppers to a running service.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from towersearch.data.demo.catalog import DemoCatalog
from towersearch.data.demo.config import DemoConfig, cumsum, iso, stage_rng
from towersearch.data.demo.intents import Intent, Intents
from towersearch.data.schema import LogEvent, normalize_query
from towersearch.data.typos import typo

# Share of searches for things the store does not sell.
_UNSTOCKED_SHARE = 0.02
# Relative number of sessions starting in each hour of the day (UTC), busiest in the evening.
_HOURS = (1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3.5, 4, 4.5, 5, 4.5, 4, 4, 4.5, 5.5, 6.5, 7, 6.5, 5, 3.5, 2)
# By true grade 0 to 3: click attractiveness at position 1, cart rate after a click, purchase rate of a cart item.
_ATTRACT = (0.08, 0.12, 0.22, 0.42)
_CART_RATE = (0.02, 0.1, 0.2, 0.4)
_BUY_RATE = (0.3, 0.5, 0.6, 0.7)


@dataclass
class SearchLog:
    """The simulated log and what the simulator knows about it.

    Attributes:
        events: The log events, in time order.
        event_grades: The true relevance grade (0 to 3) of each event's product for the intent behind its query.
        query_intents: The intent key behind each normalised query text of the log.
        sessions: Number of sessions.
        searches: Number of searches.
        zero_click: Searches without a click.
        unstocked: Searches for things the store does not sell.
    """

    events: list[LogEvent]
    event_grades: list[int]
    query_intents: dict[str, str]
    sessions: int
    searches: int
    zero_click: int
    unstocked: int


def simulate_log(config: DemoConfig, catalog: DemoCatalog, intents: Intents) -> SearchLog:
    """Simulate ``config.n_searches`` searches over the log period of ``catalog``."""
    return Simulator(config, catalog, intents).run()


# The shoppers' behaviour, one function per decision, shared by the simulated log and the live replay
# (:mod:`towersearch.data.demo.replay`). Each draws from ``rng`` in a fixed order, so the log stays reproducible.


def session_size(rng: random.Random, limit: int = 8) -> int:
    """Searches in one session: 1, and one more with probability 1/2 each, up to ``limit``."""
    size = 1
    while rng.random() < 0.5 and size < limit:
        size += 1
    return size


def pick_intent(intents: Intents, rng: random.Random) -> Intent:
    """A search's intent: something the store does not sell 2% of the time, else a live intent by its Zipf weight."""
    if rng.random() < _UNSTOCKED_SHARE and intents.unstocked:
        pick = rng.random() * intents.unstocked_cum[-1]
        return intents.unstocked[bisect.bisect_right(intents.unstocked_cum, pick)]
    pick = rng.random() * intents.live_cum[-1]
    return intents.live[bisect.bisect_right(intents.live_cum, pick)]


def view_depth(shown: int, rng: random.Random) -> int:
    """How many positions the shopper views: the top four, then one more with probability 1/2 each."""
    depth = 4
    while depth < shown and rng.random() < 0.5:
        depth += 1
    return depth


def clicks(grade: int, position: int, rng: random.Random) -> bool:
    """Whether the shopper clicks a viewed product: attractiveness by true grade times 1 / position^0.7."""
    return rng.random() < _ATTRACT[grade] / position**0.7


def adds_to_cart(grade: int, rng: random.Random) -> bool:
    """Whether a clicked product goes into the cart, by its true grade."""
    return rng.random() < _CART_RATE[grade]


def buys(grade: int, rng: random.Random) -> bool:
    """Whether a cart item is bought at the end of the session, by its true grade."""
    return rng.random() < _BUY_RATE[grade]


def retypes(kind: str, clicked: bool, more_searches: bool, rng: random.Random) -> bool:
    """Whether a shopper retypes a synonym or misspelling canonically after a search without a click."""
    return not clicked and kind != "canonical" and more_searches and rng.random() < 0.5


class Simulator:
    """The simulated store and its shoppers: :meth:`run` writes the log, :meth:`surface` types a query for an
    intent, :meth:`page` is what the simulated store shows."""

    def __init__(self, config: DemoConfig, catalog: DemoCatalog, intents: Intents) -> None:
        self.cfg = config
        self.catalog = catalog
        self.intents = intents
        self.words = catalog.words

    def surface(self, intent: Intent, rng: random.Random) -> tuple[str, str]:
        """A surface form for one search and its kind: canonical, synonym or misspelling."""
        misspellings = self.words.misspellings
        text, kind = intent.key, "canonical"
        if intent.kind == "unstocked":
            return text, kind
        synonyms = [f for f, k in intent.forms if k == "synonym"]
        if synonyms and rng.random() < self.cfg.synonym_rate:
            text, kind = rng.choice(synonyms), "synonym"
        words = text.split(" ")
        curated = [i for i, w in enumerate(words) if w in misspellings]
        if rng.random() < self.cfg.misspelling_rate:
            if curated and rng.random() < 0.8:
                i = rng.choice(curated)
                options = misspellings[words[i]]
                words[i] = options[0] if rng.random() < 0.5 else rng.choice(options)
                text, kind = " ".join(words), "misspelling"
            else:
                long_words = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha()]
                if long_words:
                    i = rng.choice(long_words)
                    words[i] = typo(words[i], rng)
                    text, kind = " ".join(words), "misspelling"
        r = rng.random()
        if r < 0.03:
            text = f"{text} {rng.choice(self.words.extra_words_after)}"
        elif r < 0.045:
            text = f"{rng.choice(self.words.extra_words_before)} {text}"
        elif r < 0.06 and intent.phrase and (intent.brand or intent.attribute) and text.endswith(intent.phrase):
            text = f"{intent.phrase} {text[: -len(intent.phrase)].strip()}"
        if rng.random() < 0.03:
            text = text[:1].upper() + text[1:]
        if normalize_query(text) in self.intents.blocked:
            return intent.key, "canonical"
        return text, kind

    def page(self, intent: Intent, text: str, kind: str, rng: random.Random) -> list[tuple[int, int]]:
        """What the simulated store shows for a search: ``(product, true grade)`` in ranked order."""
        cat, grade = self.catalog, self.intents.grade
        n = self.cfg.page_size
        quality = {"canonical": 0.65, "synonym": 0.4, "misspelling": 0.25}[kind]
        grade3, grade2 = intent.pools or ([], [])
        taken: dict[int, float] = {}

        def draw(pool: Sequence[int], k: int, base: float, accept: Callable[[int], bool] | None = None) -> None:
            size, tries, got = len(pool), 0, 0
            while got < k and size and tries < 4 * k + 8:
                tries += 1
                j = pool[int(size * rng.random() ** 1.6)]
                if j in taken or (accept is not None and not accept(j)):
                    continue
                taken[j] = base + rng.gauss(0, 1.0)
                got += 1

        draw(grade3, sum(rng.random() < quality for _ in range(n)), 2.0)
        draw(grade2, sum(rng.random() < 0.35 for _ in range(n - len(taken))), 1.4)
        if intent.aisle_set:
            aisle = rng.choice(sorted(intent.aisle_set))
            k = sum(rng.random() < 0.3 for _ in range(n - len(taken)))
            draw(cat.by_aisle[aisle], k, 0.8, lambda j: cat.p_type[j] not in intent.type_set)
        tokens = [w for w in self.words.tokens(text) if w in cat.by_token]
        if tokens:
            k = sum(rng.random() < 0.5 for _ in range(n - len(taken)))
            for _ in range(k):
                draw(cat.by_token[rng.choice(tokens)], 1, 1.4, lambda j: grade(intent, j) == 0)
        draw(cat.live_by_pop, n - len(taken), 0.0)
        order = sorted(taken, key=lambda j: (-taken[j], j))
        return [(j, grade(intent, j)) for j in order[:n]]

    def run(self) -> SearchLog:
        cfg, rng = self.cfg, stage_rng(self.cfg, "log")
        cat, intents = self.catalog, self.intents
        span = cat.log_end - cat.t0 - 4 * 3600
        # Sessions: one to several searches each; start times spread over the log period, busier in the evening.
        sizes = []
        total = 0
        while total < cfg.n_searches:
            size = min(session_size(rng), cfg.n_searches - total)
            sizes.append(size)
            total += size
        hours = list(cumsum(_HOURS))
        starts = []
        for _ in sizes:
            day = rng.randrange(max(1, span // 86400))
            hour = bisect.bisect_right(hours, rng.random() * hours[-1])
            starts.append(cat.t0 + day * 86400 + hour * 3600 + rng.randrange(3600))
        starts.sort()
        # Showcase searches replace the first search of randomly chosen sessions.
        showcase: dict[int, tuple[Intent, str]] = {}
        by_key = {i.key: i for i in intents.live}
        slots = rng.sample(range(len(sizes)), min(len(sizes), len(self.words.showcase)))
        for slot, (key, form) in zip(slots, self.words.showcase, strict=False):
            if key in by_key and normalize_query(form) not in intents.blocked:
                showcase[slot] = (by_key[key], form)
        rows: list[tuple[int, int, int, str, int, str, int, int]] = []
        query_intents: dict[str, str] = {}
        searches = zero_click = unstocked = 0
        for s, (size, start) in enumerate(zip(sizes, starts, strict=True)):
            t = start
            seq = 0
            cart: list[tuple[str, int, int, int]] = []
            retype: tuple[Intent, str] | None = None
            for q in range(size):
                if q == 0 and s in showcase:
                    intent, text = showcase[s]
                    kind = "canonical" if text == intent.key else "synonym"
                elif retype is not None:
                    (intent, text), kind = retype, "canonical"
                else:
                    intent = pick_intent(intents, rng)
                    text, kind = self.surface(intent, rng)  # canonical, with no draw, for an unstocked intent
                retype = None
                searches += 1
                unstocked += intent.kind == "unstocked"
                query_intents.setdefault(normalize_query(text), intent.key)
                shown = self.page(intent, text, kind, rng)
                depth = view_depth(len(shown), rng)
                for pos, (j, g) in enumerate(shown[:depth], start=1):
                    rows.append((t, s, seq, text, j, "impression", pos, g))
                    seq += 1
                clicked = 0
                for pos, (j, g) in enumerate(shown[:depth], start=1):
                    if clicks(g, pos, rng):
                        t += rng.randint(3, 40)
                        rows.append((t, s, seq, text, j, "click", pos, g))
                        seq += 1
                        clicked += 1
                        if adds_to_cart(g, rng):
                            t += rng.randint(5, 60)
                            rows.append((t, s, seq, text, j, "add_to_cart", pos, g))
                            seq += 1
                            cart.append((text, j, pos, g))
                if not clicked:
                    zero_click += 1
                if retypes(kind, clicked > 0, q + 1 < size, rng):
                    retype = (intent, intent.key)
                t += rng.randint(10, 120)
            if cart:
                t += rng.randint(60, 900)
                for text, j, pos, g in cart:
                    if buys(g, rng):
                        rows.append((t, s, seq, text, j, "purchase", pos, g))
                        seq += 1
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        ids = [p.product_id for p in cat.products]
        stamp_cache: dict[int, str] = {}
        events: list[LogEvent] = []
        event_grades: list[int] = []
        for ts, s, _, text, j, event, pos, g in rows:
            stamp = stamp_cache.get(ts)
            if stamp is None:
                stamp = stamp_cache[ts] = iso(ts)
            events.append(LogEvent(text, ids[j], event, 1, pos, f"S{s + 1:07d}", stamp))
            event_grades.append(g)
        return SearchLog(events, event_grades, query_intents, len(sizes), searches, zero_click, unstocked)

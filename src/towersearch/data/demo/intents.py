"""Query intents of the demo store: what shoppers look for, how they may type it, and which products are relevant.

An intent is a product type, a generic word shared by several types ("milk"), a brand, brand + type, attribute +
type, variant + type, or something the store does not sell. Intents are ranked by popularity, weighted by a Zipf
law, and a stratified share is held out of the log to be judged instead. The true relevance grade of a product for
an intent (:meth:`Intents.grade`) is the ground truth of both the simulated clicks and the judgements.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from towersearch.data.demo.catalog import DemoCatalog
from towersearch.data.demo.config import DemoConfig, cumsum, stage_rng
from towersearch.data.schema import normalize_query

# Zipf-Mandelbrot offset: the weight of the intent of rank r (0-based) is 1 / (r + offset) ** zipf_exponent.
_ZIPF_OFFSET = 8.0


@dataclass(slots=True)
class Intent:
    """One query intent: its canonical text (``key``), what it asks for and its alternative surface forms."""

    key: str
    kind: str
    types: tuple[int, ...] = ()
    brand: str = ""
    attribute: str = ""
    variant: str = ""
    phrase: str = ""
    phrase_forms: tuple[str, ...] = ()
    score: float = 0.0
    forms: list[tuple[str, str]] = field(default_factory=list)
    type_set: frozenset[int] = frozenset()
    aisle_set: frozenset[int] = frozenset()
    related: frozenset[int] = frozenset()
    rank: int = 0
    heldout: bool = False
    keep: bool = False
    pools: tuple[list[int], list[int]] | None = None


class Intents:
    """The intents of a catalogue, ranked, with the held-out split and the Zipf weights of the live ones.

    Attributes:
        intents: Every intent, in the order made.
        ranked: The intents the store sells, most popular first.
        heldout: The held-out intents, by rank.
        blocked: Every surface form of a held-out intent: none of them may appear in the log.
        live: The intents that may be searched, with cumulative Zipf weights ``live_cum``.
        unstocked: The searches for things the store does not sell, with cumulative weights ``unstocked_cum``.

    Draws come from the "intents" and "split" random streams.
    """

    def __init__(self, config: DemoConfig, catalog: DemoCatalog) -> None:
        self.cfg = config
        self.catalog = catalog
        self.words = catalog.words
        self._make()
        self._split()

    def _make(self) -> None:
        rng = stage_rng(self.cfg, "intents")
        cat, words = self.catalog, self.words
        pop = cat.type_popularity
        present = [t.type_id for t in cat.types if cat.all_by_type[t.type_id]]
        n_present = len(present)
        intents: dict[str, Intent] = {}

        def add(intent: Intent) -> None:
            intent.key = normalize_query(intent.key)
            if intent.key and intent.key not in intents:
                intent.score *= rng.lognormvariate(0, 0.5)
                intents[intent.key] = intent

        generic_types: dict[str, list[int]] = defaultdict(list)
        for t in present:
            if cat.types[t].generic:
                generic_types[cat.types[t].generic].append(t)
        generics = {g: ts for g, ts in generic_types.items() if len(ts) >= 2}
        # Phrases ("whole milk", "milk") a modifier can combine with: (phrase, types, synonyms, popularity).
        phrases: list[tuple[str, tuple[int, ...], tuple[str, ...], float]] = []
        for t in present:
            typ = cat.types[t]
            synonyms = typ.synonyms
            if typ.generic and typ.generic not in generics:
                synonyms = synonyms + (typ.generic,) + words.generic_synonyms.get(typ.generic, ())
            phrases.append((typ.name, (t,), synonyms, pop[t]))
        for g, ts in generics.items():
            phrases.append((g, tuple(ts), words.generic_synonyms.get(g, ()), 0.6 * sum(pop[t] for t in ts)))
        for phrase, ts, synonyms, score in phrases:
            kind = "type" if len(ts) == 1 and phrase == cat.types[ts[0]].name else "generic"
            add(Intent(phrase, kind, ts, phrase=phrase, phrase_forms=synonyms, score=score))
        # Brands.
        brand_counts = [len(cat.all_by_brand[b]) for b in range(len(cat.brands))]
        for b, brand in enumerate(cat.brands):
            if brand_counts[b] >= 3 or (brand.new and brand_counts[b]):
                score = 0.15 * math.sqrt(brand.popularity * brand_counts[b] / 10)
                add(Intent(brand.name, "brand", (), brand=brand.name, score=score))
        # Combinations, capped to a few per type so the intent count does not grow with the catalogue.
        combos: dict[str, list[Intent]] = {"brand_type": [], "attribute_type": [], "variant_type": []}
        forced: list[Intent] = []
        for phrase, ts, synonyms, score in phrases:
            if len(ts) > 1 or phrase != cat.types[ts[0]].name:
                score *= 0.4  # "organic milk" is asked less often, relative to "milk", than "organic whole milk"
            members = [j for t in ts for j in cat.all_by_type[t]]
            total = len(members)
            brands = Counter(cat.p_brand[j] for j in members)
            for b, count in sorted(brands.items()):
                brand = cat.brands[b]
                intent = Intent(
                    f"{brand.name} {phrase}",
                    "brand_type",
                    ts,
                    brand=brand.name,
                    phrase=phrase,
                    phrase_forms=synonyms,
                    score=0.15 * score * brand.popularity * count / total,
                )
                (forced if brand.new else combos["brand_type"]).append(intent)
            diets = Counter(d for j in members for d in cat.p_diet[j])
            for d, count in sorted(diets.items()):
                bonus = 2.0 if d == "organic" else 1.0
                intent = Intent(
                    f"{d} {phrase}",
                    "attribute_type",
                    ts,
                    attribute=d,
                    phrase=phrase,
                    phrase_forms=synonyms,
                    score=0.25 * bonus * score * count / total,
                )
                combos["attribute_type"].append(intent)
            variants = Counter(cat.p_variant[j] for j in members if cat.p_variant[j])
            phrase_tokens = set(words.tokens(phrase))
            for v, count in sorted(variants.items()):
                if set(words.tokens(v)) & phrase_tokens:
                    continue
                intent = Intent(
                    f"{v} {phrase}",
                    "variant_type",
                    ts,
                    variant=v,
                    phrase=phrase,
                    phrase_forms=synonyms,
                    score=0.25 * score * count / total,
                )
                combos["variant_type"].append(intent)
        caps = {"brand_type": 3 * n_present, "attribute_type": (3 * n_present) // 2, "variant_type": n_present * 3 // 2}
        for kind, items in combos.items():
            items.sort(key=lambda it: (-it.score, it.key))
            for intent in items[: caps[kind]]:
                add(intent)
        for intent in forced:
            add(intent)
        for text in words.unstocked:
            add(Intent(text, "unstocked", score=0.0))
        # Surface forms, with those that are another intent's canonical text removed.
        keys = set(intents)
        for intent in intents.values():
            intent.type_set = frozenset(intent.types)
            intent.aisle_set = frozenset(cat.type_aisle[t] for t in intent.types)
            related = set()
            for t in intent.types:
                related |= cat.complements[t]
            intent.related = frozenset(related - intent.type_set)
            intent.forms = [(f, k) for f, k in self._forms(intent) if f not in keys and f != intent.key]
        self.intents = list(intents.values())

    def _forms(self, intent: Intent) -> list[tuple[str, str]]:
        """Deterministic alternative surface forms of an intent: synonyms, aliases and curated misspellings."""
        if intent.kind == "unstocked":
            return []
        prefix = ""
        if intent.brand:
            prefix = intent.brand.lower()
        elif intent.attribute:
            prefix = intent.attribute
        elif intent.variant:
            prefix = intent.variant
        out: list[tuple[str, str]] = []

        def join(*parts: str) -> str:
            return normalize_query(" ".join(p for p in parts if p))

        for synonym in intent.phrase_forms:
            out.append((join(prefix, synonym), "synonym"))
        for alias in self.words.attribute_aliases.get(intent.attribute, ()):
            out.append((join(alias, intent.phrase), "synonym"))
        if intent.brand:
            plain = intent.brand.lower().replace("'", "").replace(" & ", " and ")
            out.append((join(plain, intent.phrase), "synonym"))
        key_words = intent.key.split(" ")
        for i, word in enumerate(key_words):
            for wrong in self.words.misspellings.get(word, ()):
                out.append((" ".join(key_words[:i] + [wrong] + key_words[i + 1 :]), "misspelling"))
        seen: set[str] = set()
        unique = []
        for form, kind in out:
            if form not in seen:
                seen.add(form)
                unique.append((form, kind))
        return unique

    def _split(self) -> None:
        """Rank intents by popularity, give them Zipf weights and hold out a stratified share."""
        rng = stage_rng(self.cfg, "split")
        ranked = sorted((i for i in self.intents if i.kind != "unstocked"), key=lambda i: (-i.score, i.key))
        for r, intent in enumerate(ranked):
            intent.rank = r
        showcase = {normalize_query(k) for k, _ in self.words.showcase}
        for intent in ranked:
            intent.keep = intent.key in showcase
            intent.pools = self._pools(intent)
        forced = [i for i in ranked if not i.pools[0] and not i.keep]
        eligible = [i for i in ranked if i.pools[0] and not i.keep]
        target = round(self.cfg.heldout_fraction * len(ranked))
        need = min(len(eligible), max(0, target - len(forced)))
        chosen: list[Intent] = list(forced)
        if need:
            step = len(eligible) / need
            for b in range(need):
                lo, hi = int(b * step), max(int(b * step) + 1, int((b + 1) * step))
                chosen.append(eligible[rng.randrange(lo, min(hi, len(eligible)))])
        for intent in chosen:
            intent.heldout = True
        self.ranked = ranked
        self.heldout = sorted(chosen, key=lambda i: i.rank)
        # Every surface form of a held-out intent is blocked from the log.
        self.blocked: set[str] = set()
        for intent in self.heldout:
            self.blocked.add(intent.key)
            self.blocked.update(f for f, _ in intent.forms)
        s = self.cfg.zipf_exponent
        self.live = [i for i in ranked if not i.heldout and i.key not in self.blocked and i.pools[0]]
        weights = [1.0 / (i.rank + _ZIPF_OFFSET) ** s for i in self.live]
        self.live_cum = list(cumsum(weights))
        self.unstocked = [i for i in self.intents if i.kind == "unstocked" and i.key not in self.blocked]
        self.unstocked_cum = list(cumsum([1.0 / math.sqrt(r + 1) for r in range(len(self.unstocked))]))

    def _pools(self, intent: Intent) -> tuple[list[int], list[int]]:
        """Live products of grade 3 and of grade 2 for an intent, most popular first."""
        cat = self.catalog
        if intent.kind == "unstocked":
            return [], []
        if not intent.types:
            return list(cat.by_brand[cat.brands_index[intent.brand]]), []
        members = [j for t in intent.types for j in cat.by_type[t]]
        if len(intent.types) > 1:
            members.sort(key=lambda j: (-cat.p_pop[j], j))
        grade3, grade2 = [], []
        for j in members:
            (grade3 if self.grade(intent, j) == 3 else grade2).append(j)
        return grade3, grade2

    def grade(self, intent: Intent, j: int) -> int:
        """The true relevance grade of product ``j`` for ``intent``.

        3 = right type and every brand / attribute / variant asked for; 2 = right type, but a different brand,
        attribute or variant; 1 = same aisle or a listed complement; 0 = anything else.
        """
        cat = self.catalog
        if intent.kind == "unstocked":
            return 0
        if not intent.types:
            return 3 if cat.brands[cat.p_brand[j]].name == intent.brand else 0
        t = cat.p_type[j]
        if t in intent.type_set:
            if intent.brand and cat.brands[cat.p_brand[j]].name != intent.brand:
                return 2
            if intent.attribute and intent.attribute not in cat.p_diet[j]:
                return 2
            if intent.variant and cat.p_variant[j] != intent.variant:
                return 2
            return 3
        if cat.type_aisle[t] in intent.aisle_set or t in intent.related:
            return 1
        return 0

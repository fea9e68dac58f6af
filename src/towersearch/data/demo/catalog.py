"""The demo catalogue: invented brands, products drawn from the taxonomy, and lookup lists over them."""

from __future__ import annotations

import bisect
import calendar
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date

from towersearch.data.demo.config import DemoConfig, iso, stage_rng
from towersearch.data.demo.taxonomy import ProductType, product_types
from towersearch.data.demo.vocab import vocabulary
from towersearch.data.schema import Product, split_category


@dataclass(slots=True)
class Brand:
    """An invented brand: the departments it sells in, its specialty aisles and how popular it is."""

    name: str
    departments: tuple[str, ...]
    specialties: frozenset[str]
    popularity: float
    store: bool = False
    new: bool = False
    favours: str = ""


class DemoCatalog:
    """The generated catalogue and the simulator's ground truth about each product.

    Products are numbered ``j`` in catalogue order; ``p_type``, ``p_brand``, ``p_diet``, ``p_variant``, ``p_cold`` and
    ``p_pop`` give each one's type id, brand index, dietary attributes, variant, whether it is cold-start and its
    popularity. The ``by_*`` lists hold live (not cold-start) products, ``all_by_*`` every product, both most popular
    first. Draws come from the "brands" and "products" random streams.
    """

    def __init__(self, config: DemoConfig) -> None:
        self.cfg = config
        self.words = vocabulary()
        self.types: tuple[ProductType, ...] = product_types()
        self.aisles = sorted({t.category for t in self.types})
        self.aisle_id = {a: i for i, a in enumerate(self.aisles)}
        self.type_aisle = [self.aisle_id[t.category] for t in self.types]
        self.type_by_name = {t.name: t.type_id for t in self.types}
        self.departments = list(dict.fromkeys(t.department for t in self.types))
        start = date.fromisoformat(config.start_date)
        self.t0 = calendar.timegm(start.timetuple())
        self.cold_days = max(1, config.days // 12)
        self.log_end = self.t0 + (config.days - self.cold_days) * 86400
        self._make_brands()
        self._make_products()
        self.brands_index = {b.name: i for i, b in enumerate(self.brands)}
        self._index_products()

    def _make_brands(self) -> None:
        rng = stage_rng(self.cfg, "brands")
        words = self.words
        self.brand_names: set[str] = set()
        self.brands: list[Brand] = []
        group_of = {d: g for g in words.department_groups for d in g}
        aisles_of: dict[str, list[str]] = defaultdict(list)
        for a in self.aisles:
            aisles_of[split_category(a)[0]].append(a)
        per_department = Counter(t.department for t in self.types)
        for name, departments, favours in words.store_brands:
            depts = tuple(d for d in self.departments if d != "alcohol") if departments == "*" else ()
            if not depts:
                depts = tuple(d for d in self.departments if f" {d} " in f" {departments} ")
            self.brand_names.add(name)
            self.brands.append(Brand(name, depts, frozenset(), 3.0 * rng.lognormvariate(0, 0.3), True, False, favours))
        for department in self.departments:
            for _ in range(max(4, round(1.5 * per_department[department]))):
                depts = [department]
                group = [d for d in group_of[department] if d != department]
                extra = rng.choices((0, 1, 2, 3), weights=(0.6, 0.25, 0.1, 0.05))[0]
                for d in rng.sample(group, min(extra, len(group))):
                    depts.append(d)
                pool = [a for d in depts for a in aisles_of[d]]
                specialties = frozenset(rng.sample(pool, min(len(pool), rng.randint(1, 3))))
                name = self._brand_name(rng, department if len(depts) == 1 else "")
                self.brands.append(Brand(name, tuple(depts), specialties, rng.lognormvariate(0, 0.8)))

    def _brand_name(self, rng: random.Random, department: str) -> str:
        """A new brand name; with a department, it may end in a word of that department ("Creamery")."""
        words = self.words
        suffixes = words.brand_suffix.get(department, words.brand_general)
        for _ in range(100):
            r = rng.random()
            first = rng.choice(words.brand_first)
            if r < 0.35:
                name = f"{first} {rng.choice(suffixes)}"
            elif r < 0.6:
                name = f"{first} {rng.choice(words.brand_general)}"
            elif r < 0.75:
                name = first + rng.choice(words.brand_camel)
            elif r < 0.9:
                name = f"{rng.choice(words.brand_owner)}'s {rng.choice(suffixes)}"
            else:
                middle = rng.choice(words.brand_general)
                name = f"{first} {middle} {rng.choice([s for s in suffixes if s != middle])}"
            if name not in self.brand_names:
                self.brand_names.add(name)
                return name
        raise RuntimeError("could not invent a new brand name")  # pragma: no cover - 60 x 20+ combinations

    def _make_products(self) -> None:
        cfg, rng = self.cfg, stage_rng(self.cfg, "products")
        n = cfg.n_products
        pop = [(4.0 if t.staple else 1.0) * rng.lognormvariate(0, 0.6) for t in self.types]
        self.type_popularity = pop
        n_cold = round(cfg.cold_start_fraction * n)
        n_new = min(round(0.4 * n_cold), 40 * 8) if n_cold >= 8 else 0
        # New brands: whole launches of new products (all cold-start).
        new_specs: list[tuple[int, int]] = []  # (type id, brand index)
        if n_new:
            n_brands = max(1, min(8, n_new // 10))
            weights = [len([t for t in self.types if t.department == d]) for d in self.departments]
            for b in range(n_brands):
                department = rng.choices(self.departments, weights=weights)[0]
                own = [t.type_id for t in self.types if t.department == department]
                chosen = rng.sample(own, min(len(own), rng.randint(2, 3)))
                name = self._brand_name(rng, department)
                self.brands.append(Brand(name, (department,), frozenset(), 1.0, new=True))
                share = n_new // n_brands + (1 if b < n_new % n_brands else 0)
                new_specs += [(chosen[i % len(chosen)], len(self.brands) - 1) for i in range(share)]
        n_regular = n - len(new_specs)
        type_weights = [p**0.7 for p in pop]
        if n_regular >= 2 * len(self.types):
            regular = list(range(len(self.types)))
            regular += rng.choices(range(len(self.types)), weights=type_weights, k=n_regular - len(regular))
        else:
            regular = rng.choices(range(len(self.types)), weights=type_weights, k=n_regular)
        specs = [(t, -1) for t in regular] + new_specs
        rng.shuffle(specs)
        new_positions = [i for i, (_, b) in enumerate(specs) if b >= 0]
        regular_positions = [i for i, (_, b) in enumerate(specs) if b < 0]
        cold = set(new_positions) | set(rng.sample(regular_positions, max(0, n_cold - len(new_positions))))
        # Brands eligible per aisle, with cumulative weights (specialty aisles 4x).
        brand_table: dict[int, tuple[list[int], list[float]]] = {}
        for a in self.aisles:
            department = split_category(a)[0]
            ids, cum, total = [], [], 0.0
            for i, b in enumerate(self.brands):
                if b.new or department not in b.departments:
                    continue
                total += b.popularity * (4.0 if a in b.specialties else 1.0)
                ids.append(i)
                cum.append(total)
            brand_table[self.aisle_id[a]] = (ids, cum)
        self.products: list[Product] = []
        self.p_type: list[int] = []
        self.p_brand: list[int] = []
        self.p_diet: list[tuple[str, ...]] = []
        self.p_variant: list[str] = []
        self.p_cold: list[bool] = []
        self.p_pop: list[float] = []
        cold_start = self.log_end
        cold_span = self.t0 + cfg.days * 86400 - cold_start
        for i, (type_id, brand_index) in enumerate(specs):
            t = self.types[type_id]
            if brand_index < 0:
                ids, cum = brand_table[self.type_aisle[type_id]]
                brand_index = ids[bisect.bisect_right(cum, rng.random() * cum[-1])]
            brand = self.brands[brand_index]
            is_cold = i in cold
            if is_cold:
                created = cold_start + rng.randrange(cold_span)
            else:
                created = self.t0 - rng.randrange(86400, 900 * 86400)
            product = self._product(rng, f"P{i + 1:06d}", t, brand, created)
            self.products.append(product)
            self.p_type.append(type_id)
            self.p_brand.append(brand_index)
            self.p_cold.append(is_cold)
            self.p_pop.append(rng.lognormvariate(0, 1.0) * math.sqrt(brand.popularity))

    def _product(self, rng: random.Random, product_id: str, t: ProductType, brand: Brand, created: int) -> Product:
        words = self.words
        diet = []
        for d in t.dietary:
            rate = 0.95 if d == brand.favours else words.dietary_rate.get(d, 0.15)
            if rng.random() < rate:
                diet.append(d)
        variant = rng.choice(t.variants) if t.variants and rng.random() < 0.75 else ""
        head = rng.choice(t.heads) if t.heads and rng.random() < 0.4 else words.title(t.name)
        if variant and any(v in head.lower() for v in t.variants if v != variant):
            head = words.title(t.name)  # no "Yukon Gold Russet Potatoes"
        parts = [brand.name]
        shown = 0
        for d in diet:
            if shown < 2 and rng.random() < (0.9 if d == "organic" else 0.35):
                parts.append(words.title(d))
                shown += 1
        if variant and variant.replace("-", " ") not in head.lower().replace("-", " "):
            parts.append(words.title(variant))
        parts.append(head)
        name = parts[0]
        for part in parts[1:]:  # "80% Lean" + "Lean Ground Beef" -> "80% Lean Ground Beef"
            first, _, rest = part.partition(" ")
            name += f" {rest}" if rest and name.rsplit(" ", 1)[-1].lower() == first.lower() else f" {part}"
        phrase = rng.choice(t.synonyms) if t.synonyms and rng.random() < 0.2 else t.name
        if variant:
            phrase = f"{variant} {phrase}"
        if diet:
            phrase = f"{', '.join(diet)} {phrase}"
        opener = rng.choice(words.description_openers).format(phrase=phrase, brand=brand.name)
        description = f"{opener[0].upper()}{opener[1:]} {rng.choice(words.description_uses).format(use=t.use)}"
        attributes = {}
        if diet:
            attributes["dietary"] = ", ".join(diet)
        if variant:
            attributes[words.variant_key.get(t.department, "flavor")] = variant
        self.p_diet.append(tuple(diet))
        self.p_variant.append(variant)
        return Product(
            product_id=product_id,
            name=name,
            brand=brand.name,
            category=t.category,
            size=rng.choice(t.sizes),
            description=description,
            attributes=attributes,
            created_at=iso(created),
        )

    def _index_products(self) -> None:
        """Lists of live (not cold-start) products by type, aisle, brand and name token, most popular first."""
        tokens_of = self.words.tokens
        by_pop = sorted(range(len(self.products)), key=lambda j: (-self.p_pop[j], j))
        self.live_by_pop = [j for j in by_pop if not self.p_cold[j]]
        self.by_type: list[list[int]] = [[] for _ in self.types]
        self.by_aisle: list[list[int]] = [[] for _ in self.aisles]
        self.all_by_aisle: list[list[int]] = [[] for _ in self.aisles]
        self.by_brand: list[list[int]] = [[] for _ in self.brands]
        self.all_by_type: list[list[int]] = [[] for _ in self.types]
        self.all_by_brand: list[list[int]] = [[] for _ in self.brands]
        self.by_token: dict[str, list[int]] = defaultdict(list)
        self.all_by_token: dict[str, list[int]] = defaultdict(list)
        for j in by_pop:
            t, b = self.p_type[j], self.p_brand[j]
            self.all_by_type[t].append(j)
            self.all_by_brand[b].append(j)
            self.all_by_aisle[self.type_aisle[t]].append(j)
            tokens = dict.fromkeys(tokens_of(self.products[j].name))
            for token in tokens:
                self.all_by_token[token].append(j)
            if self.p_cold[j]:
                continue
            self.by_type[t].append(j)
            self.by_aisle[self.type_aisle[t]].append(j)
            self.by_brand[b].append(j)
            for token in tokens:
                self.by_token[token].append(j)
        # Near-misses: types whose names share a word with the query's words (tortilla chips for "tortillas").
        self.types_by_token: dict[str, set[int]] = defaultdict(set)
        for t in self.types:
            for token in tokens_of(t.name):
                self.types_by_token[token].add(t.type_id)
        self.extra_confusables: dict[int, set[int]] = defaultdict(set)
        for x, y in self.words.extra_confusables:
            self.extra_confusables[self.type_by_name[x]].add(self.type_by_name[y])
            self.extra_confusables[self.type_by_name[y]].add(self.type_by_name[x])
        complements: list[set[int]] = [set() for _ in self.types]
        for x, y in self.words.complements:
            complements[self.type_by_name[x]].add(self.type_by_name[y])
            complements[self.type_by_name[y]].add(self.type_by_name[x])
        self.complements = complements

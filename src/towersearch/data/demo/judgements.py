"""Graded judgements for the held-out intents of the demo store.

Each held-out intent is judged under its canonical text and, for about a third of the intents, also under one of
its colloquial or misspelled forms. Every grade-3 product is judged; grades 2, 1 and 0 are sampled, the
confusable near-misses (tortilla chips for "tortillas") first among the zeros. Draws come from the "judgements"
random stream.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from towersearch.data.demo.catalog import DemoCatalog
from towersearch.data.demo.config import DemoConfig, stage_rng
from towersearch.data.demo.intents import Intent, Intents


@dataclass
class JudgedQueries:
    """The judgements and their counts.

    Attributes:
        rows: ``(query, product_id, grade)``, grouped by query, best grade first.
        queries: Judged queries.
        with_cold_start: Judged queries with at least one cold-start product of grade 3.
        cold_start_only: Judged queries whose grade-3 products are all cold-start.
    """

    rows: list[tuple[str, str, float]]
    queries: int
    with_cold_start: int
    cold_start_only: int


def _sample(items: Sequence[int], k: int, rng: random.Random) -> list[int]:
    unique = list(dict.fromkeys(items))
    return unique if len(unique) <= k else rng.sample(unique, k)


def judge(config: DemoConfig, catalog: DemoCatalog, intents: Intents) -> JudgedQueries:
    """Judge the held-out intents of ``intents`` against every product of ``catalog`` (cold-start ones included)."""
    rng = stage_rng(config, "judgements")
    cat, grade, tokens = catalog, intents.grade, catalog.words.tokens
    ids = [p.product_id for p in cat.products]
    used: set[str] = set()
    rows: list[tuple[str, str, float]] = []
    judged_queries = cold_queries = cold_only_queries = 0
    n_products = len(cat.products)
    for intent in intents.heldout:
        grades: dict[int, int] = {}
        if intent.types:
            members = [j for t in intent.types for j in cat.all_by_type[t]]
        else:
            members = list(cat.all_by_brand[cat.brands_index[intent.brand]])
        grade2 = []
        for j in members:
            g = grade(intent, j)
            if g == 3:
                grades[j] = 3
            elif g == 2:
                grade2.append(j)
        if not grades:  # pragma: no cover - intents are made from existing products
            continue
        for j in _sample(grade2, 40, rng):
            grades[j] = 2
        related = [j for a in sorted(intent.aisle_set) for j in cat.all_by_aisle[a] if j not in grades]
        related += [j for t in sorted(intent.related) for j in cat.all_by_type[t]]
        for j in _sample([j for j in related if grade(intent, j) == 1], 15, rng):
            grades.setdefault(j, 1)
        near = _near_misses(cat, intent)
        for j in _sample([j for j in near if grade(intent, j) == 0], 8, rng):
            grades.setdefault(j, 0)
        lexical = [j for w in tokens(intent.key) for j in cat.all_by_token.get(w, [])[:200]]
        for j in _sample([j for j in dict.fromkeys(lexical) if grade(intent, j) == 0], 4, rng):
            grades.setdefault(j, 0)
        added = 0
        for _ in range(40):
            if added >= 8:
                break
            j = rng.randrange(n_products)
            if j not in grades and grade(intent, j) == 0:
                grades[j] = 0
                added += 1
        queries = [intent.key]
        alternatives = [f for f, _ in intent.forms if f not in used]
        if alternatives and rng.random() < 0.35:
            queries.append(rng.choice(alternatives))
        cold3 = sum(1 for j, g in grades.items() if g == 3 and cat.p_cold[j])
        n3 = sum(1 for g in grades.values() if g == 3)
        ordered = sorted(grades.items(), key=lambda item: (-item[1], ids[item[0]]))
        for query in queries:
            if query in used:
                continue
            used.add(query)
            judged_queries += 1
            cold_queries += cold3 > 0
            cold_only_queries += cold3 == n3
            rows.extend((query, ids[j], float(g)) for j, g in ordered)
    return JudgedQueries(rows, judged_queries, cold_queries, cold_only_queries)


def _near_misses(cat: DemoCatalog, intent: Intent) -> list[int]:
    """Products that share a word with the query but are a different intent: tortilla chips for "tortillas"."""
    if not intent.types:
        return [j for w in cat.words.tokens(intent.brand) for j in cat.all_by_token.get(w, [])[:200]]
    types: set[int] = set()
    for word in cat.words.tokens(intent.phrase):
        types.update(cat.types_by_token.get(word, ()))
    for t in intent.types:
        types.update(cat.extra_confusables.get(t, ()))
    types = {t for t in types if cat.type_aisle[t] not in intent.aisle_set and t not in intent.type_set}
    return [j for t in sorted(types) for j in cat.all_by_type[t]]

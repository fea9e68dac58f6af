"""Autocomplete judged by people's standards: a file of prefixes with what a person expects to see.

The file is JSON: ``{"cases": [{"store": ..., "prefix": ..., "show": [...], "hide": [...], "together": [[a, b]],
"apart": [[a, b]], "why": ...}]}``. For the top ``k`` suggestions of ``prefix``:

- ``show``: each is shown (compared by normal form: "macaroni & cheese" counts for "macaroni and cheese");
- ``hide``: none is shown as it is written (a misspelling, a malformed phrase);
- ``together``: the two are not both shown as separate suggestions (paraphrases fold into one);
- ``apart``: neither is folded into the other (a modifier makes them different requests).

Every case also checks that no shown suggestion repeats a word or starts or ends with a connective.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from towersearch.data.schema import normalize_query
from towersearch.errors import DataError
from towersearch.search.autocomplete import Suggester, build_candidates
from towersearch.search.phrases import Vocabulary, malformed, normal_form

FIELDS = {"store", "prefix", "show", "hide", "together", "apart", "why"}


@dataclass(frozen=True)
class Expectation:
    store: str
    prefix: str
    show: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    together: tuple[tuple[str, str], ...] = ()
    apart: tuple[tuple[str, str], ...] = ()
    why: str = ""

    def texts(self) -> set[str]:
        """Every text the case names."""
        return {*self.show, *self.hide, *(t for pair in (*self.together, *self.apart) for t in pair)}


@dataclass
class Outcome:
    case: Expectation
    shown: list[str]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def load_expectations(path: str | Path) -> list[Expectation]:
    """Read and validate an expectations file; errors name the case and field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read expectations: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise DataError(f"{path}: expected an object with a list 'cases'")
    out = []
    for i, case in enumerate(data["cases"]):
        where = f"{path}: case {i}"
        if not isinstance(case, dict):
            raise DataError(f"{where}: expected an object")
        unknown = set(case) - FIELDS
        if unknown:
            raise DataError(f"{where}: unknown field(s) {sorted(unknown)}")
        for name in ("store", "prefix"):
            if not isinstance(case.get(name), str) or not case[name].strip():
                raise DataError(f"{where}: '{name}' must be a non-empty string")
        lists = {}
        for name in ("show", "hide"):
            value = case.get(name, [])
            if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
                raise DataError(f"{where} ({case['prefix']!r}): '{name}' must be a list of texts")
            lists[name] = tuple(normalize_query(t) for t in value)
        for name in ("together", "apart"):
            value = case.get(name, [])
            if not isinstance(value, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(t, str) and t.strip() for t in p) for p in value
            ):
                raise DataError(f"{where} ({case['prefix']!r}): '{name}' must be a list of [text, text] pairs")
            lists[name] = tuple((normalize_query(a), normalize_query(b)) for a, b in value)
        out.append(Expectation(case["store"], case["prefix"], why=case.get("why", ""), **lists))
    return out


def check(case: Expectation, suggest: Callable[[str, int], Sequence], k: int = 8) -> Outcome:
    """Judge the suggestions ``suggest(prefix, k)`` (objects with ``text`` and ``folded``) against ``case``."""
    shown = list(suggest(case.prefix, k))
    texts = [s.text for s in shown]
    folded = {s.text: set(s.folded) for s in shown}
    normal = {normal_form(t) for t in texts}
    out = Outcome(case, texts)
    for text in case.show:
        if normal_form(text) not in normal:
            out.failures.append(f"{text!r} not shown")
    for text in case.hide:
        if text in texts:
            out.failures.append(f"{text!r} shown")
    for a, b in case.together:
        if a in texts and b in texts:
            out.failures.append(f"{a!r} and {b!r} shown apart")
    for a, b in case.apart:
        if a in folded.get(b, ()) or b in folded.get(a, ()):
            out.failures.append(f"{a!r} and {b!r} folded together")
    for text in texts:
        if malformed(text.split()):
            out.failures.append(f"{text!r} repeats a word or starts or ends with a connective")
    return out


def suggester_for(
    events: Sequence,
    products: Sequence,
    prefixes: Sequence[str],
    encode: Callable[[list[str]], np.ndarray] | None = None,
    k: int = 8,
) -> Suggester:
    """A :class:`Suggester` as ``towersearch index`` builds it, with query-tower embeddings (``encode``) computed
    only for the candidates ``prefixes`` can reach: the others are never compared, so their rows stay zero and the
    suggestions for ``prefixes`` are those of the full index, at a fraction of the encoding time."""
    vocabulary = Vocabulary.from_products(products)
    candidates = build_candidates(events, products, vocabulary=vocabulary)
    suggester = Suggester(candidates, None, modifiers=vocabulary.modifiers)
    if encode is None:
        return suggester
    text_id = {c.text: i for i, c in enumerate(candidates)}
    reach = {
        text_id[s.text] for p in prefixes for s in suggester.suggest(p, max(k, suggester.config.pool), dedup=False)
    }
    rows = sorted(reach)
    vectors = encode([candidates[i].text for i in rows]) if rows else np.zeros((0, 1), dtype=np.float32)
    embeddings = np.zeros((len(candidates), vectors.shape[1]), dtype=np.float32)
    embeddings[rows] = vectors
    return Suggester(candidates, embeddings, suggester.config, vocabulary.modifiers)

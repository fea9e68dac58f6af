"""The words of autocomplete: normal forms, the catalogue's vocabulary, clean catalogue phrases and spelling.

- :func:`normal_form`: the cheap key two paraphrases share ("mac n cheese", "macaroni & cheese" and "mac and
  cheeses" all give ``macaroni and cheese``): "&" / "n" / "+" as "and", a rough singular, and the known
  abbreviations of ``abbreviations.txt`` (``mac`` → ``macaroni``).
- :class:`Vocabulary`: what the catalogue says. ``words`` counts every word of product names, brands, attribute
  values, categories and descriptions (the spelling dictionary); ``modifiers`` holds the words of names, brands
  and attribute values, the words that make one request different from another ("vegan", a brand, a flavour,
  "corn" in "corn chips"). Two suggestions that differ by such a word are never folded together.
- :func:`catalog_phrases`: product types, brands and brand + type, built from the brand field and the name with its
  brand and attribute values taken off. A phrase never repeats a word (unless the product's own name does: "mahi
  mahi") and never starts or ends with a connective ("and cheese", "chips with").
- :meth:`Vocabulary.corrections` and :func:`correct`: the canonical spelling of a query. A word that the catalogue
  does not know, at least ``min_chars`` long, one edit (two from eight characters) from a catalogue word with the
  same first letter, is that word misspelt ("avacado" → "avocado"); so is a rare catalogue word next to one twenty
  times as frequent ("tortila" → "tortilla"); a word neither knows is corrected to a word searched three times as
  often ("guacamloe" → "guacamole" when the log says so).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources

from rapidfuzz import process
from rapidfuzz.distance import OSA

from towersearch.data.schema import Product, normalize_query
from towersearch.text import REVIEW_ATTRIBUTE

CONNECTIVES = frozenset({"and", "&", "n", "+", "plus", "with", "or", "of", "in", "for", "the", "a", "to", "by", "w"})
"""Words that join others: a phrase never starts or ends with one, and they never tell two requests apart."""

_NOISE = re.compile(r"[^a-z0-9&'+ -]+")
_AND = re.compile(r"\s*(?:&|\band\b|\bn\b|\bplus\b|\+)\s*")
_UNITS = frozenset(
    "oz fl lb lbs g kg mg mcg iu ml l ct pk pack count gal qt pt ea pc pcs sq ft".split()
)  # unit words after a number


_DIGIT = re.compile(r"\d")


def words_of(text: str) -> list[str]:
    """Lower-case words of ``text`` without punctuation, numbers or a unit after a number ("12 oz")."""
    out: list[str] = []
    after_number = False
    for w in _NOISE.sub(" ", normalize_query(text)).split():
        w = w.strip("-'")
        if not w or _DIGIT.search(w):
            after_number = bool(w)
            continue
        if after_number and w in _UNITS:
            continue
        after_number = False
        out.append(w)
    return out


@cache
def abbreviations() -> dict[str, str]:
    """Known abbreviations (``abbreviations.txt``: one ``short long`` pair per line, ``#`` comments)."""
    table: dict[str, str] = {}
    text = resources.files("towersearch.search").joinpath("abbreviations.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            short, long = line.split(None, 1)
            table[short] = long
    return table


def singular(word: str) -> str:
    """A rough English singular: berries → berry, boxes → box, apples → apple (short words and -ss untouched)."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "oes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


@lru_cache(maxsize=1 << 16)
def normal_words(text: str) -> tuple[str, ...]:
    """The words of :func:`normal_form` (cached: autocomplete compares the same candidates again and again)."""
    table = abbreviations()
    text = _AND.sub(" and ", normalize_query(text))
    return tuple(singular(w) for word in text.split() for w in table.get(word, word).split())


def normal_form(text: str) -> str:
    """``mac & cheese``, ``mac n cheese``, ``macaroni and cheeses`` share one normal form."""
    return " ".join(normal_words(text))


@lru_cache(maxsize=1 << 16)
def content_words(text: str) -> frozenset[str]:
    """Normalised words without connectives: what two requests are compared on."""
    return frozenset(w for w in normal_words(text) if w not in CONNECTIVES)


def malformed(words: Sequence[str], allowed_repeats: str = "") -> bool:
    """A phrase that starts or ends with a connective, or repeats a word (unless ``allowed_repeats`` does too)."""
    if not words or words[0] in CONNECTIVES or words[-1] in CONNECTIVES:
        return True
    repeated = {w for w, n in Counter(words).items() if n > 1}
    return any(f"{w} {w}" not in allowed_repeats for w in repeated)


# -- catalogue phrases ---------------------------------------------------------------------------------------------
TYPE_FIELDS = ("type", "product_type", "product type")


def type_words(product: Product) -> list[str]:
    """The words a product's type is taken from: a ``type`` attribute when there is one, else its name without its
    brand (when the name starts with it), its attribute values ("Sunny Lane Keto Hard Salami" with
    ``dietary=keto; flavor=hard`` gives ``salami``) and trailing connectives."""
    for key in TYPE_FIELDS:
        if product.attributes.get(key):
            return words_of(product.attributes[key])
    words = words_of(product.name)
    brand = words_of(product.brand)
    if brand and words[: len(brand)] == brand:
        words = words[len(brand) :]
    for key, value in product.attributes.items():
        if key == REVIEW_ATTRIBUTE:
            continue
        drop = words_of(value)
        n = len(drop)
        if n and len(words) > n:
            words = next((words[:i] + words[i + n :] for i in range(len(words) - n + 1) if words[i : i + n] == drop),
                         words)  # fmt: skip
    while words and words[-1] in CONNECTIVES:
        words = words[:-1]
    return words


def catalog_phrase_counts(products: Sequence[Product], head_share: float = 0.25) -> Counter[str]:
    """Product types, brands and brand + type phrases, each well formed, with the number of products giving each.

    A type is the last two of :func:`type_words`, three when the first of the two is a connective ("macaroni and
    cheese", not "and cheese") or when every product ending in those two words (at least two) has the same word
    before them ("thick cut bacon", not "cut bacon"). The last word alone is a type too ("cheese", "cereal") when
    it ends at least ``head_share`` of the types it is in ("original" and "organic" mostly come first).
    """
    kinds = [type_words(p) for p in products]
    before: dict[tuple[str, ...], set[str]] = {}
    ending: Counter[tuple[str, ...]] = Counter()
    last: Counter[str] = Counter()
    within: Counter[str] = Counter()
    for words in kinds:
        within.update(set(words))
        last.update(words[-1:])
        if len(words) >= 2:
            before.setdefault(tuple(words[-2:]), set()).add(words[-3] if len(words) >= 3 else "")
            ending[tuple(words[-2:])] += 1
    phrases: Counter[str] = Counter()
    for p, words in zip(products, kinds, strict=True):
        kind = tuple(words[-2:])
        if kind and (kind[0] in CONNECTIVES or (ending[kind] >= 2 and len(before[kind]) == 1)):
            kind = tuple(words[-3:])
        if kind and kind[0] in CONNECTIVES:
            kind = ()
        name = " ".join(words_of(p.name))
        brand = tuple(words_of(p.brand))
        head = ()
        if words and words[-1] not in CONNECTIVES and last[words[-1]] >= head_share * within[words[-1]]:
            head = (words[-1],)
        for phrase in {kind, head, brand, brand + kind if brand and kind else ()}:
            if phrase and not malformed(phrase, name):
                phrases[" ".join(phrase)] += 1
    return phrases


def catalog_phrases(products: Sequence[Product]) -> list[str]:
    """The phrases of :func:`catalog_phrase_counts`, sorted."""
    return sorted(catalog_phrase_counts(products))


# -- vocabulary and spelling ---------------------------------------------------------------------------------------
@dataclass
class Vocabulary:
    """Word counts of the catalogue (the spelling dictionary) and its modifier words (see the module docstring)."""

    words: Counter[str] = field(default_factory=Counter)
    modifiers: frozenset[str] = frozenset()
    repeated: frozenset[str] = frozenset()  # words a product name doubles ("mahi mahi")
    min_chars: int = 5

    @classmethod
    def from_products(cls, products: Iterable[Product], min_chars: int = 5) -> Vocabulary:
        words: Counter[str] = Counter()
        modifiers: set[str] = set()
        repeated: set[str] = set()
        for p in products:
            name = words_of(p.name)
            repeated.update(a for a, b in zip(name, name[1:], strict=False) if a == b)
            values = (v for k, v in p.attributes.items() if k != REVIEW_ATTRIBUTE)
            named = name + words_of(p.brand) + [w for v in values for w in words_of(v)]
            modifiers.update(named)
            words.update(named)
            words.update(words_of(p.category.replace(">", " ")))
            words.update(words_of(p.description))
        modifiers = {singular(w) for w in modifiers} - CONNECTIVES
        return cls(words, frozenset(modifiers), frozenset(repeated), min_chars)

    def __bool__(self) -> bool:
        return bool(self.words)

    def corrections(
        self,
        query_counts: Mapping[str, float],
        phrases: Iterable[str] = (),
        *,
        ratio: float = 3.0,
        rare: int = 10,
        catalog_ratio: float = 20.0,
    ) -> dict[str, str]:
        """Misspelt word → its correction, for the words of ``query_counts`` (query → searches) and ``phrases``.

        A word of the catalogue is misspelt only when it is rare there (at most ``rare`` times) and its correction
        is ``catalog_ratio`` times as frequent ("tortila" in one product name, "tortilla" in hundreds); a word of
        the log only, when its correction is a catalogue word or a word searched ``ratio`` times as often.
        """
        searched: Counter[str] = Counter()
        for query, n in query_counts.items():
            for w in set(query.split()):
                searched[w] += n
        phrase_words = {w for phrase in phrases for w in phrase.split()}
        known = [w for w in self.words if len(w) >= self.min_chars - 1]
        by_letter: dict[str, list[str]] = {}
        for w in known:
            by_letter.setdefault(w[0], []).append(w)
        logged: dict[str, list[str]] = {}
        for w in searched:
            if len(w) >= self.min_chars - 1 and w not in self.words:
                logged.setdefault(w[0], []).append(w)
        out: dict[str, str] = {}
        for w in sorted(phrase_words | set(searched)):
            if len(w) < self.min_chars or not w.isalpha() or self.words[w] > rare:
                continue
            cutoff = 2 if len(w) >= 8 else 1
            best = _closest(w, by_letter.get(w[0], []), cutoff, key=lambda v: self.words[v])
            if w in self.words:  # a rare catalogue word: misspelt only next to a far more frequent one
                if best is not None and self.words[best] < catalog_ratio * self.words[w]:
                    best = None
            elif best is None:  # not a catalogue word: a far more searched spelling of it?
                best = _closest(w, logged.get(w[0], []), cutoff, key=lambda v: searched[v])
                if best is not None and searched[best] < ratio * searched[w]:
                    best = None
            if best is not None and singular(best) != singular(w):
                out[w] = best
        return out


def _closest(word: str, choices: list[str], cutoff: int, key) -> str | None:
    """The most frequent (``key``) choice within ``cutoff`` edits of ``word`` (nearest first), or None."""
    if not choices:
        return None
    found = process.extract(word, choices, scorer=OSA.distance, score_cutoff=cutoff, limit=None)
    found = [(choice, dist) for choice, dist, _ in found if choice != word]
    if not found:
        return None
    return min(found, key=lambda t: (t[1], -key(t[0]), t[0]))[0]


def correct(text: str, corrections: Mapping[str, str]) -> str:
    """``text`` with every misspelt word replaced."""
    return " ".join(corrections.get(w, w) for w in text.split())

"""The demo store's word lists, read from the package data file ``words.toml``, and the text helpers that use them.

The lists are brand name parts, description templates, dietary rates, generic synonyms, attribute aliases, curated
misspellings, showcase and unstocked searches, complements and confusables (see the comments in the file).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

WORDS_FILE = "words.toml"

_TOKEN = re.compile(r"[a-z0-9%]+")


@dataclass(frozen=True)
class Vocabulary:
    """The word lists of ``words.toml``; their order matters, as the generator draws from them."""

    stopwords: frozenset[str]
    small_words: frozenset[str]
    upper: Mapping[str, str]
    brand_first: tuple[str, ...]
    brand_general: tuple[str, ...]
    brand_camel: tuple[str, ...]
    brand_owner: tuple[str, ...]
    department_groups: tuple[tuple[str, ...], ...]
    brand_suffix: Mapping[str, tuple[str, ...]]
    store_brands: tuple[tuple[str, str, str], ...]
    description_openers: tuple[str, ...]
    description_uses: tuple[str, ...]
    dietary_rate: Mapping[str, float]
    variant_key: Mapping[str, str]
    unstocked: tuple[str, ...]
    showcase: tuple[tuple[str, str], ...]
    extra_words_after: tuple[str, ...]
    extra_words_before: tuple[str, ...]
    generic_synonyms: Mapping[str, tuple[str, ...]]
    attribute_aliases: Mapping[str, tuple[str, ...]]
    misspellings: Mapping[str, tuple[str, ...]]
    complements: tuple[tuple[str, str], ...]
    extra_confusables: tuple[tuple[str, str], ...]

    def tokens(self, text: str) -> list[str]:
        """Lower-cased, crudely stemmed words of ``text`` without stopwords: what a query and a name share."""
        return [_stem(w) for w in _TOKEN.findall(text.lower()) if w not in self.stopwords]

    def title(self, text: str) -> str:
        """``text`` written as in a product name: "macaroni and cheese" -> "Macaroni and Cheese", "ipa" -> "IPA"."""
        out = []
        for i, word in enumerate(text.split(" ")):
            if word in self.upper:
                out.append(self.upper[word])
            elif i and word in self.small_words:
                out.append(word)
            else:
                out.append("-".join(part[:1].upper() + part[1:] for part in word.split("-")))
        return " ".join(out)


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("oes"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _tuples(table: Mapping[str, list[Any]]) -> dict[str, tuple[Any, ...]]:
    return {key: tuple(value) for key, value in table.items()}


def parse_vocabulary(text: str) -> Vocabulary:
    """Parse the TOML text of ``words.toml``.

    Raises:
        tomllib.TOMLDecodeError: the text is not TOML.
        KeyError: a list is missing.
    """
    data = tomllib.loads(text)
    text_, brands, products, queries, relevance = (
        data[k] for k in ("text", "brands", "products", "queries", "relevance")
    )
    return Vocabulary(
        stopwords=frozenset(text_["stopwords"]),
        small_words=frozenset(text_["small_words"]),
        upper=dict(text_["upper"]),
        brand_first=tuple(brands["first"]),
        brand_general=tuple(brands["general"]),
        brand_camel=tuple(brands["camel"]),
        brand_owner=tuple(brands["owner"]),
        department_groups=tuple(tuple(group) for group in brands["department_groups"]),
        brand_suffix=_tuples(brands["suffix"]),
        store_brands=tuple((b["name"], b["departments"], b["favours"]) for b in brands["store"]),
        description_openers=tuple(products["description_openers"]),
        description_uses=tuple(products["description_uses"]),
        dietary_rate=dict(products["dietary_rate"]),
        variant_key=dict(products["variant_key"]),
        unstocked=tuple(queries["unstocked"]),
        showcase=tuple((intent, form) for intent, form in queries["showcase"]),
        extra_words_after=tuple(queries["extra_words_after"]),
        extra_words_before=tuple(queries["extra_words_before"]),
        generic_synonyms=_tuples(queries["generic_synonyms"]),
        attribute_aliases=_tuples(queries["attribute_aliases"]),
        misspellings=_tuples(queries["misspellings"]),
        complements=tuple((a, b) for a, b in relevance["complements"]),
        extra_confusables=tuple((a, b) for a, b in relevance["extra_confusables"]),
    )


@cache
def vocabulary() -> Vocabulary:
    """The demo store's word lists (read once, then cached)."""
    return parse_vocabulary(files(__package__).joinpath(WORDS_FILE).read_text(encoding="utf-8"))

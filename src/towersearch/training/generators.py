"""Query generators for ``towersearch train --query-generator module:function``, and how to write one.

A generator is a function that takes a :class:`~towersearch.data.Product` and returns a list of extra queries a
shopper might type for it. ``train`` calls it for every cold-start product (one with no positive in the log) and
adds its queries, normalised and de-duplicated, after the product's built-in synthetic queries (which come from
its own fields: the name's type phrase, the category leaf, brand + type, …, see
:func:`~towersearch.training.pairs.synthetic_queries`). Any importable function works: a paraphrase model, an LLM
behind an API, a store's own synonym table::

    # my_store/queries.py
    def paraphrases(product):
        return [row["query"] for row in SYNONYMS.get(product.product_id, [])]

    towersearch train --catalog catalog.csv --out model --query-generator my_store.queries:paraphrases

:func:`broad_queries` is the worked example shipped with towersearch: broader, aisle-like queries than the built-in
ones, still from the product's own fields only. :func:`hypernym_queries` adds what the product's fields do not say:
the broader food terms above its type in WordNet ("zucchini" → "summer squash", "squash"); training adds these
itself to a grocery catalogue (``pairs.food_terms``), and the generator forces them on any other.
"""

from __future__ import annotations

from towersearch.data.schema import Product, normalize_query, split_category
from towersearch.search.phrases import singular
from towersearch.training.pairs import _clean, _type_phrases, food_terms


def plural(word: str) -> str:
    """A rough English plural: berry → berries, box → boxes, chip → chips (a word ending in s is left alone)."""
    if not word or word.endswith("s"):
        return word
    if word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("ch", "sh", "x", "z")):
        return word + "es"
    return word + "s"


def broad_queries(product: Product) -> list[str]:
    """Queries broader than the product's name, as a shopper browsing a shelf types them.

    - the type phrase without the brand's words ("Kettle Brand Sea Salt Potato Chips" → "potato chips"),
    - the type's head noun alone, in the plural ("chips"; "cola" → "colas"),
    - the upper levels of the category path, when the catalogue has one ("snacks" for "snacks > chips").

    Returns:
        At most four queries, none equal to the product's full name.
    """
    brand = set(_clean(product.brand).split())
    types = _type_phrases(product.name)
    out: list[str] = []
    if types:
        unbranded = " ".join(w for w in types[0].split() if w not in brand)
        if unbranded:
            out.append(unbranded)
            out.append(plural(singular(unbranded.split()[-1])))
    out.extend(normalize_query(level) for level in split_category(product.category)[:-1])
    full = _clean(product.name)
    return [q for q in dict.fromkeys(out) if q and q != full][:4]


def hypernym_queries(product: Product) -> list[str]:
    """Broader food terms for the product's type, from WordNet: :func:`~towersearch.training.pairs.food_terms` as a
    generator, for a catalogue where training's own check does not take it for a grocery store
    (``food_terms="auto"``) or where it is off.

    Returns:
        At most three terms; none for a type WordNet does not know as a food ("Aluminum Foil").
    """
    return food_terms(product)

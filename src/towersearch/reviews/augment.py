"""Paraphrase hooks for ``towersearch reviews train --augment module:function``, and how to write one.

A hook takes a :class:`~towersearch.reviews.data.Review` and returns a list of paraphrased texts; each becomes an
extra training example with the hand labels of the review it came from (weak-labelled reviews are not augmented).
Any importable function works: a paraphrase model, an LLM behind an API, back-translation::

    # my_store/paraphrase.py
    def back_translate(review):
        return [to_english(to_german(review.text))]

    towersearch reviews train reviews.csv --labels labels.csv --out model --augment my_store.paraphrase:back_translate

:func:`synonym_swap` is the worked example shipped with towersearch: easy data augmentation (Wei and Zou, 2019)
restricted to swaps that keep each intent: synonyms of equal strength, so a passionate review stays passionate and
a calm one calm; sentence order, exclamation marks, capitals and numbers are kept.
"""

from __future__ import annotations

import random
import re

from towersearch.reviews.data import Review

SYNONYMS: dict[str, tuple[str, ...]] = {
    "good": ("nice", "fine"),
    "great": ("excellent", "terrific"),
    "love": ("adore",),
    "like": ("enjoy",),
    "tasty": ("flavorful",),
    "delicious": ("delectable",),
    "bad": ("poor",),
    "awful": ("terrible",),
    "terrible": ("awful",),
    "buy": ("purchase",),
    "bought": ("purchased",),
    "product": ("item",),
    "price": ("cost",),
    "big": ("large",),
    "small": ("little",),
    "quick": ("fast",),
    "really": ("truly",),
    "very": ("quite",),
    "tried": ("tested",),
    "use": ("utilize",),
    "kids": ("children",),
    "store": ("shop",),
    "however": ("but",),
    "but": ("however",),
    "also": ("too",),
    "think": ("believe",),
    "recommend": ("suggest",),
}
_TOKEN = re.compile(r"[A-Za-z]+")


def synonym_swap(review: Review, *, variants: int = 2, share: float = 0.15, seed: int = 0) -> list[str]:
    """``variants`` paraphrases of the review's text, each swapping about ``share`` of the words that have a
    synonym in :data:`SYNONYMS` (at least one), keeping the word's capitalisation."""
    rng = random.Random(f"{seed}:{review.review_id}")
    matches = [m for m in _TOKEN.finditer(review.text) if m.group().lower() in SYNONYMS]
    if not matches:
        return []
    out = []
    for _ in range(variants):
        chosen = set(rng.sample(range(len(matches)), max(1, round(share * len(matches)))))
        pieces, last = [], 0
        for j, m in enumerate(matches):
            if j not in chosen:
                continue
            word = m.group()
            swap = rng.choice(SYNONYMS[word.lower()])
            if word.isupper() and len(word) > 1:
                swap = swap.upper()
            elif word[0].isupper():
                swap = swap.capitalize()
            pieces += [review.text[last : m.start()], swap]
            last = m.end()
        text = "".join(pieces) + review.text[last:]
        if text != review.text and text not in out:
            out.append(text)
    return out

"""Weak labels for review intents: labelling functions, their vote, and how good each one is.

A labelling function (LF) looks at one review and votes ``YES`` (1), ``NO`` (0) or ``ABSTAIN`` (-1) for one intent,
from what the review carries: its words (specific details, numbers and units, comparisons, strong-feeling words,
exclamations and capitals, contrast words with content on both sides, a hostility lexicon) and its metadata
(helpfulness votes and their ratio, how extreme the star rating is). No LF is expected to be right often on its own
nor to cover every review; their vote (:func:`weak_labels`) is what a classifier learns from (data programming,
Ratner et al., 2016). :func:`lf_report` gives each LF's coverage, overlaps, conflicts and, with hand labels, its
accuracy, so a team can see which rules to trust.

The intents follow the annotation guidelines of ``review-intents`` (see the README's review insights section):
``highly_useful`` (at least two concrete, decision-relevant details), ``passionate`` (strong feeling either way),
``obnoxious`` (hostile to people, spam, off-topic; not plain negativity) and ``balanced`` (a real positive and a
real negative about the product itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from towersearch.reviews.data import INTENTS, Review

ABSTAIN, NO, YES = -1, 0, 1

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_RAW_WORD = re.compile(r"[A-Za-z]+")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\s+-\s+|\.{2,}")
_QUANTITY = re.compile(
    r"(\$\s?\d|\d+(?:\.\d+)?\s*(?:%|oz|ounces?|lbs?|pounds?|g|grams?|kg|ml|l|liters?|litres?|cups?|tbsp|tsp|"
    r"tablespoons?|teaspoons?|pack|packs|count|ct|cans?|bags?|boxes|bottles?|pieces?|calories|cents?|dollars?|"
    r"minutes?|hours?|days?|weeks?|months?|years?|mg)\b)"
)
_URL = re.compile(r"https?://|www\.")

# Words for a concrete detail, by the kinds the guidelines list (a review naming two kinds is specific).
DETAIL_KINDS: dict[str, frozenset[str]] = {
    "taste": frozenset(
        "taste tastes tasted tasting flavor flavors flavour flavours flavored sweet sweetness salty salt sour bitter "
        "spicy spice spices bland tangy savory savoury aftertaste rich mild strong hot smoky buttery fruity".split()
    ),
    "texture": frozenset(
        "texture chewy crunchy crispy crisp soft hard creamy moist dry stale smooth thick thin gritty soggy tender "
        "tough mushy fluffy sticky".split()
    ),
    "ingredients": frozenset(
        "ingredient ingredients sugar sugars corn protein fat carbs calories organic gluten artificial preservatives "
        "msg sodium fiber fibre grain grains wheat soy dairy milk syrup natural chemicals additives vitamins meat "
        "chicken beef rice oats nuts peanuts caffeine".split()
    ),
    "quantity": frozenset(
        "size sized small smaller large larger big bigger bag bags box boxes can cans bottle bottles jar jars pack "
        "packs package case count ounce ounces oz lb lbs pound pounds serving servings portion pieces piece".split()
    ),
    "price": frozenset(
        "price priced prices cost costs expensive cheap cheaper pricey value worth deal bargain money dollars "
        "shipping".split()
    ),
    "condition": frozenset(
        "packaging packaged arrived arrive fresh freshness expiration expired sealed broken damaged crushed melted "
        "leaked leaking stale shelf".split()
    ),
    "use": frozenset(
        "cook cooked cooking bake baked baking recipe recipes mix mixed brew brewed boil heat microwave serve served "
        "add added prepare preparation drink snack breakfast lunch dinner tea coffee water".split()
    ),
    "audience": frozenset(
        "kids children child toddler baby dog dogs cat cats puppy kitten husband wife family diabetic allergic "
        "allergy vegan vegetarian vet diet".split()
    ),
    "comparison": frozenset("than compared compare comparison similar unlike versus vs brand brands".split()),
}

STRONG_WORDS = frozenset(
    "love loved loves adore adored hate hated hates best worst amazing awesome awful terrible horrible horrendous "
    "disgusting delicious fantastic excellent incredible wonderful perfect perfection addicted addictive obsessed "
    "favorite favourite heavenly heaven yummy outstanding superb phenomenal gross yuck nasty vile inedible "
    "absolutely totally seriously ever greatest divine scrumptious scrumptuous fabulous magnificent "
    "unbelievable sublime glorious ecstatic thrilled furious outraged disappointed horrid revolting".split()
)
CALM_WORDS = frozenset("ok okay fine decent good nice pleasant satisfied acceptable average".split())
# Upper-case tokens that are names, not emphasis.
ACRONYMS = frozenset("USA US UK MSG BPA GMO FDA USDA UPS USPS DHA EPA HFCS BBQ DIY LOL OMG TV PM AM".split())

CONTRAST = frozenset("but however although though except unfortunately otherwise yet whereas".split())
CAVEAT = re.compile(
    r"\b(only (?:downside|complaint|problem|issue|negative|drawback|con|thing)|downside|drawback|"
    r"my (?:one|only) (?:complaint|gripe)|i wish|wish (?:it|they|there)|would be (?:better|nice|perfect) if|"
    r"a (?:bit|little|tad) (?:too|on the)|pros? and cons?|on the other hand|not (?:perfect|for everyone))\b"
)
POSITIVE = frozenset(
    "good great love loved like liked likes delicious tasty fresh nice excellent perfect enjoy enjoyed favorite "
    "best recommend yummy wonderful happy pleased awesome amazing fantastic tasted well worth better".split()
)
NEGATIVE = frozenset(
    "bad too stale bland expensive pricey disappointed disappointing problem problems issue complaint downside "
    "worse worst awful terrible overpowering weak unfortunately hard dry burnt bitter broken small less lacking "
    "lacks missing sadly wish not don't didn't wasn't isn't doesn't never".split()
)
SERVICE_WORDS = frozenset(
    "shipping shipped delivery delivered seller arrived amazon ups usps fedex order ordered".split()
)

HOSTILE = frozenset(
    "idiot idiots stupid moron morons dumb scam scammer scammers scammed ripoff crook crooks liar liars lying thief "
    "thieves fraud fraudulent shameful pathetic jerk jerks incompetent clueless losers loser crap crappy damn "
    "shit bullshit fuck fucking fucked wtf sucks suck garbage trash".split()
)
PEOPLE = frozenset(
    "seller sellers company companies manufacturer maker makers amazon you people reviewer reviewers customer "
    "customers they them whoever idiots morons".split()
)
SPAM = re.compile(r"\b(promo code|coupon code|discount code|click here|visit my|follow me|check out my|buy now at)\b")


@dataclass(frozen=True)
class Signals:
    """What the labelling functions read from one review, computed once."""

    review: Review

    @cached_property
    def text(self) -> str:
        return self.review.full_text

    @cached_property
    def lower(self) -> str:
        return self.text.lower()

    @cached_property
    def words(self) -> list[str]:
        return _WORD.findall(self.lower)

    @cached_property
    def word_set(self) -> frozenset[str]:
        return frozenset(self.words)

    @property
    def n_words(self) -> int:
        return len(_WORD.findall(self.review.text.lower()))

    @cached_property
    def detail_kinds(self) -> tuple[str, ...]:
        """The kinds of concrete detail the review names (a number with a unit counts as a quantity)."""
        kinds = [kind for kind, words in DETAIL_KINDS.items() if words & self.word_set]
        if self.quantities and "quantity" not in kinds:
            kinds.append("quantity")
        return tuple(kinds)

    @cached_property
    def quantities(self) -> int:
        return len(_QUANTITY.findall(self.lower))

    @cached_property
    def exclamations(self) -> int:
        return self.text.count("!")

    @cached_property
    def caps_words(self) -> int:
        """Words of three letters or more in capitals for emphasis (not acronyms)."""
        return sum(1 for w in _RAW_WORD.findall(self.text) if len(w) >= 3 and w.isupper() and w not in ACRONYMS)

    @cached_property
    def strong_words(self) -> int:
        return sum(1 for w in self.words if w in STRONG_WORDS)

    @cached_property
    def calm_words(self) -> int:
        return sum(1 for w in self.words if w in CALM_WORDS)

    @cached_property
    def sentences(self) -> list[set[str]]:
        return [set(_WORD.findall(s)) for s in _SENTENCE.split(self.lower) if s.strip()]

    @cached_property
    def has_contrast(self) -> bool:
        return bool(CONTRAST & self.word_set)

    @cached_property
    def has_caveat(self) -> bool:
        return CAVEAT.search(self.lower) is not None

    @cached_property
    def two_sided(self) -> bool:
        """A contrast word with a positive on one side and a negative on the other (within the review)."""
        words = self.words
        for i, w in enumerate(words):
            if w not in CONTRAST:
                continue
            before, after = set(words[max(0, i - 25) : i]), set(words[i + 1 : i + 26])
            if (before & POSITIVE and after & NEGATIVE) or (before & NEGATIVE and after & POSITIVE):
                if not _service_only(after if before & POSITIVE else before):
                    return True
        return False

    @property
    def helpful_ratio(self) -> float | None:
        total = self.review.total_votes or 0
        if total <= 0 or self.review.helpful_votes is None:
            return None
        return self.review.helpful_votes / total


def _service_only(words: set[str]) -> bool:
    """The negative side speaks of shipping or the seller and nothing about the product's qualities."""
    return bool(words & SERVICE_WORDS) and not any(words & DETAIL_KINDS[k] for k in ("taste", "texture", "ingredients"))


@dataclass(frozen=True)
class LabellingFunction:
    """One rule: ``fn`` maps a review's :class:`Signals` to ``YES``, ``NO`` or ``ABSTAIN`` for ``intent``."""

    name: str
    intent: str
    fn: Callable[[Signals], int]
    description: str

    def __call__(self, signals: Signals) -> int:
        return self.fn(signals)


# --- highly_useful -------------------------------------------------------------------------------------------------


def _useful_details(s: Signals) -> int:
    if len(s.detail_kinds) >= 3 and s.n_words >= 40:
        return YES
    return ABSTAIN


def _useful_length(s: Signals) -> int:
    if s.n_words >= 80:
        return YES
    if s.n_words < 30:
        return NO
    return ABSTAIN


def _useful_votes(s: Signals) -> int:
    ratio, total = s.helpful_ratio, s.review.total_votes or 0
    if ratio is None or total < 2:
        return ABSTAIN
    return YES if ratio >= 0.75 else NO if ratio < 0.4 else ABSTAIN


def _useful_bare(s: Signals) -> int:
    return NO if s.n_words < 45 and len(s.detail_kinds) <= 1 else ABSTAIN


def _useful_numbers(s: Signals) -> int:
    return YES if s.quantities and s.n_words >= 35 else ABSTAIN


# --- passionate ----------------------------------------------------------------------------------------------------


def _passion_exclamations(s: Signals) -> int:
    return YES if s.exclamations >= 2 else ABSTAIN


def _passion_capitals(s: Signals) -> int:
    return YES if s.caps_words >= 2 or (s.caps_words and s.exclamations) else ABSTAIN


def _passion_strong_words(s: Signals) -> int:
    return YES if s.strong_words >= 3 or (s.strong_words >= 2 and s.exclamations) else ABSTAIN


def _passion_mild(s: Signals) -> int:
    """A strong word or an exclamation at most, diluted in a long review: calm on the whole."""
    if s.strong_words + s.exclamations + s.caps_words <= 2 and s.n_words >= 60:
        return NO
    return ABSTAIN


def _passion_calm(s: Signals) -> int:
    if s.exclamations == 0 and s.caps_words == 0 and s.strong_words == 0:
        return NO
    return ABSTAIN


def _passion_mid_rating(s: Signals) -> int:
    rating = s.review.rating
    if rating is not None and 2 <= rating <= 4 and s.exclamations == 0 and s.strong_words <= 1:
        return NO
    return ABSTAIN


# --- balanced ------------------------------------------------------------------------------------------------------


def _balanced_two_sided(s: Signals) -> int:
    return YES if s.two_sided else ABSTAIN


def _balanced_caveat(s: Signals) -> int:
    return YES if s.has_caveat else ABSTAIN


def _balanced_mixed_rating(s: Signals) -> int:
    rating = s.review.rating
    if rating is None:
        return ABSTAIN
    if 2 <= rating <= 4 and s.has_contrast and s.word_set & POSITIVE:
        return YES
    if rating in (1, 5) and not s.has_contrast and not s.has_caveat:
        return NO
    return ABSTAIN


def _balanced_one_sided(s: Signals) -> int:
    return NO if not s.has_contrast and not s.has_caveat else ABSTAIN


def _balanced_no_positive(s: Signals) -> int:
    return NO if not (s.word_set & POSITIVE) or not (s.word_set & NEGATIVE) else ABSTAIN


# --- obnoxious -----------------------------------------------------------------------------------------------------


def _obnoxious_hostile(s: Signals) -> int:
    hostile = s.word_set & HOSTILE
    if hostile and (s.word_set & PEOPLE or len(hostile) >= 2):
        return YES
    return ABSTAIN


def _obnoxious_spam(s: Signals) -> int:
    if SPAM.search(s.lower) or (_URL.search(s.lower) and "amazon." not in s.lower):
        return YES
    return ABSTAIN


def _obnoxious_shouting(s: Signals) -> int:
    words = _RAW_WORD.findall(s.review.text)
    if len(words) >= 10 and sum(1 for w in words if len(w) >= 2 and w.isupper()) / len(words) > 0.5:
        return YES
    return ABSTAIN


def _obnoxious_no_hostility(s: Signals) -> int:
    """No insult, profanity, spam or shouting at all: not obnoxious (short generic reviews included)."""
    hostile = s.word_set & HOSTILE or SPAM.search(s.lower) or _obnoxious_shouting(s) == YES
    return NO if not hostile else ABSTAIN


def _obnoxious_product_talk(s: Signals) -> int:
    return NO if s.detail_kinds and not (s.word_set & HOSTILE) else ABSTAIN


LABELLING_FUNCTIONS: tuple[LabellingFunction, ...] = (
    LabellingFunction("useful_details", "highly_useful", _useful_details, "three kinds of concrete detail, 40+ words"),
    LabellingFunction("useful_length", "highly_useful", _useful_length, "80+ words yes, under 30 words no"),
    LabellingFunction(
        "useful_votes", "highly_useful", _useful_votes, "2+ helpfulness votes: ratio ≥ 0.75 yes, < 0.4 no"
    ),
    LabellingFunction("useful_bare", "highly_useful", _useful_bare, "under 45 words with at most one kind of detail"),
    LabellingFunction("useful_numbers", "highly_useful", _useful_numbers, "a number with a unit or a price, 35+ words"),
    LabellingFunction("passion_exclamations", "passionate", _passion_exclamations, "two or more exclamation marks"),
    LabellingFunction(
        "passion_capitals", "passionate", _passion_capitals, "two words in capitals, or one and an exclamation"
    ),
    LabellingFunction(
        "passion_strong_words",
        "passionate",
        _passion_strong_words,
        "three strong-feeling words, or two and an exclamation",
    ),
    LabellingFunction("passion_mild", "passionate", _passion_mild, "60+ words with at most two marks of feeling: no"),
    LabellingFunction("passion_calm", "passionate", _passion_calm, "no exclamation, capitals or strong word: no"),
    LabellingFunction("passion_mid_rating", "passionate", _passion_mid_rating, "2–4 stars, calm wording: no"),
    LabellingFunction("balanced_two_sided", "balanced", _balanced_two_sided, "contrast word, positive and negative"),
    LabellingFunction("balanced_caveat", "balanced", _balanced_caveat, "a caveat phrase ('only downside', 'I wish')"),
    LabellingFunction("balanced_mixed_rating", "balanced", _balanced_mixed_rating, "2–4 stars with a contrast"),
    LabellingFunction("balanced_one_sided", "balanced", _balanced_one_sided, "no contrast word or caveat: no"),
    LabellingFunction("balanced_no_positive", "balanced", _balanced_no_positive, "lacks a positive or a negative: no"),
    LabellingFunction("obnoxious_hostile", "obnoxious", _obnoxious_hostile, "insults or profanity aimed at people"),
    LabellingFunction("obnoxious_spam", "obnoxious", _obnoxious_spam, "promo codes or links off the store"),
    LabellingFunction("obnoxious_shouting", "obnoxious", _obnoxious_shouting, "most of the text in capitals"),
    LabellingFunction(
        "obnoxious_no_hostility", "obnoxious", _obnoxious_no_hostility, "no insult, profanity, spam or shouting: no"
    ),
    LabellingFunction("obnoxious_product_talk", "obnoxious", _obnoxious_product_talk, "talks about the product: no"),
)


def apply_lfs(reviews: Sequence[Review], lfs: Sequence[LabellingFunction] = LABELLING_FUNCTIONS) -> np.ndarray:
    """The vote matrix: one row per review, one column per LF, values ``YES``, ``NO`` or ``ABSTAIN`` (int8)."""
    out = np.full((len(reviews), len(lfs)), ABSTAIN, dtype=np.int8)
    for i, review in enumerate(reviews):
        signals = Signals(review)
        for j, lf in enumerate(lfs):
            out[i, j] = lf(signals)
    return out


@dataclass(frozen=True)
class WeakLabels:
    """The LFs' vote per intent.

    ``labels[i, t]`` is 1, 0 or -1 (no LF voted, or a tie) for review ``i`` and intent ``INTENTS[t]``;
    ``scores[i, t]`` the share of YES among the votes cast (0.5 where none was cast).
    """

    labels: np.ndarray
    scores: np.ndarray
    votes: np.ndarray
    lfs: tuple[LabellingFunction, ...]


def weak_labels(
    reviews: Sequence[Review],
    lfs: Sequence[LabellingFunction] = LABELLING_FUNCTIONS,
    *,
    votes: np.ndarray | None = None,
) -> WeakLabels:
    """Majority vote of the LFs of each intent; a tie or no vote leaves the review unlabelled for that intent."""
    votes = apply_lfs(reviews, lfs) if votes is None else votes
    labels = np.full((len(reviews), len(INTENTS)), ABSTAIN, dtype=np.int8)
    scores = np.full((len(reviews), len(INTENTS)), 0.5, dtype=np.float32)
    for t, intent in enumerate(INTENTS):
        cols = [j for j, lf in enumerate(lfs) if lf.intent == intent]
        if not cols:
            continue
        v = votes[:, cols]
        yes, no = (v == YES).sum(axis=1), (v == NO).sum(axis=1)
        cast = yes + no
        labels[:, t] = np.where(yes > no, YES, np.where(no > yes, NO, ABSTAIN))
        scores[:, t] = np.where(cast > 0, yes / np.maximum(cast, 1), 0.5)
    return WeakLabels(labels=labels, scores=scores, votes=votes, lfs=tuple(lfs))


def lf_report(weak: WeakLabels, gold: Mapping[int, Mapping[str, int]] | None = None) -> list[dict[str, object]]:
    """Per LF: its intent, polarity, coverage, overlaps and conflicts with the other LFs of its intent, and with
    ``gold`` (row index → {intent: 0/1}) its accuracy where it voted (and how many gold reviews it voted on)."""
    votes = weak.votes
    n = max(len(votes), 1)
    rows = []
    for j, lf in enumerate(weak.lfs):
        others = [k for k, o in enumerate(weak.lfs) if o.intent == lf.intent and k != j]
        voted = votes[:, j] != ABSTAIN
        other_votes = votes[:, others] if others else np.full((len(votes), 0), ABSTAIN)
        overlap = voted & (other_votes != ABSTAIN).any(axis=1)
        conflict = voted & ((other_votes != ABSTAIN) & (other_votes != votes[:, [j]])).any(axis=1)
        polarity = sorted({int(v) for v in votes[voted, j]})
        row: dict[str, object] = {
            "lf": lf.name,
            "intent": lf.intent,
            "description": lf.description,
            "polarity": polarity,
            "coverage": round(float(voted.sum()) / n, 4),
            "overlaps": round(float(overlap.sum()) / n, 4),
            "conflicts": round(float(conflict.sum()) / n, 4),
        }
        if gold is not None:
            hits = [(int(votes[i, j]), labels[lf.intent]) for i, labels in gold.items()
                    if votes[i, j] != ABSTAIN and lf.intent in labels]  # fmt: skip
            row["gold_votes"] = len(hits)
            row["accuracy"] = round(sum(v == g for v, g in hits) / len(hits), 4) if hits else None
        rows.append(row)
    return rows


def lf_names(lfs: Iterable[LabellingFunction] = LABELLING_FUNCTIONS) -> list[str]:
    return [lf.name for lf in lfs]

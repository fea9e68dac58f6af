"""Each labelling function on hand-written reviews, their vote, and the per-LF report."""

from __future__ import annotations

import numpy as np
import pytest

from towersearch.reviews.data import INTENTS, Review
from towersearch.reviews.labelling import (
    ABSTAIN,
    LABELLING_FUNCTIONS,
    NO,
    YES,
    Signals,
    apply_lfs,
    lf_report,
    weak_labels,
)

LF = {lf.name: lf for lf in LABELLING_FUNCTIONS}


def review(text: str, *, title: str = "", rating: float | None = 4, helpful: int | None = None, total=None):
    return Review("r", "p", text, title=title, rating=rating, helpful_votes=helpful, total_votes=total)


def vote(name: str, r: Review) -> int:
    return LF[name](Signals(r))


DETAILED = (
    "The flavor is rich and a little smoky, and the texture stays crunchy even in milk. Each 12 oz bag lasts our "
    "family about a week; at $4 it is cheaper than the brand at our store. The ingredients list is short: oats, "
    "honey and almonds, no artificial colors. My kids eat it for breakfast and I add it to yogurt as a snack. "
    "It arrived well packed and fresh, with a best-by date six months out."
)
SHORT = "Tastes fine. Will buy again."


@pytest.mark.parametrize(
    ("name", "fires", "silent", "polarity"),
    [
        ("useful_details", review(DETAILED), review(SHORT), YES),
        ("useful_numbers", review(DETAILED), review(SHORT), YES),
        ("useful_bare", review(SHORT), review(DETAILED), NO),
        ("passion_exclamations", review("Best cookies ever!! Buy them!"), review(SHORT), YES),
        ("passion_capitals", review("These are SOOO GOOD, my favorite"), review("These are good, USA made"), YES),
        ("passion_strong_words", review("I love these, the best and most delicious snack"), review(SHORT), YES),
        ("passion_calm", review("The tea is good and arrives on time."), review("I love it!"), NO),
        ("passion_mid_rating", review("Good tea, a bit weak.", rating=3), review("Good tea.", rating=5), NO),
        ("balanced_two_sided", review("Great taste but too expensive for the size."), review("Great taste."), YES),
        ("balanced_caveat", review("Lovely jam. My only complaint is the lid."), review("Lovely jam."), YES),
        ("balanced_one_sided", review("Lovely jam, we eat it daily."), review("Lovely, but pricey."), NO),
        ("balanced_no_positive", review("Stale and bland, a waste."), review("Tasty but stale."), NO),
        ("obnoxious_hostile", review("The seller is an idiot and a scammer."), review("The jam is bland."), YES),
        ("obnoxious_spam", review("Use promo code SAVE10 at my shop"), review("Nice jam"), YES),
        (
            "obnoxious_shouting",
            review("THIS IS THE WORST THING I HAVE EVER BOUGHT DO NOT BUY IT EVER"),
            review("This is the worst thing I have ever bought, do not buy it"),
            YES,
        ),
        ("obnoxious_no_hostility", review("Five stars."), review("Stupid company, whatever."), NO),
        ("obnoxious_product_talk", review("The flavor is mild."), review("Whatever, idiots."), NO),
    ],
)
def test_each_labelling_function_fires_on_its_case_and_abstains_otherwise(name, fires, silent, polarity):
    assert vote(name, fires) == polarity
    assert vote(name, silent) == ABSTAIN


def test_length_votes_both_ways():
    assert vote("useful_length", review(DETAILED + " " + DETAILED)) == YES
    assert vote("useful_length", review(SHORT)) == NO
    assert vote("useful_length", review(" ".join(["word"] * 50))) == ABSTAIN


def test_helpfulness_votes_need_enough_voters():
    assert vote("useful_votes", review(SHORT, helpful=4, total=5)) == YES
    assert vote("useful_votes", review(SHORT, helpful=0, total=3)) == NO
    assert vote("useful_votes", review(SHORT, helpful=1, total=1)) == ABSTAIN
    assert vote("useful_votes", review(SHORT)) == ABSTAIN


def test_mixed_rating_and_shipping_only_negatives():
    assert vote("balanced_mixed_rating", review("Good coffee but a bit bitter.", rating=4)) == YES
    assert vote("balanced_mixed_rating", review("Good coffee.", rating=5)) == NO
    # A complaint about shipping alone is not the product's negative.
    assert not Signals(review("Great coffee but shipping was slow and the seller never answered.")).two_sided
    assert Signals(review("Great coffee but the taste is a bit bitter.")).two_sided


def test_vote_matrix_and_weak_labels_follow_the_majority():
    reviews = [review(DETAILED), review(SHORT, rating=5), review("I LOVE these!! Best ever, so delicious!")]
    votes = apply_lfs(reviews)
    assert votes.shape == (3, len(LABELLING_FUNCTIONS)) and votes.dtype == np.int8
    weak = weak_labels(reviews, votes=votes)
    useful, passionate, balanced = (INTENTS.index(i) for i in ("highly_useful", "passionate", "balanced"))
    assert weak.labels[0, useful] == YES and weak.labels[1, useful] == NO
    assert weak.labels[2, passionate] == YES and weak.labels[1, passionate] == NO
    assert weak.labels[1, balanced] == NO
    assert 0.0 <= weak.scores.min() and weak.scores.max() <= 1.0


def test_a_tie_leaves_the_review_unlabelled():
    lfs = [LF["passion_exclamations"], LF["passion_calm"]]
    # Two exclamation marks (yes) cannot meet "no exclamation" (no), so force a tie with a hand-made matrix.
    votes = np.array([[YES, NO]], dtype=np.int8)
    weak = weak_labels([review(SHORT)], lfs, votes=votes)
    assert weak.labels[0, INTENTS.index("passionate")] == ABSTAIN
    assert weak.scores[0, INTENTS.index("passionate")] == pytest.approx(0.5)


def test_report_counts_coverage_conflicts_and_accuracy():
    reviews = [review(DETAILED), review(SHORT), review(SHORT)]
    weak = weak_labels(reviews)
    gold = {0: {"highly_useful": 1}, 1: {"highly_useful": 1}, 2: {"highly_useful": 0}}
    rows = {row["lf"]: row for row in lf_report(weak, gold)}
    length = rows["useful_length"]
    assert length["coverage"] == pytest.approx(2 / 3, abs=1e-4)  # the detailed review has 73 words: no vote
    assert length["gold_votes"] == 2 and length["accuracy"] == pytest.approx(0.5)
    assert rows["useful_details"]["polarity"] == [YES]
    assert all(0.0 <= row["conflicts"] <= row["overlaps"] <= row["coverage"] for row in rows.values())

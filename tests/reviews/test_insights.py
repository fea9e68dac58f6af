"""Per-product review insights: the classified-reviews reader, the insights worked out by hand, the JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CLASSIFIED_CSV, CLASSIFIED_HEADER
from towersearch.errors import ArtifactError, DataError
from towersearch.reviews.data import INTENTS, Review
from towersearch.reviews.insights import (
    CLASSIFIED_COLUMNS,
    INSIGHTS_FILE,
    load_index_insights,
    load_insights,
    load_review_intents,
    product_insights,
    save_insights,
    shorten,
)

HEADER = ",".join(CLASSIFIED_COLUMNS)


def _write(tmp_path: Path, text: str, name: str = "classified.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_header_is_the_one_classify_writes():
    assert HEADER == CLASSIFIED_HEADER


def test_reads_labels_and_probabilities(tmp_path):
    intents = load_review_intents(_write(tmp_path, CLASSIFIED_CSV))
    assert list(intents) == ["r1", "r2", "r3", "r4", "r5", "r9"]
    labels, probs = intents["r2"]
    assert labels == {"highly_useful": 1, "passionate": 0, "obnoxious": 0, "balanced": 1}
    assert probs == {"highly_useful": 0.9, "passionate": 0.3, "obnoxious": 0.05, "balanced": 0.7}
    assert list(labels) == list(probs) == list(INTENTS)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (HEADER.replace(",p_balanced", "") + "\nr1,1,0,0,0,0.9,0.1,0.1\n", "line 1, field 'p_balanced'", "missing"),
        (f"{HEADER}\nr1,1,0,0,0,0.9,0.1,0.1,0.1\nr2,0,2,0,0,0.1,0.1,0.1,0.1\n", "line 3, field 'passionate'", "'2' is"),
        (f"{HEADER}\nr1,1,0,0,0,0.9,0.1,1.5,0.1\n", "line 2, field 'p_obnoxious'", "'1.5' is not a probability"),
        (f"{HEADER}\nr1,1,0,0,0,0.9,0.1,-0.1,0.1\n", "line 2, field 'p_obnoxious'", "'-0.1' is not a probability"),
        (f"{HEADER}\nr1,1,0,0,0,high,0.1,0.1,0.1\n", "line 2, field 'p_highly_useful'", "'high' is not a probability"),
        (f"{HEADER}\nr1,1,0,0,0,nan,0.1,0.1,0.1\n", "line 2, field 'p_highly_useful'", "'nan' is not a probability"),
        (f"{HEADER}\nr1,1,0,0,0,0.9,0.1,0.1,\n", "line 2, field 'p_balanced'", "'' is not a probability"),
        (
            f"{HEADER}\nr1,1,0,0,0,0.9,0.1,0.1,0.1\n\nr1,0,0,0,0,0.9,0.1,0.1,0.1\n",
            "line 4, field 'review_id'",
            "duplicate review_id 'r1' \\(first on line 2\\)",
        ),
        (f"{HEADER}\n,1,0,0,0,0.9,0.1,0.1,0.1\n", "line 2, field 'review_id'", "empty review_id"),
    ],
)
def test_reader_errors_name_file_line_and_field(tmp_path, text, where, message):
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=f"{path}, {where}: {message}"):
        load_review_intents(path)


def test_reader_refuses_an_empty_or_missing_file(tmp_path):
    with pytest.raises(DataError, match="no rows"):
        load_review_intents(_write(tmp_path, HEADER + "\n"))
    with pytest.raises(DataError, match="file not found"):
        load_review_intents(tmp_path / "nope.csv")


def _intents(rows: dict[str, tuple[tuple[int, int, int, int], float]]) -> dict:
    """review_id → (labels, probabilities) from (labels in INTENTS order, p_highly_useful); other probabilities 0.5."""
    out = {}
    for review_id, (labels, p_useful) in rows.items():
        probs = {intent: 0.5 for intent in INTENTS} | {"highly_useful": p_useful}
        out[review_id] = (dict(zip(INTENTS, labels, strict=True)), probs)
    return out


def test_product_insights_worked_by_hand():
    reviews = [
        Review("a1", "p1", "Fresh and creamy.", title="Great", rating=5.0, helpful_votes=3),
        Review("a2", "p1", "Lasts a week after opening.", title="Lasts", rating=4.0, helpful_votes=5),
        Review("a3", "p1", "Odd!!!", rating=2.0),
        Review("a4", "p1", "Fine.", rating=3.0, helpful_votes=9),
        Review("b2", "p2", "Soft.", rating=5.0, helpful_votes=1),
        Review("b1", "p2", "Stale.", rating=1.0, helpful_votes=1),
    ]
    intents = _intents(
        {
            "a1": ((1, 1, 0, 0), 0.9),
            "a2": ((1, 0, 0, 1), 0.9),  # ties with a1 on p_highly_useful; more helpful votes
            "a3": ((0, 0, 1, 0), 0.2),
            "a4": ((0, 0, 0, 1), 0.4),  # the most helpful votes, but a lower p_highly_useful
            "b1": ((0, 1, 0, 0), 0.6),  # ties with b2 on p_highly_useful and votes; the smaller id
            "b2": ((1, 0, 0, 0), 0.6),
            "zz": ((1, 1, 1, 1), 1.0),  # no such review: ignored, counted
        }
    )
    counts: dict[str, int] = {}
    insights = product_insights(reviews, intents, counts=counts)
    assert list(insights) == ["p1", "p2"]
    assert insights["p1"] == {
        "reviews": 4,
        "intent_share": {"highly_useful": 0.5, "passionate": 0.25, "obnoxious": 0.25, "balanced": 0.5},
        "most_useful": {
            "review_id": "a2",
            "title": "Lasts",
            "text": "Lasts a week after opening.",
            "rating": 4.0,
            "p_highly_useful": 0.9,
        },
    }
    assert insights["p2"]["intent_share"] == {
        "highly_useful": 0.5,
        "passionate": 0.5,
        "obnoxious": 0.0,
        "balanced": 0.0,
    }
    assert insights["p2"]["most_useful"]["review_id"] == "b1"
    assert counts == {"reviews": 6, "classified": 7, "unmatched": 1, "products": 2}


def test_shares_are_rounded_to_four_places():
    reviews = [Review(f"r{i}", "p1", "Text.") for i in range(3)]
    intents = _intents({"r0": ((1, 0, 0, 0), 0.123456), "r1": ((0, 0, 0, 0), 0.1), "r2": ((0, 0, 0, 0), 0.1)})
    insights = product_insights(reviews, intents)["p1"]
    assert insights["intent_share"]["highly_useful"] == 0.3333
    assert insights["most_useful"]["p_highly_useful"] == 0.1235


def test_reviews_without_a_classification_are_an_error():
    reviews = [Review("r1", "p1", "Text."), Review("r2", "p1", "Text."), Review("r3", "p2", "Text.")]
    with pytest.raises(DataError, match=r"2 of 3 reviews have no classification row \(for example 'r2'\)"):
        product_insights(reviews, _intents({"r1": ((1, 0, 0, 0), 0.9)}))


def test_long_review_text_is_cut_at_a_word():
    text = " ".join(f"word{i}" for i in range(200))  # 1,289 characters
    short = shorten(text)
    assert len(short) <= 600 and short.endswith("…")
    assert text.startswith(short[:-1]) and text[len(short) - 1] == " "  # whole words only
    assert shorten("short text") == "short text"
    assert shorten("x" * 601) == "x" * 599 + "…"  # one long word: cut inside it
    exact = "a" * 595 + " bcde"  # 600 characters: kept as it is
    assert shorten(exact) == exact and shorten(exact + "f") == "a" * 595 + "…"
    review = Review("r1", "p1", text)
    insights = product_insights([review], _intents({"r1": ((1, 0, 0, 0), 0.9)}))
    assert insights["p1"]["most_useful"]["text"] == short


def test_save_and_load_round_trip(tmp_path):
    insights = product_insights([Review("r1", "p1", "Text.", rating=4.0)], _intents({"r1": ((1, 0, 0, 1), 0.8)}))
    path = tmp_path / "out" / INSIGHTS_FILE
    save_insights(path, insights)
    assert load_insights(path) == insights
    assert not [p for p in path.parent.iterdir() if p.name != INSIGHTS_FILE], "temporary file left behind"
    assert load_index_insights(path.parent, {}) == insights
    assert load_index_insights(tmp_path, {}) is None  # an index built without reviews
    with pytest.raises(ArtifactError, match=f"index {tmp_path} is incomplete: {INSIGHTS_FILE} is missing"):
        load_index_insights(tmp_path, {"review_insights": {"path": INSIGHTS_FILE, "products": 1}})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{broken", "not valid JSON"),
        ('{"products": {}}', "not a review insights file"),
        (
            json.dumps({"format": "towersearch-review-insights/1", "products": {"p1": {"reviews": 1}}}),
            "field 'p1': an entry needs reviews, intent_share and most_useful",
        ),
    ],
)
def test_load_refuses_a_bad_file(tmp_path, content, message):
    path = _write(tmp_path, content, INSIGHTS_FILE)
    with pytest.raises(DataError, match=message):
        load_insights(path)
    with pytest.raises(ArtifactError, match=message):
        load_index_insights(tmp_path, {})

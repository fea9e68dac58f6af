"""The reviews format and the intent-labels reader: validation, errors naming file/line/field, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from towersearch.errors import DataError
from towersearch.reviews.data import (
    INTENTS,
    REVIEW_COLUMNS,
    Review,
    load_intent_labels,
    load_reviews,
    parse_review,
    write_reviews,
)

REVIEWS_CSV = """review_id,product_id,title,text,rating,helpful_votes,total_votes,created_at
r1,p1,Great taffy!,"Soft and <b>chewy</b>.<br /><br />Would   buy again.",5,3,4,2011-04-27
r2,p1,,Too sweet for me.,2,,,
r3,p2,Not as advertised,"Arrived crushed &amp; stale.",1,0,0,2012-03-07T10:00:00Z
"""

LABELS_CSV = """review_id,highly_useful,passionate,obnoxious,balanced,useful
r1,1,1,0,0,1
r2,0,0,0,1,1
r3,0,0,0,0,0
"""

HEADER = REVIEWS_CSV.splitlines()[0]


def _write(tmp_path: Path, text: str, name: str = "reviews.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _with_row(tmp_path: Path, row: str) -> Path:
    """The valid file plus one more row, on line 5."""
    return _write(tmp_path, REVIEWS_CSV + row + "\n")


def test_load_reviews_reads_every_field_and_strips_html(tmp_path):
    reviews, report = load_reviews(_write(tmp_path, REVIEWS_CSV))
    assert report.rows == 3 and report.loaded == 3 and not report.skipped
    assert reviews[0] == Review(
        review_id="r1",
        product_id="p1",
        text="Soft and chewy . Would buy again.",
        title="Great taffy!",
        rating=5.0,
        helpful_votes=3,
        total_votes=4,
        created_at="2011-04-27",
    )
    assert reviews[1] == Review("r2", "p1", "Too sweet for me.", rating=2.0)
    assert reviews[2].text == "Arrived crushed & stale." and reviews[2].created_at == "2012-03-07T10:00:00Z"
    assert (reviews[2].helpful_votes, reviews[2].total_votes) == (0, 0)


def test_full_text_joins_title_and_text():
    assert Review("r", "p", "Chewy.", title="Great taffy").full_text == "Great taffy. Chewy."
    assert Review("r", "p", "Chewy.", title="Great taffy!").full_text == "Great taffy! Chewy."
    assert Review("r", "p", "Chewy.", title="Really?").full_text == "Really? Chewy."
    assert Review("r", "p", "Chewy.", title="Good.").full_text == "Good. Chewy."
    assert Review("r", "p", "Chewy.").full_text == "Chewy."
    assert Review("r", "p", "Chewy.", title="  ").full_text == "Chewy."


def test_missing_required_column(tmp_path):
    path = _write(tmp_path, "review_id,title,text\nr1,t,x\n")
    with pytest.raises(DataError, match=r"reviews\.csv, line 1, field 'product_id': missing required column"):
        load_reviews(path)


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (",p1,t,text,5,,,", "review_id", "empty review_id"),
        ("r9,,t,text,5,,,", "product_id", "empty product_id"),
        ("r9,p1,t,,5,,,", "text", "empty text"),
        ("r9,p1,t,<br /> <br/>,5,,,", "text", "empty text"),
        ("r9,p1,t,text,6,,,", "rating", "'6' is not a number from 1 to 5"),
        ("r9,p1,t,text,0.5,,,", "rating", "'0.5' is not a number from 1 to 5"),
        ("r9,p1,t,text,great,,,", "rating", "'great' is not a number from 1 to 5"),
        ("r9,p1,t,text,nan,,,", "rating", "'nan' is not a number from 1 to 5"),
        ("r9,p1,t,text,5,-1,3,", "helpful_votes", r"'-1' is not a whole number >= 0"),
        ("r9,p1,t,text,5,1,2.5,", "total_votes", r"'2\.5' is not a whole number >= 0"),
        ("r9,p1,t,text,5,4,3,", "helpful_votes", "4 helpful votes out of 3 votes: helpful votes cannot exceed"),
        ("r9,p1,t,text,5,,,yesterday", "created_at", "'yesterday' is not an ISO 8601 date"),
        ("r9,p1,t,text,5,,,2012-13-01", "created_at", "'2012-13-01' is not an ISO 8601 date"),
        ("r1,p2,t,text,5,,,", "review_id", r"duplicate review_id 'r1' \(first on line 2\)"),
    ],
)
def test_bad_row_names_file_line_and_field(tmp_path, row, field, message):
    path = _with_row(tmp_path, row)
    with pytest.raises(DataError, match=rf"reviews\.csv, line 5, field '{field}': {message}") as info:
        load_reviews(path)
    assert info.value.line == 5 and info.value.field == field


def test_skip_bad_rows_skips_and_counts_bad_rows(tmp_path):
    rows = ["r9,p1,t,text,9,,,", "r1,p2,t,dupe,5,,,", "r8,p3,t,,5,,,", "r7,p3,t,fine,4,,,"]
    path = _write(tmp_path, REVIEWS_CSV + "\n".join(rows) + "\n")
    reviews, report = load_reviews(path, skip_bad_rows=True)
    assert [r.review_id for r in reviews] == ["r1", "r2", "r3", "r7"]
    assert report.rows == 7 and report.loaded == 4
    assert report.skipped == {"bad_rating": 1, "duplicate_review_id": 1, "empty_text": 1}
    assert "line 5, field 'rating'" in report.examples[0]
    with pytest.raises(DataError, match="no valid reviews left"):
        load_reviews(_write(tmp_path, HEADER + "\nr1,p1,t,,5,,,\n", "bad.csv"), skip_bad_rows=True)


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"empty\.csv: no rows"):
        load_reviews(_write(tmp_path, HEADER + "\n", "empty.csv"))
    with pytest.raises(DataError, match=r"missing\.csv: file not found"):
        load_reviews(tmp_path / "missing.csv")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_write_and_load_round_trip(tmp_path, suffix):
    reviews, _ = load_reviews(_write(tmp_path, REVIEWS_CSV))
    reviews.append(Review("r4", "p3", 'Quotes "and", commas\nand a new line', title="Meh", rating=3.5))
    path = tmp_path / f"out{suffix}"
    assert write_reviews(path, reviews) == 4
    again, report = load_reviews(path)
    assert report.loaded == 4
    # Whitespace in text is collapsed on load, so the new line reads back as a space.
    assert again[:3] == reviews[:3]
    assert again[3] == Review("r4", "p3", 'Quotes "and", commas and a new line', title="Meh", rating=3.5)
    write_reviews(path, again)
    assert load_reviews(path)[0] == again


def test_jsonl_with_typed_values(tmp_path):
    rows = [
        {"review_id": 1, "product_id": "p1", "text": "ok", "rating": 4, "helpful_votes": 1, "total_votes": 2},
        {"review_id": 2, "product_id": "p1", "text": "ok", "rating": None, "helpful_votes": None},
    ]
    path = _write(tmp_path, "\n".join(json.dumps(r) for r in rows) + "\n", "reviews.jsonl")
    reviews, _ = load_reviews(path)
    assert reviews == [Review("1", "p1", "ok", rating=4.0, helpful_votes=1, total_votes=2), Review("2", "p1", "ok")]


def test_parse_review_and_columns():
    assert REVIEW_COLUMNS[:3] == ("review_id", "product_id", "text")
    assert parse_review({"review_id": "r", "product_id": "p", "text": " a<br/>b "}) == Review("r", "p", "a b")
    with pytest.raises(DataError, match=r"line 7, field 'rating'") as info:
        parse_review({"review_id": "r", "product_id": "p", "text": "t", "rating": "x"}, line=7)
    assert info.value.reason == "bad_rating"


def test_load_intent_labels(tmp_path):
    labels = load_intent_labels(_write(tmp_path, LABELS_CSV, "labels.csv"))
    assert list(labels) == ["r1", "r2", "r3"]
    assert labels["r1"] == {"highly_useful": 1, "passionate": 1, "obnoxious": 0, "balanced": 0, "useful": 1}
    assert labels["r2"]["balanced"] == 1 and labels["r3"]["useful"] == 0
    # Only some intents present: those are returned.
    labels = load_intent_labels(_write(tmp_path, "review_id,passionate\nr1,1\nr2,0\n", "some.csv"))
    assert labels == {"r1": {"passionate": 1}, "r2": {"passionate": 0}}
    assert set(INTENTS) == {"highly_useful", "passionate", "obnoxious", "balanced"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("highly_useful,passionate\n1,0\n", r"labels\.csv, line 1, field 'review_id': missing required column"),
        ("review_id,useful\nr1,1\n", r"labels\.csv, line 1: no intent column: a labels file needs at least one of"),
        ("review_id,passionate,useful\nr1,1,0\nr2,yes,1\n", r"line 3, field 'passionate': 'yes' is not a label"),
        ("review_id,passionate,useful\nr1,1,2\n", r"line 2, field 'useful': '2' is not a label: use 0 or 1"),
        ("review_id,passionate\nr1,\n", r"line 2, field 'passionate': '' is not a label"),
        ("review_id,passionate\n,1\n", r"line 2, field 'review_id': empty review_id"),
        ("review_id,passionate\nr1,1\nr1,0\n", r"line 3, field 'review_id': duplicate review_id 'r1' \(first on"),
        ("review_id,passionate\n", r"labels\.csv: no rows"),
    ],
)
def test_intent_label_errors(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        load_intent_labels(_write(tmp_path, text, "labels.csv"))

"""The Amazon Fine Food Reviews importer: the column mapping, skipped rows, errors, the CLI and the real sample."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import shared_data
from towersearch.cli import app
from towersearch.data.importers.amazon_reviews import import_amazon_reviews
from towersearch.errors import DataError
from towersearch.reviews.data import Review, load_intent_labels, load_reviews

HEADER = "Id,ProductId,UserId,ProfileName,HelpfulnessNumerator,HelpfulnessDenominator,Score,Time,Summary,Text"

# Line 4 has an empty Text (blanks only) and line 5 more helpful votes than votes: both are skipped.
REVIEWS = (
    "\n".join(
        [
            HEADER,
            '1,B001E4KFG0,A3SGXH7AUHU8GW,delmartian,1,1,5,1303862400,Good Quality Dog Food,"I have bought several of '
            "the Vitality canned dog food products.<br /><br />My Labrador is finicky, and she appreciates this "
            'product better than most."',
            "2,B00813GRG4,A1D87F6ZCVE5NK,dll pa,0,0,1,1346976000,Not as Advertised,Product arrived labeled as Jumbo "
            "Salted Peanuts...the peanuts were actually small sized unsalted.",
            '3,B001E4KFG0,A1UQRSCLF8GW1T,"Michael D. Bigham ""M. Wassir""",0,0,4,1219017600,Delight says it all!,   ',
            "4,B000UA0QIQ,A395BORC6FGVXV,Karl,3,2,2,1307923200,Cough Medicine,If you are looking for the secret.",
            '5,B006K2ZZ7K,A1UQRSCLF8GW1T,"Michael ""M""",2,3,5,1350777600,Great taffy,Great taffy at a great price.',
            '6,B001E4KFG0,A3SGXH7AUHU8GW,Ann,0,1,3,1350777600,"Fine, I guess","Line one\nline two &amp; more"',
        ]
    )
    + "\n"
)


def _write(folder: Path, text: str = REVIEWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Reviews.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    return path


def test_import_maps_columns_and_skips_empty_text(tmp_path):
    src = _write(tmp_path / "src")
    summary = import_amazon_reviews(src, tmp_path / "out")
    out = tmp_path / "out" / "reviews.csv"
    assert summary == {
        "rows": 6,
        "reviews": 4,
        "products": 3,
        "skipped": {"empty_text": 1, "helpful_above_total": 1},
        "path": str(out),
    }
    reviews, report = load_reviews(out)
    assert report.loaded == 4
    assert reviews[0] == Review(
        review_id="1",
        product_id="B001E4KFG0",
        title="Good Quality Dog Food",
        text="I have bought several of the Vitality canned dog food products. My Labrador is finicky, and she "
        "appreciates this product better than most.",
        rating=5.0,
        helpful_votes=1,
        total_votes=1,
        created_at="2011-04-27",
    )
    assert [(r.review_id, r.created_at, r.rating) for r in reviews[1:]] == [
        ("2", "2012-09-07", 1.0),
        ("5", "2012-10-21", 5.0),
        ("6", "2012-10-21", 3.0),
    ]
    assert (reviews[3].title, reviews[3].text) == ("Fine, I guess", "Line one line two & more")
    # The folder works as well as the file, and the BOM does not reach the header.
    assert import_amazon_reviews(tmp_path / "src", tmp_path / "again") == {
        **summary,
        "path": str(tmp_path / "again" / "reviews.csv"),
    }


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        (",B1,U,P,0,0,5,1303862400,S,text", "Id", "empty Id"),
        ("9,,U,P,0,0,5,1303862400,S,text", "ProductId", "empty ProductId"),
        ("9,B1,U,P,0,0,7,1303862400,S,text", "Score", "'7' is not a number from 1 to 5"),
        ("9,B1,U,P,x,0,5,1303862400,S,text", "HelpfulnessNumerator", "'x' is not a whole number >= 0"),
        ("9,B1,U,P,0,-2,5,1303862400,S,text", "HelpfulnessDenominator", "'-2' is not a whole number >= 0"),
        ("9,B1,U,P,0,0,5,soon,S,text", "Time", "'soon' is not a time in Unix seconds"),
        ("2,B1,U,P,0,0,5,1303862400,S,text", "Id", r"duplicate Id '2' \(first on line 3\)"),
    ],
)
def test_bad_rows_name_file_line_and_source_column(tmp_path, row, field, message):
    src = _write(tmp_path / "src", REVIEWS + row + "\n")
    with pytest.raises(DataError, match=rf"Reviews\.csv, line 9, field '{field}': {message}"):
        import_amazon_reviews(src, tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing is written when the source is bad"


def test_missing_source_and_columns(tmp_path):
    (tmp_path / "nowhere").mkdir()
    with pytest.raises(DataError, match=r"nowhere.Reviews\.csv: file not found"):
        import_amazon_reviews(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(DataError, match=r"missing\.csv: file not found"):
        import_amazon_reviews(tmp_path / "missing.csv", tmp_path / "out")
    src = _write(tmp_path / "src", HEADER.replace(",Score", "") + "\n")
    with pytest.raises(DataError, match=r"line 1, field 'Score': missing required column"):
        import_amazon_reviews(src, tmp_path / "out")
    src = _write(tmp_path / "empty", HEADER + "\n")
    with pytest.raises(DataError, match="no reviews to import"):
        import_amazon_reviews(src, tmp_path / "out")


def test_cli(tmp_path):
    src = _write(tmp_path / "src")
    result = CliRunner().invoke(app, ["import", "amazon-reviews", str(src.parent), str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["reviews"] == 4 and summary["skipped"] == {"empty_text": 1, "helpful_above_total": 1}
    result = CliRunner().invoke(app, ["import", "amazon-reviews", str(src), str(tmp_path / "table")])
    assert result.exit_code == 0, result.output
    assert "products" in result.stdout and (tmp_path / "table" / "reviews.csv").is_file()
    result = CliRunner().invoke(app, ["import", "amazon-reviews", str(tmp_path / "missing"), str(tmp_path / "x")])
    assert result.exit_code != 0


def test_real_sample_holds_every_labelled_review(tmp_path):
    src = shared_data("amazon-fine-food-reviews")
    summary = import_amazon_reviews(src, tmp_path)
    assert summary["rows"] == 1000 and summary["reviews"] == 1000 and summary["products"] == 207
    assert summary["skipped"] == {}
    reviews, report = load_reviews(tmp_path / "reviews.csv")
    assert report.loaded == 1000 and not report.skipped
    assert not any("<br" in r.text for r in reviews)
    with (src / "Reviews.csv").open(encoding="utf-8-sig", newline="") as fh:
        assert [r.review_id for r in reviews] == [row["Id"] for row in csv.DictReader(fh)]
    labels = load_intent_labels(shared_data("review-intents") / "labels.csv")
    assert len(labels) == 100
    assert set(labels) <= {r.review_id for r in reviews}
    assert all(
        set(row) == {"highly_useful", "passionate", "obnoxious", "balanced", "useful"} for row in labels.values()
    )

"""The Home Depot importer: ratings to events and grades, the term split, errors, and the shared real data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import shared_data
from towersearch.cli import app
from towersearch.data import load_catalog, load_judgements, load_log, normalize_query
from towersearch.data.importers.homedepot import events_for, import_homedepot
from towersearch.errors import ConfigError, DataError

PRODUCTS = """product_uid,product_title
100001,Simpson Strong-Tie 12-Gauge Angle
100002,BEHR Premium Textured DeckOver 1-gal. Coating
100003,Delta Vero Shower Faucet Trim Kit in Chrome
100004,Whirlpool Over the Range Microwave
100005,Paslode 3 in. 30\u00e5\u00a1 Framing Nails
"""

# "Angle Bracket", "angle  bracket" and "ANGLE BRACKET " are one normalised term, which rates 100003 twice (1, then
# 2: the higher rating is kept); "deck over" rates 100002 and 100004 in that order.
TRAIN = """id,product_uid,product_title,search_term,relevance
1,100001,Simpson Strong-Tie 12-Gauge Angle,Angle Bracket,3
2,100002,BEHR Premium Textured DeckOver 1-gal. Coating,deck over,2.67
3,100003,Delta Vero Shower Faucet Trim Kit in Chrome,Angle Bracket,1
4,100004,Whirlpool Over the Range Microwave,deck over,2.33
5,100005,Paslode 3 in. 30\u00e5\u00a1 Framing Nails,framing nails,2.25
6,100003,Delta Vero Shower Faucet Trim Kit in Chrome,shower trim,1.67
7,100004,Whirlpool Over the Range Microwave,angle  bracket,2.5
8,100001,Simpson Strong-Tie 12-Gauge Angle,otr microwave,1.33
9,100004,Whirlpool Over the Range Microwave,otr microwave,3
10,100003,Delta Vero Shower Faucet Trim Kit in Chrome,ANGLE BRACKET ,2
"""
TERMS = {"angle bracket", "deck over", "framing nails", "shower trim", "otr microwave"}


def _write(folder: Path, products: str = PRODUCTS, train: str = TRAIN, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "products.csv").write_bytes(products.replace("\n", "\r\n").encode(encoding))
    (folder / "train.csv").write_bytes(train.replace("\n", "\r\n").encode(encoding))
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _events_by_pair(path: Path) -> dict[tuple[str, str], list[str]]:
    pairs: dict[tuple[str, str], list[str]] = {}
    for row in _rows(path):
        pairs.setdefault((row["query"], row["product_id"]), []).append(row["event"])
    return pairs


def test_events_for_each_threshold_with_two_decimal_ratings():
    assert events_for(1.0) == ("impression",)
    assert events_for(2.25) == ("impression",)
    assert events_for(2.33) == ("impression", "click")
    assert events_for(2.5) == ("impression", "click")
    assert events_for(2.67) == ("impression", "click", "add_to_cart")
    assert events_for(2.75) == ("impression", "click", "add_to_cart")
    assert events_for(3.0) == ("impression", "click", "add_to_cart", "purchase")
    # Thresholds given as thirds still match the two-decimal ratings, and nothing just below them does.
    assert events_for(2.33, click_at=7 / 3, cart_at=8 / 3) == ("impression", "click")
    assert events_for(2.67, click_at=7 / 3, cart_at=8 / 3) == ("impression", "click", "add_to_cart")
    assert events_for(2.32, click_at=7 / 3) == ("impression",)
    assert events_for(2.5, click_at=2.0, cart_at=2.5, purchase_at=2.5) == (
        "impression",
        "click",
        "add_to_cart",
        "purchase",
    )


def test_import_exact_log_and_judgements(tmp_path):
    src = _write(tmp_path / "src")
    # No held-out terms: every rating is in the log.
    summary = import_homedepot(src, tmp_path / "all", eval_queries=0)
    assert summary["products"] == 5 and summary["ratings"] == 10 and summary["terms"] == 5
    assert summary["log_queries"] == 5 and summary["eval_queries"] == 0 and summary["judgements"] == 0
    assert summary["skipped"] == {"duplicate_pair": 1}
    assert summary["log_events"] == {"impression": 9, "click": 5, "add_to_cart": 3, "purchase": 2}
    rows = _rows(tmp_path / "all" / "log.csv")
    got = [(r["query"], r["product_id"], r["event"], r["position"], r["session_id"]) for r in rows]
    assert got == [
        ("angle bracket", "100001", "impression", "1", "hd-0"),
        ("angle bracket", "100001", "click", "1", "hd-0"),
        ("angle bracket", "100001", "add_to_cart", "1", "hd-0"),
        ("angle bracket", "100001", "purchase", "1", "hd-0"),
        ("angle bracket", "100003", "impression", "2", "hd-0"),
        ("angle bracket", "100004", "impression", "3", "hd-0"),
        ("angle bracket", "100004", "click", "3", "hd-0"),
        ("deck over", "100002", "impression", "1", "hd-1"),
        ("deck over", "100002", "click", "1", "hd-1"),
        ("deck over", "100002", "add_to_cart", "1", "hd-1"),
        ("deck over", "100004", "impression", "2", "hd-1"),
        ("deck over", "100004", "click", "2", "hd-1"),
        ("framing nails", "100005", "impression", "1", "hd-2"),
        ("shower trim", "100003", "impression", "1", "hd-3"),
        ("otr microwave", "100001", "impression", "1", "hd-4"),
        ("otr microwave", "100004", "impression", "2", "hd-4"),
        ("otr microwave", "100004", "click", "2", "hd-4"),
        ("otr microwave", "100004", "add_to_cart", "2", "hd-4"),
        ("otr microwave", "100004", "purchase", "2", "hd-4"),
    ]
    catalog = _rows(tmp_path / "all" / "catalog.csv")
    assert [(r["product_id"], r["name"]) for r in catalog][-1] == (
        "100005",
        "Paslode 3 in. 30\u00e5\u00a1 Framing Nails",
    )

    # Every term held out: the judgements carry every rating as relevance - 1.
    summary = import_homedepot(src, tmp_path / "eval", eval_queries=5)
    assert summary["log_queries"] == 0 and summary["judgements"] == 9
    assert _rows(tmp_path / "eval" / "log.csv") == []
    grades = [(r["query"], r["product_id"], r["grade"]) for r in _rows(tmp_path / "eval" / "judgements.csv")]
    assert grades == [
        ("angle bracket", "100001", "2"),
        ("angle bracket", "100003", "1"),
        ("angle bracket", "100004", "1.5"),
        ("deck over", "100002", "1.67"),
        ("deck over", "100004", "1.33"),
        ("framing nails", "100005", "1.25"),
        ("shower trim", "100003", "0.67"),
        ("otr microwave", "100001", "0.33"),
        ("otr microwave", "100004", "2"),
    ]
    judged, _ = load_judgements(tmp_path / "eval" / "judgements.csv")
    assert judged["deck over"]["100004"] >= 1.33  # relevant with --relevant-grade 1.33, like the clicks


def test_html_character_references_in_titles_are_decoded(tmp_path):
    products = PRODUCTS.replace("Whirlpool Over", "Briggs &amp; Stratton&#39;s &quot;Over&quot;")
    import_homedepot(_write(tmp_path / "src", products=products), tmp_path / "out", eval_queries=0)
    names = {p.product_id: p.name for p in load_catalog(tmp_path / "out" / "catalog.csv")}
    assert names["100004"] == 'Briggs & Stratton\'s "Over" the Range Microwave'


def test_thresholds_are_options(tmp_path):
    src = _write(tmp_path / "src")
    summary = import_homedepot(src, tmp_path / "out", eval_queries=0, click_at=2.0, cart_at=2.5, purchase_at=2.67)
    assert summary["log_events"] == {"impression": 9, "click": 7, "add_to_cart": 4, "purchase": 3}
    pairs = _events_by_pair(tmp_path / "out" / "log.csv")
    assert pairs[("angle bracket", "100004")] == ["impression", "click", "add_to_cart"]
    assert pairs[("deck over", "100002")] == ["impression", "click", "add_to_cart", "purchase"]
    assert pairs[("framing nails", "100005")] == ["impression", "click"]
    with pytest.raises(ConfigError, match="click_at <= cart_at <= purchase_at"):
        import_homedepot(src, tmp_path / "bad", click_at=2.8)
    with pytest.raises(ConfigError, match="more than the 5 distinct search terms"):
        import_homedepot(src, tmp_path / "bad", eval_queries=6)


def test_split_is_seeded_and_leaks_nothing(tmp_path):
    src = _write(tmp_path / "src")
    for seed in range(6):
        out = tmp_path / f"s{seed}"
        summary = import_homedepot(src, out, eval_queries=2, seed=seed)
        assert summary["eval_queries"] == 2 and summary["log_queries"] == 3 and summary["seed"] == seed
        logged = {normalize_query(r["query"]) for r in _rows(out / "log.csv")}
        held_out = {normalize_query(r["query"]) for r in _rows(out / "judgements.csv")}
        assert len(held_out) == 2 and not logged & held_out and logged | held_out == TERMS
        again = import_homedepot(src, tmp_path / f"again{seed}", eval_queries=2, seed=seed)
        assert again == summary
        assert (out / "log.csv").read_bytes() == (tmp_path / f"again{seed}" / "log.csv").read_bytes()


def test_latin1_files_are_read(tmp_path):
    src = _write(tmp_path / "src", PRODUCTS.replace("\u00e5\u00a1", "\u00b0"), encoding="latin-1")
    import_homedepot(src, tmp_path / "out", eval_queries=0)
    names = [r["name"] for r in _rows(tmp_path / "out" / "catalog.csv")]
    assert names[-1] == "Paslode 3 in. 30\u00b0 Framing Nails"


@pytest.mark.parametrize("value", ["high", "", "0.5", "3.5", "nan"])
def test_bad_relevance_names_file_line_and_field(tmp_path, value):
    src = _write(tmp_path / "src", train=TRAIN.replace("shower trim,1.67", f"shower trim,{value}"))
    with pytest.raises(
        DataError, match=r"train\.csv, line 7, field 'relevance': relevance .* is not a number from 1 to 3"
    ):
        import_homedepot(src, tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing is written when a file is bad"


def test_other_errors(tmp_path):
    src = _write(tmp_path / "cols", train=TRAIN.replace("relevance", "score"))
    with pytest.raises(DataError, match=r"train\.csv, line 1, field 'relevance': missing required column"):
        import_homedepot(src, tmp_path / "out")
    src = _write(tmp_path / "pcols", products=PRODUCTS.replace("product_title", "title"))
    with pytest.raises(DataError, match=r"products\.csv, line 1, field 'product_title': missing required column"):
        import_homedepot(src, tmp_path / "out")
    src = _write(tmp_path / "unknown", train=TRAIN.replace("8,100001", "8,999999"))
    with pytest.raises(DataError, match=r"train\.csv, line 9, field 'product_uid': unknown product_uid '999999'"):
        import_homedepot(src, tmp_path / "out")
    src = _write(tmp_path / "dupe", products=PRODUCTS + "100001,Again\n")
    with pytest.raises(DataError, match=r"products\.csv, line 7, field 'product_uid': duplicate product_uid"):
        import_homedepot(src, tmp_path / "out")
    with pytest.raises(DataError, match=r"products\.csv: file not found"):
        import_homedepot(tmp_path / "missing", tmp_path / "out")


def test_cli(tmp_path):
    src = _write(tmp_path / "src")
    result = CliRunner().invoke(
        app, ["import", "homedepot", str(src), str(tmp_path / "out"), "--eval-queries", "1", "--seed", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["eval_queries"] == 1 and summary["log_queries"] == 4 and summary["seed"] == 3
    result = CliRunner().invoke(app, ["import", "homedepot", str(src), str(tmp_path / "out"), "--click-at", "2.9"])
    assert result.exit_code != 0


def test_real_data(tmp_path):
    src = shared_data("homedepot")
    summary = import_homedepot(src, tmp_path)
    assert summary["products"] == 54_667 and summary["ratings"] == 61_547
    assert summary["eval_queries"] == 2000
    with (src / "train.csv").open(encoding="utf-8", newline="") as fh:
        terms = {normalize_query(r["search_term"]) for r in csv.DictReader(fh)} - {""}
    assert summary["log_queries"] + summary["eval_queries"] == len(terms) == summary["terms"]
    catalog = load_catalog(tmp_path / "catalog.csv")
    assert len(catalog) == 54_667
    assert not [p.name for p in catalog if "&amp;" in p.name or "&#39;" in p.name or "&quot;" in p.name]
    assert sum("&" in p.name for p in catalog) > 500  # "Briggs & Stratton", decoded
    ids = set(catalog.ids)
    events, _ = load_log(tmp_path / "log.csv", product_ids=ids)
    judged, _ = load_judgements(tmp_path / "judgements.csv", product_ids=ids)
    logged = {e.query for e in events}
    assert len(logged) == summary["log_queries"] and len(judged) == 2000
    assert not logged & set(judged), "no held-out term may appear in the log"
    assert sum(summary["log_events"].values()) == len(events)
    assert (
        summary["log_events"]["impression"] + summary["judgements"] + summary["skipped"].get("duplicate_pair", 0)
        == summary["ratings"]
    )
    assert all(0 <= g <= 2 for grades in judged.values() for g in grades.values())

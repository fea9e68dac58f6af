import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from towersearch.data import load_catalog, load_judgements, load_log, normalize_query, write_catalog
from towersearch.data.catalog import parse_attributes
from towersearch.data.io import atomic_dir, iter_csv_records, open_csv, write_table
from towersearch.data.schema import collapse_whitespace, strip_html
from towersearch.errors import DataError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_catalog_loads_fields_and_keeps_unknown_columns(tiny_store):
    catalog = load_catalog(tiny_store["catalog"])
    assert len(catalog) == 6
    milk = catalog["p1"]
    assert milk.brand == "GreenWise" and milk.department == "dairy eggs"
    assert milk.attributes == {"dietary": "organic, kosher", "origin": "US"}
    assert catalog["p4"].attributes["flavor"] == "sea salt"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".tsv"])
def test_catalog_round_trips_through_every_format(tiny_store, tmp_path, suffix):
    catalog = load_catalog(tiny_store["catalog"])
    path = tmp_path / f"copy{suffix}"
    assert write_catalog(catalog.products, path) == 6
    again = load_catalog(path)
    assert again.products == catalog.products


def test_catalog_attributes_as_json_object(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"product_id": 1, "name": "Milk", "attributes": {"dietary": "organic"}}) + "\n")
    assert load_catalog(path)["1"].attributes == {"dietary": "organic"}


def test_parse_attributes_rejects_garbage():
    with pytest.raises(ValueError, match="key=value"):
        parse_attributes("organic")
    assert parse_attributes('{"a": 1}') == {"a": "1"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name,brand\nMilk,X\n", r"c\.csv, line 1, field 'product_id': missing required column\(s\) product_id"),
        (
            "product_id,name\np1,Milk\np1,Cream\n",
            r"line 3, field 'product_id': duplicate product_id 'p1' \(first on line 2\)",
        ),
        ("product_id,name\np1,\n", r"line 2, field 'name': empty name"),
        ("product_id,name\n,Milk\n", r"line 2, field 'product_id': empty product_id"),
        ("product_id,name,attributes\np1,Milk,organic\n", r"line 2, field 'attributes': attributes must be"),
        ("product_id,name\np1,Milk,extra\n", r"line 2: expected 2 values"),
        ("", r"empty file"),
    ],
)
def test_catalog_errors_name_file_line_and_field(tmp_path, text, match):
    path = write(tmp_path, "c.csv", text)
    with pytest.raises(DataError, match=match):
        load_catalog(path)


def test_catalog_unreadable_encoding_names_the_line(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("product_id,name\np1,Milk\np2,Cr\xe8me\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"c\.csv, line 3: cannot decode byte 0xe8 as UTF-8"):
        load_catalog(path)


def test_unknown_file_type_is_named(tmp_path):
    path = write(tmp_path, "c.xlsx", "x")
    with pytest.raises(DataError, match=r"unknown file type '\.xlsx'; allowed: .*\.csv"):
        load_catalog(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_catalog(tmp_path / "nope.csv")


def test_skip_bad_rows_counts_each_reason(tmp_path):
    path = write(tmp_path, "c.csv", "product_id,name\np1,Milk\np1,Dup\np2,\n,Nameless\np3,Bread\n")
    catalog = load_catalog(path, skip_bad_rows=True)
    assert catalog.ids == ["p1", "p3"]
    assert catalog.report.rows == 5 and catalog.report.loaded == 2
    assert dict(catalog.report.skipped) == {"duplicate_product_id": 1, "empty_name": 1, "empty_product_id": 1}


def test_log_normalises_queries_and_checks_products(tiny_store):
    catalog = load_catalog(tiny_store["catalog"])
    events, report = load_log(tiny_store["log"], product_ids=set(catalog.ids))
    assert report.loaded == 5
    assert [e.query for e in events[:3]] == ["milk", "milk", "milk"]
    assert events[2].event == "add_to_cart" and events[2].position == 2


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("milk,p1,view,1", r"line 2, field 'event': unknown event 'view'; allowed: impression, click"),
        ("milk,p9,click,1", r"line 2, field 'product_id': unknown product 'p9': not in the catalogue"),
        (",p1,click,1", r"line 2, field 'query': empty query"),
        ("milk,p1,click,first", r"line 2, field 'position': 'first' is not a whole number"),
        ("milk,p1,click,0", r"line 2, field 'position': 0 is below 1"),
    ],
)
def test_log_errors(tmp_path, row, match):
    path = write(tmp_path, "log.csv", f"query,product_id,event,position\n{row}\n")
    with pytest.raises(DataError, match=match):
        load_log(path, product_ids={"p1"})


def test_log_missing_column(tmp_path):
    path = write(tmp_path, "log.csv", "query,product\nmilk,p1\n")
    with pytest.raises(DataError, match=r"missing required column\(s\) product_id, event for a search log"):
        load_log(path)


def test_log_aggregated_counts_and_skip(tmp_path):
    path = write(tmp_path, "log.csv", "query,product_id,event,count\nmilk,p1,click,7\nmilk,p1,zap,1\nmilk,p2,click,2\n")
    events, report = load_log(path, product_ids={"p1"}, skip_bad_rows=True)
    assert [(e.product_id, e.count) for e in events] == [("p1", 7)]
    assert dict(report.skipped) == {"unknown_event": 1, "unknown_product": 1}


def test_judgements_grades_and_esci_letters(tiny_store):
    judged, report = load_judgements(tiny_store["judgements"])
    assert judged["tortilla"] == {"p3": 3.0, "p4": 1.0}
    assert judged["milk"]["p6"] == 0.0 and report.loaded == 6


@pytest.mark.parametrize("grade", ["-1", "X", "nan", ""])
def test_judgements_bad_grade(tmp_path, grade):
    path = write(tmp_path, "j.csv", f"query,product_id,grade\nmilk,p1,{grade}\n")
    with pytest.raises(DataError, match=r"j\.csv, line 2, field 'grade'"):
        load_judgements(path)


def test_judgements_unknown_product(tmp_path):
    path = write(tmp_path, "j.csv", "query,product_id,grade\nmilk,p1,1\nmilk,zz,1\n")
    with pytest.raises(DataError, match=r"line 3, field 'product_id': unknown product 'zz'"):
        load_judgements(path, product_ids={"p1"})


def test_parquet_rows_are_numbered(tmp_path):
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({"query": ["a", "b"], "product_id": ["p1", "p1"], "event": ["click", "oops"]}), path)
    with pytest.raises(DataError, match=r"log\.parquet, line 2, field 'event'"):
        load_log(path)


def test_normalize_query():
    assert normalize_query("  Ｍac\u00a0N   CHEESE ") == "mac n cheese"


def test_text_cleaners():
    assert collapse_whitespace(" Red\u00a0 \t Blue\n") == "Red Blue"
    assert strip_html("<b>Red</b>&amp;  <br/>Blue ") == "Red & Blue"
    # tags go before entities are decoded: escaped markup stays as text, and "<>" is no tag
    assert strip_html("&lt;b&gt;bold&lt;/b&gt; a <> b") == "<b>bold</b> a <> b"
    assert strip_html("plain  text") == "plain text"


def test_open_csv_header_rows_and_encodings(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b' a ,b\r\n\r\n1,"x\ny"\r\n2,caf\xe9\r\n')
    with pytest.raises(DataError, match=r"t\.csv, line 5: cannot decode byte 0xe9 as UTF-8"):
        open_csv(path)
    header, rows = open_csv(path, encodings=("utf-8-sig", "cp1252"))
    assert header == ["a", "b"]
    assert list(rows) == [(3, {"a": "1", "b": "x\ny"}), (5, {"a": "2", "b": "café"})]
    assert [line for line, _ in iter_csv_records(path, encodings=("latin-1",))] == [1, 2, 3, 5]
    path.write_text("a,b,a\n1,2,3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 1: duplicate column\(s\) \['a'\] in header"):
        open_csv(path)


def test_write_table_is_atomic_on_failure(tmp_path):
    path = tmp_path / "out.csv"
    write_table(path, ["a"], [[1]])

    def rows():
        yield [2]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_table(path, ["a"], rows())
    assert path.read_text() == "a\n1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_atomic_dir_keeps_previous_folder_on_failure(tmp_path):
    target = tmp_path / "idx"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("v2")
        raise RuntimeError("crash mid-write")
    assert (target / "a.txt").read_text() == "v1"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("v3")
    assert (target / "a.txt").read_text() == "v3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]

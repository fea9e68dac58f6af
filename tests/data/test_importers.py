"""Importers: Instacart and Shopping Queries (ESCI), on the shared real data and on small malformed inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from towersearch.data import load_catalog, load_judgements
from towersearch.data.importers.esci import import_esci
from towersearch.data.importers.instacart import import_instacart
from towersearch.errors import ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """A folder of the shared real data beside the project; skip when it is absent, but fail on CI (``CI=true``)."""
    path = SHARED_DATA / name
    if not path.is_dir():
        message = f"shared data folder {path} is missing"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the shared data must be present)")
        pytest.skip(message)
    return path


def test_shared_data_helper_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        shared_data("no-such-dataset")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        shared_data("no-such-dataset")


# Instacart on the shared data ---------------------------------------------------------------------------------------


def test_instacart_sample_catalog_and_aisle_judgements(tmp_path: Path) -> None:
    summary = import_instacart(shared_data("instacart-sample"), tmp_path, judgements=True)
    assert summary["layout"] == "header"
    assert (summary["products"], summary["departments"], summary["aisles"]) == (9288, 21, 134)
    assert summary["queries"] == 129
    assert summary["written"] == {
        "catalog": str(tmp_path / "catalog.csv"),
        "judgements": str(tmp_path / "judgements.csv"),
    }

    catalog = load_catalog(tmp_path / "catalog.csv")
    assert len(catalog) == 9288
    cookies = catalog["1"]
    assert (cookies.name, cookies.category) == ("Chocolate Sandwich Cookies", "snacks > cookies cakes")
    assert all(" > " in p.category for p in catalog)
    assert all(not p.attributes and not p.description for p in catalog)  # no ids in any text field

    judgements, report = load_judgements(tmp_path / "judgements.csv", product_ids=catalog)
    assert len(judgements) == 129
    assert report.loaded == summary["judgements"]
    assert "missing" not in judgements and "other" not in judgements
    assert all(len(graded) >= 5 for graded in judgements.values())
    assert {g for graded in judgements.values() for g in graded.values()} == {1.0}
    assert "1" in judgements["cookies cakes"]
    assert all(catalog[pid].category.endswith(" > cookies cakes") for pid in judgements["cookies cakes"])


def test_instacart_without_category_writes_no_labels(tmp_path: Path) -> None:
    summary = import_instacart(shared_data("instacart-sample"), tmp_path, judgements=True, category=False)
    catalog = load_catalog(tmp_path / "catalog.csv")
    assert len(catalog) == summary["products"] == 9288
    assert all(p.category == "" and not p.attributes for p in catalog)
    assert summary["queries"] == 129


def test_instacart_min_aisle_products(tmp_path: Path) -> None:
    summary = import_instacart(shared_data("instacart-sample"), tmp_path, judgements=True, min_aisle_products=100)
    judgements, _ = load_judgements(tmp_path / "judgements.csv")
    assert 0 < summary["queries"] == len(judgements) < 129
    assert all(len(graded) >= 100 for graded in judgements.values())
    with pytest.raises(ConfigError, match="min_aisle_products must be >= 1"):
        import_instacart(shared_data("instacart-sample"), tmp_path, min_aisle_products=0)


def test_instacart_full_headerless_layout(tmp_path: Path) -> None:
    summary = import_instacart(shared_data("instacart-full"), tmp_path, judgements=True)
    assert summary["layout"] == "headerless"
    assert summary["products"] == 49688
    assert not (tmp_path / "catalog.csv").read_text(encoding="utf-8").count("  ")  # doubled spaces collapsed
    catalog = load_catalog(tmp_path / "catalog.csv")
    assert len(catalog) == 49688
    assert catalog["18"].name == "Pizza for One Suprema Frozen Pizza"
    assert catalog["1"].category == "snacks > cookies cakes"
    judgements, _ = load_judgements(tmp_path / "judgements.csv", product_ids=catalog)
    assert len(judgements) == summary["queries"]


# Instacart, malformed inputs ----------------------------------------------------------------------------------------


def _instacart_files(folder: Path, products: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "aisles.csv").write_text("aisle_id,aisle\n1,fresh fruits\n2,missing\n", encoding="utf-8")
    (folder / "departments.csv").write_text("department_id,department\n4,produce\n", encoding="utf-8")
    (folder / "products.csv").write_text(products, encoding="utf-8")
    return folder


def test_instacart_missing_products_file(tmp_path: Path) -> None:
    src = _instacart_files(tmp_path / "src", "")
    (src / "products.csv").unlink()
    with pytest.raises(DataError, match=r"products\.csv: file not found") as info:
        import_instacart(src, tmp_path / "out")
    assert info.value.path == str(src / "products.csv")
    assert not (tmp_path / "out").exists()


def test_instacart_unknown_aisle_names_file_and_line(tmp_path: Path) -> None:
    header = "product_id,product_name,aisle_id,department_id\n"
    src = _instacart_files(tmp_path / "src", header + "1,Apple,1,4\n2,Pear,9,4\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"products\.csv, line 3, field 'aisle_id': unknown aisle_id 9") as info:
        import_instacart(src, out, judgements=True)
    assert (info.value.line, info.value.field, info.value.reason) == (3, "aisle_id", "unknown_id")
    assert not out.exists()  # nothing written: everything is checked first


def test_instacart_unknown_department_and_bad_ids(tmp_path: Path) -> None:
    header = "product_id,product_name,aisle_id,department_id\n"
    src = _instacart_files(tmp_path / "a", header + "1,Apple,1,7\n")
    with pytest.raises(DataError, match=r"line 2, field 'department_id': unknown department_id 7"):
        import_instacart(src, tmp_path / "out")
    src = _instacart_files(tmp_path / "b", header + "1,Apple,one,4\n")
    with pytest.raises(DataError, match=r"line 2, field 'aisle_id': aisle_id must be a whole number, got 'one'"):
        import_instacart(src, tmp_path / "out")
    src = _instacart_files(tmp_path / "c", "1,Apple,1,4\nx2,Pear,1,4\n")  # headerless
    with pytest.raises(DataError, match=r"line 2, field 'product_id': product_id must be a whole number"):
        import_instacart(src, tmp_path / "out")
    src = _instacart_files(tmp_path / "d", header + "1,Apple,1,4\n1,Pear,1,4\n")
    with pytest.raises(DataError, match=r"line 3, field 'product_id': duplicate product_id 1 \(first on line 2\)"):
        import_instacart(src, tmp_path / "out")
    (src / "aisles.csv").write_text("aisle_id,aisle\n1,fruit\nz,veg\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"aisles\.csv, line 3, field 'aisle_id'"):
        import_instacart(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_instacart_headerless_synthetic(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "aisles.csv").write_text("1,fresh  fruits\n2,missing\n", encoding="utf-8")
    (src / "departments.csv").write_text("4,produce\n", encoding="utf-8")
    (src / "products.csv").write_text("1,Apple  Gala ,1,4\n2,Pear,1,4\n3,Mystery,2,4\n", encoding="utf-8")
    summary = import_instacart(src, tmp_path / "out", judgements=True, min_aisle_products=1)
    assert summary["layout"] == "headerless"
    catalog = load_catalog(tmp_path / "out" / "catalog.csv")
    assert (catalog["1"].name, catalog["1"].category) == ("Apple Gala", "produce > fresh fruits")
    judgements, _ = load_judgements(tmp_path / "out" / "judgements.csv", product_ids=catalog)
    assert judgements == {"fresh fruits": {"1": 1.0, "2": 1.0}}  # "missing" is never a query


# ESCI on the fixture ------------------------------------------------------------------------------------------------


def _esci_fixture(tmp_path: Path, **filters: str) -> dict:
    src = shared_data("esci-fixture")
    return dict(
        import_esci(src, tmp_path, examples="test-sample.parquet", products=src / "sample-products.jsonl", **filters)
    )


def test_esci_fixture_catalog_and_graded_judgements(tmp_path: Path) -> None:
    summary = _esci_fixture(tmp_path)
    assert (summary["examples_read"], summary["examples_kept"]) == (16, 16)
    assert (summary["queries"], summary["products"], summary["judgements"]) == (1, 16, 16)
    assert summary["skipped"] == {}

    catalog = load_catalog(tmp_path / "catalog.csv")
    assert len(catalog) == 16
    stereo = catalog["B08VSJGP1N"]
    assert stereo.name.startswith("Apple Carplay Double Din Car Stereo")
    assert stereo.brand == "Rimoody"
    assert stereo.description.startswith("Features ●Built-in carplay system")
    assert "<" not in stereo.description and "  " not in stereo.description
    assert stereo.attributes["color"] == "black"
    assert stereo.attributes["bullets"].startswith("【2 Din Carpaly Touchscreen Radio】")
    assert "color" not in catalog["B08SHMLP5S"].attributes  # null colour left out

    judgements, report = load_judgements(tmp_path / "judgements.csv", product_ids=catalog)
    assert report.loaded == 16
    graded = judgements["06 bmw 325i radio oem not navigation system"]
    assert (graded["B08PB9TTKT"], graded["B08VSJGP1N"], graded["B08SHMLP5S"]) == (3.0, 2.0, 0.0)  # E, S, I
    assert sorted(graded.values()).count(3.0) == 3


def test_esci_fixture_filters(tmp_path: Path) -> None:
    assert _esci_fixture(tmp_path / "a", version="large")["judgements"] == 16
    all_ = _esci_fixture(tmp_path / "b", locale="all", version="all", split="all")
    assert all_["judgements"] == 16 and all_["product_ids"] == "locale:asin"
    assert "us:B08PB9TTKT" in load_catalog(tmp_path / "b" / "catalog.csv")
    # A filter that keeps nothing is an error that says what the file holds, and writes nothing.
    with pytest.raises(DataError, match=r"no examples match locale=es, version=small, split=test.*product_locale: us"):
        _esci_fixture(tmp_path / "c", locale="es")
    with pytest.raises(DataError, match=r"no examples match .*split=train.*split: test"):
        _esci_fixture(tmp_path / "c", split="train")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("locale", "fr", "us, es, jp, all"),
        ("version", "tiny", "small, large, all"),
        ("split", "dev", "train, test, all"),
    ],
)
def test_esci_bad_filter_value(tmp_path: Path, option: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=f"{option} '{value}' is not allowed; allowed: {allowed}"):
        import_esci(tmp_path, tmp_path / "out", **{option: value})


# ESCI in the original file layout (made from the fixture) ------------------------------------------------------------


def _esci_original(folder: Path) -> Path:
    """The fixture rewritten as the release's two Parquet files, with varied locale, version and split."""
    src = shared_data("esci-fixture")
    folder.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(src / "test-sample.parquet").drop_columns(["__index_level_0__"])
    n = table.num_rows
    table = table.set_column(
        table.schema.get_field_index("product_locale"), "product_locale", pa.array(["us"] * 12 + ["es"] * 4)
    )
    table = table.set_column(table.schema.get_field_index("split"), "split", pa.array(["test"] * 10 + ["train"] * 6))
    table = table.set_column(
        table.schema.get_field_index("small_version"), "small_version", pa.array([1] * 8 + [0] * (n - 8))
    )
    pq.write_table(table, folder / "shopping_queries_dataset_examples.parquet")

    rows = [json.loads(line)["fields"] for line in (src / "sample-products.jsonl").read_text().splitlines()]
    locales = dict(zip(table["product_id"].to_pylist(), table["product_locale"].to_pylist(), strict=True))
    products = []
    for row in rows:
        if row["id"] == "B08VJ66CNL":  # missing from the products file
            continue
        products.append(
            {
                "product_id": row["id"],
                "product_title": "" if row["id"] == "B08SHMLP5S" else row["title"],
                "product_description": row["description"],
                "product_bullet_point": "first; bullet\n<b>second</b> bullet",
                "product_brand": row["brand"],
                "product_color": row["color"],
                "product_locale": locales[row["id"]],
            }
        )
    # The same ASIN listed in another market: a different product that must not be picked up for "us".
    products.append({**products[0], "product_title": "Autoradio", "product_locale": "es"})
    pq.write_table(pa.Table.from_pylist(products), folder / "shopping_queries_dataset_products.parquet")
    return folder


def test_esci_original_layout_and_skips(tmp_path: Path) -> None:
    src = _esci_original(tmp_path / "src")
    summary = import_esci(src, tmp_path / "out", split="all", version="all")
    assert (summary["examples_read"], summary["examples_kept"]) == (16, 12)
    assert summary["skipped"] == {"judgement_empty_title": 1, "judgement_missing_product": 1, "product_empty_title": 1}
    assert summary["judgements"] == summary["products"] == 10
    catalog = load_catalog(tmp_path / "out" / "catalog.csv")
    assert catalog["B08VSJGP1N"].name.startswith("Apple Carplay")  # not the "es" listing of the same ASIN
    assert catalog["B08VSJGP1N"].attributes["bullets"] == "first, bullet | second bullet"
    assert "B08VJ66CNL" not in catalog and "B08SHMLP5S" not in catalog
    load_judgements(tmp_path / "out" / "judgements.csv", product_ids=catalog)


def test_esci_original_layout_filters(tmp_path: Path) -> None:
    src = _esci_original(tmp_path / "src")
    kept = {}
    for locale, version, split in [
        ("us", "small", "test"),
        ("us", "all", "test"),
        ("us", "all", "train"),
        ("es", "all", "all"),
        ("all", "large", "all"),
    ]:
        summary = import_esci(src, tmp_path / "out", locale=locale, version=version, split=split)
        kept[locale, version, split] = summary["examples_kept"]
    assert kept == {
        ("us", "small", "test"): 8,
        ("us", "all", "test"): 10,
        ("us", "all", "train"): 2,
        ("es", "all", "all"): 4,
        ("all", "large", "all"): 16,
    }
    mixed = load_catalog(tmp_path / "out" / "catalog.csv")  # the last run, locale="all"
    assert all(pid.startswith(("us:", "es:")) for pid in mixed.ids)
    assert "es:B0007KPRIS" in mixed and "us:B08VSJGP1N" in mixed
    assert "es:B08VSJGP1N" not in mixed  # listed in "es" but judged only in "us"


def test_esci_missing_file_and_bad_label(tmp_path: Path) -> None:
    src = _esci_original(tmp_path / "src")
    with pytest.raises(DataError, match=r"examples file not found; files in .*shopping_queries_dataset_products"):
        import_esci(src, tmp_path / "out", examples="nope.parquet")
    table = pq.read_table(src / "shopping_queries_dataset_examples.parquet")
    labels = table["esci_label"].to_pylist()
    labels[3] = "X"
    table = table.set_column(table.schema.get_field_index("esci_label"), "esci_label", pa.array(labels))
    pq.write_table(table, src / "shopping_queries_dataset_examples.parquet")
    with pytest.raises(DataError, match=r"line 4, field 'esci_label': esci_label 'X' is not one of E, S, C, I"):
        import_esci(src, tmp_path / "out", version="all", split="all")
    assert not (tmp_path / "out").exists()

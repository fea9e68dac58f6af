"""Shared fixtures: tiny seeded data files and the path of the real public data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """A folder of ``../shared/data``: skipped where it is missing, but a failure when ``CI=true``."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"shared data folder {folder} is missing on CI")
        pytest.skip(f"shared data folder {folder} not present")
    return folder


def scale_module(name: str):
    """An optional scale-out engine (``towersearch[scale]``): skipped where it is not installed, but a failure when
    ``CI=true`` (``make test`` installs it)."""
    try:
        return __import__(name)
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is missing on CI: make test installs towersearch[scale]")
        pytest.skip(f"{name} not installed (pip install 'towersearch[scale]')")


CATALOG_CSV = """product_id,name,brand,category,size,description,attributes,origin
p1,Organic 2% Milk,GreenWise,dairy eggs > milk,1 gal,Fresh reduced fat milk.,"dietary=organic, kosher",US
p2,Whole Milk,Dairy Pure,dairy eggs > milk,1 gal,Creamy whole milk.,,US
p3,Flour Tortillas,La Banderita,bakery > tortillas,10 ct,Soft flour tortillas for tacos.,,MX
p4,Sea Salt Tortilla Chips,Crunchy Valley,snacks > chips,12 oz,Crispy corn tortilla chips.,flavor=sea salt,US
p5,Cola,Fizz,beverages > soda,12 pk,Classic cola soft drink.,dietary=vegan,US
p6,Macaroni & Cheese,Homestyle,pantry > pasta,7 oz,Creamy mac and cheese dinner.,,US
"""

LOG_CSV = """query,product_id,event,position,session_id,timestamp
milk,p1,impression,1,s1,2026-01-01T10:00:00
milk,p1,click,1,s1,2026-01-01T10:00:05
Milk ,p2,add_to_cart,2,s1,2026-01-01T10:00:09
tortillas,p3,purchase,1,s2,2026-01-02T09:00:00
pop,p5,click,3,s3,2026-01-03T09:00:00
"""

JUDGEMENTS_CSV = """query,product_id,grade
milk,p1,3
milk,p2,3
milk,p6,0
tortilla,p3,E
tortilla,p4,C
soda,p5,2
"""

REVIEWS_CSV = """review_id,product_id,title,text,rating,helpful_votes,total_votes
r1,p1,Great milk,Fresh and creamy every time.,5,3,4
r2,p1,Lasts a week,"Kept fresh for seven days after opening, which beats the store brand.",4,5,6
r3,p1,,Tastes odd!!!,2,,
r4,p3,Soft tortillas,Warm them in a pan and they stay soft.,5,1,1
r5,p99,Gone,A product the store no longer sells.,3,0,0
"""
"""Reviews of the tiny store: three of p1, one of p3, one of p99 (not in the catalogue)."""

CLASSIFIED_HEADER = (
    "review_id,highly_useful,passionate,obnoxious,balanced,p_highly_useful,p_passionate,p_obnoxious,p_balanced"
)
CLASSIFIED_CSV = f"""{CLASSIFIED_HEADER}
r1,1,1,0,0,0.9,0.8,0.1,0.2
r2,1,0,0,1,0.9,0.3,0.05,0.7
r3,0,0,1,0,0.2,0.4,0.6,0.1
r4,1,0,0,0,0.75,0.2,0.1,0.3
r5,0,0,0,0,0.1,0.1,0.1,0.1
r9,1,0,0,0,0.5,0.5,0.5,0.5
"""
"""Their classification, as ``towersearch reviews classify`` writes it; r9 has no review. p1's most useful review is
r2 (tied with r1 on p_highly_useful, more helpful votes)."""


@pytest.fixture
def tiny_store(tmp_path: Path) -> dict[str, Path]:
    """A six-product catalogue, a small log and judgements, as CSV files."""
    files = {"catalog": CATALOG_CSV, "log": LOG_CSV, "judgements": JUDGEMENTS_CSV}
    paths = {}
    for name, text in files.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        paths[name] = path
    return paths


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT (2 layers, 32 dimensions) with the MiniLM tokenizer, saved as a sentence-transformers folder.

    It trains in seconds, so training plumbing can be tested without the real weights.
    """
    from towersearch.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tiny_index(tiny_store, tiny_model_dir, tmp_path) -> Path:
    """An index folder over the tiny store, built with the tiny model."""
    from towersearch.data import load_catalog, load_log
    from towersearch.index.build import IndexConfig, build_index

    events, _ = load_log(tiny_store["log"])
    out = tmp_path / "index"
    build_index(
        load_catalog(tiny_store["catalog"]),
        out,
        events=events,
        model=tiny_model_dir,
        config=IndexConfig(progress=False),
    )
    return out


@pytest.fixture
def tiny_reviews(tmp_path: Path) -> dict[str, Path]:
    """The tiny store's reviews and their classification, as CSV files."""
    paths = {}
    for name, text in {"reviews": REVIEWS_CSV, "intents": CLASSIFIED_CSV}.items():
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text(text, encoding="utf-8")
    return paths


@pytest.fixture
def insights_index(tiny_store, tiny_reviews, tiny_model_dir, tmp_path) -> Path:
    """An index folder over the tiny store with review insights (p1 and p3 have reviews), built with the tiny model."""
    from towersearch.data import load_catalog, load_log
    from towersearch.index.build import IndexConfig, build_index
    from towersearch.reviews.data import load_reviews
    from towersearch.reviews.insights import load_review_intents, product_insights

    insights = product_insights(load_reviews(tiny_reviews["reviews"])[0], load_review_intents(tiny_reviews["intents"]))
    out = tmp_path / "insights-index"
    build_index(
        load_catalog(tiny_store["catalog"]),
        out,
        events=load_log(tiny_store["log"])[0],
        model=tiny_model_dir,
        config=IndexConfig(progress=False),
        insights=insights,
    )
    return out


@pytest.fixture
def cli_json(monkeypatch, capsys):
    """Run ``towersearch ARGS…`` in process; assert it succeeded and return its ``--json`` output."""
    import json
    import sys

    from towersearch.cli import main

    def run(*args) -> dict:
        monkeypatch.setattr(sys, "argv", ["towersearch", *map(str, args)])
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, capsys.readouterr().err
        return json.loads(capsys.readouterr().out)

    return run

"""Service fixtures: a clean ``TOWERSEARCH_*`` environment, and a way to build a second, different tiny index."""

from __future__ import annotations

from pathlib import Path

import pytest

SERVICE_ENV = (
    "TOWERSEARCH_INDEX_DIR",
    "TOWERSEARCH_ADMIN_TOKEN",
    "TOWERSEARCH_ADMIN_TOKEN_FILE",
    "TOWERSEARCH_CACHE_SIZE",
    "TOWERSEARCH_MAX_K",
    "TOWERSEARCH_MAX_QUERY_LENGTH",
    "TOWERSEARCH_QUANTIZE_QUERIES",
)


@pytest.fixture(autouse=True)
def clean_service_env(monkeypatch):
    """No service setting leaks in from the shell that runs the tests."""
    for name in SERVICE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def build_tiny_index(tiny_store, tiny_model_dir):
    """Build an index over the tiny store without the products in ``drop``, into ``out``."""
    from towersearch.data import load_catalog, load_log
    from towersearch.index.build import IndexConfig, build_index

    def build(out: Path, drop: tuple[str, ...] = ()) -> Path:
        lines = tiny_store["catalog"].read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if line.split(",", 1)[0] not in drop]
        catalog = out.parent / f"{out.name}-catalog.csv"
        catalog.write_text("".join(kept), encoding="utf-8")
        log_lines = tiny_store["log"].read_text(encoding="utf-8").splitlines(keepends=True)
        log = out.parent / f"{out.name}-log.csv"
        log.write_text("".join(line for line in log_lines if line.split(",")[1] not in drop), encoding="utf-8")
        events, _ = load_log(log)
        build_index(load_catalog(catalog), out, events=events, model=tiny_model_dir, config=IndexConfig(progress=False))
        return out

    return build

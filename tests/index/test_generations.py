"""Index generations: CURRENT switched atomically, old generations cleaned up, self-contained model copies."""

import errno
import json
import os
import shutil

import pytest

from towersearch.data import load_catalog, load_log
from towersearch.errors import ArtifactError, ConfigError
from towersearch.index import artifacts
from towersearch.index.artifacts import copy_model, model_fingerprint
from towersearch.index.build import IndexConfig, build_index
from towersearch.index.generations import (
    CURRENT,
    GENERATIONS,
    cleanup,
    current_generation,
    discard,
    generations,
    index_root,
    new_generation,
    promote,
    resolve,
    switch,
)
from towersearch.search.engine import SearchEngine


@pytest.fixture
def build(tiny_store, tiny_model_dir, tmp_path):
    """Build into ``root`` over the tiny store without the products in ``drop``; returns the manifest."""
    events, _ = load_log(tiny_store["log"])

    def build(root, drop=(), **kwargs):
        lines = tiny_store["catalog"].read_text(encoding="utf-8").splitlines(keepends=True)
        catalog = tmp_path / f"catalog-{len(drop)}.csv"
        catalog.write_text("".join(line for line in lines if line.split(",", 1)[0] not in drop), encoding="utf-8")
        kept = [e for e in events if e.product_id not in drop]
        config = IndexConfig(progress=False)
        return build_index(load_catalog(catalog), root, events=kept, model=tiny_model_dir, config=config, **kwargs)

    return build


def fake_generation(root, name):
    folder = root / GENERATIONS / name
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    return folder


# -- reads never see a missing folder or a mix -------------------------------------------------------------------
def test_a_reload_during_a_rebuild_sees_the_old_or_the_new_index(build, tmp_path, monkeypatch):
    """Load the index at every rename and delete a rebuild makes: each load is whole, of the old build or the new."""
    root = tmp_path / "index"
    build(root)
    seen = []

    def check():
        engine = SearchEngine.load(root)
        products = {p.product_id for p in engine.products}
        assert products in ({"p1", "p2", "p3", "p4", "p5", "p6"}, {"p1", "p2", "p3", "p4", "p5"})
        assert engine.manifest["catalog"]["products"] == len(products) == len(engine.embeddings)
        assert engine.manifest["generation"] == engine.folder.name
        assert engine.search("milk", k=6)
        seen.append(len(products))

    def checked(real):
        def wrapper(*args, **kwargs):
            check()
            result = real(*args, **kwargs)
            check()
            return result

        return wrapper

    monkeypatch.setattr(os, "replace", checked(os.replace))
    monkeypatch.setattr(os, "rename", checked(os.rename))
    monkeypatch.setattr(shutil, "rmtree", checked(shutil.rmtree))
    build(root, drop=("p6",))
    monkeypatch.undo()
    assert seen[0] == 6 and seen[-1] == 5 and set(seen) == {5, 6}


def test_generations_keep_the_current_and_the_previous_one(build, tmp_path):
    root = tmp_path / "index"
    first = build(root)["generation"]
    serving = SearchEngine.load(root)  # a server loaded the first generation
    second = build(root, drop=("p6",))["generation"]
    assert generations(root) == [first, second] and current_generation(root).name == second
    third = build(root, drop=("p5", "p6"))["generation"]
    assert generations(root) == [second, third] and (root / CURRENT).read_text().strip() == third
    assert first < second < third
    assert not (root / GENERATIONS / first).exists()
    assert serving.search("milk", k=3) and serving.search("cola", mode="dense", k=2)  # its files were loaded
    assert len(SearchEngine.load(root).products) == 4


def test_a_killed_build_leaves_current_and_its_leftovers_are_cleaned_by_the_next(build, tmp_path):
    root = tmp_path / "index"
    first = build(root)["generation"]
    partial = root / GENERATIONS / ".20990101T000000000000Z-abcdef.tmp"  # killed while writing
    (partial / "model").mkdir(parents=True)
    orphan = fake_generation(root, "20990101T000000000000Z-123456")  # killed between rename and switch
    stale = root / ".CURRENT.xyz.tmp"  # killed while writing CURRENT
    stale.write_text("garbage")
    assert resolve(root).name == first
    second = build(root, drop=("p6",))["generation"]
    assert generations(root) == [first, second]
    assert not partial.exists() and not orphan.exists() and not stale.exists()
    assert sorted(p.name for p in (root / GENERATIONS).iterdir()) == [first, second]


def test_failed_generation_is_removed_and_current_untouched(tmp_path):
    root = tmp_path / "index"
    fake_generation(root, "a")
    switch(root, "a")
    with pytest.raises(RuntimeError), new_generation(root) as generation:
        (generation.path / "manifest.json").write_text("{}")
        assert generation.path.name.startswith(".")
        raise RuntimeError("boom")
    assert (root / CURRENT).read_text() == "a\n" and generations(root) == ["a"]
    assert sorted(p.name for p in (root / GENERATIONS).iterdir()) == ["a"]


def stage(root):
    """A staged generation of ``root`` (written, CURRENT not switched); returns its name."""
    with new_generation(root, activate=False) as generation:
        (generation.path / "manifest.json").write_text("{}")
    return generation.name


def test_a_staged_generation_is_complete_but_not_served_until_promoted(tmp_path):
    root = tmp_path / "index"
    old, older = "20260102T000000000000Z-bbbbbb", "20260101T000000000000Z-aaaaaa"
    fake_generation(root, older)
    fake_generation(root, old)
    switch(root, old)
    staged = stage(root)
    assert current_generation(root).name == old and generations(root) == [older, old, staged]  # nothing deleted
    assert promote(root, staged, expected=old) == [older]  # then cleaned up as after a build
    assert current_generation(root).name == staged and generations(root) == [old, staged]


def test_promote_refuses_when_current_moved_and_discard_never_deletes_current(tmp_path):
    root = tmp_path / "index"
    fake_generation(root, "20260101T000000000000Z-aaaaaa")
    switch(root, "20260101T000000000000Z-aaaaaa")
    staged = stage(root)
    fake_generation(root, "20260101T120000000000Z-cccccc")
    switch(root, "20260101T120000000000Z-cccccc")  # another build or update switched meanwhile
    with pytest.raises(ArtifactError, match=r"\(another build or update switched meanwhile\): not switching"):
        promote(root, staged, expected="20260101T000000000000Z-aaaaaa")
    assert current_generation(root).name == "20260101T120000000000Z-cccccc"
    assert discard(root, "20260101T120000000000Z-cccccc") is False  # CURRENT's: kept
    assert discard(root, staged) is True and staged not in generations(root)
    assert discard(root, staged) is False  # already gone


def test_a_staged_generation_left_behind_is_cleaned_up_by_the_next_build(tmp_path):
    root = tmp_path / "index"
    fake_generation(root, "20260101T000000000000Z-aaaaaa")
    switch(root, "20260101T000000000000Z-aaaaaa")
    staged = stage(root)  # a refresh killed before its gate: newer than CURRENT, never switched to
    assert cleanup(root) == [staged] and generations(root) == ["20260101T000000000000Z-aaaaaa"]


# -- the pointer ---------------------------------------------------------------------------------------------------
def test_switch_current_and_resolve(tmp_path):
    root = tmp_path / "index"
    assert current_generation(root) is None
    a, b = fake_generation(root, "a"), fake_generation(root, "b")
    with pytest.raises(ArtifactError, match="has no finished index build yet"):
        resolve(root)
    assert switch(root, "a") is None and current_generation(root) == a
    assert switch(root, "b") == "a" and resolve(root) == b and index_root(b) == root
    assert [p.name for p in root.iterdir() if p.name.startswith(".CURRENT")] == []
    with pytest.raises(ArtifactError, match="not a complete generation"):
        switch(root, "missing")
    with pytest.raises(ArtifactError, match="not a complete generation"):
        switch(root, "../a")
    assert current_generation(root) == b


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "does not name a generation"), ("../../etc\n", "does not name a generation"), ("gone\n", "is missing")],
)
def test_bad_current_is_a_clear_error(tmp_path, text, message):
    root = tmp_path / "index"
    fake_generation(root, "a")
    (root / CURRENT).write_text(text)
    with pytest.raises(ArtifactError, match=message):
        current_generation(root)
    with pytest.raises(ArtifactError, match=message):
        SearchEngine.load(root)


def test_cleanup_never_deletes_the_current_generation(tmp_path):
    root = tmp_path / "index"
    for name in ("20260101T000000000000Z-aaaaaa", "20260102T000000000000Z-bbbbbb", "20260103T000000000000Z-cccccc"):
        fake_generation(root, name)
    switch(root, "20260101T000000000000Z-aaaaaa")  # rolled back to the oldest
    assert cleanup(root) == ["20260102T000000000000Z-bbbbbb", "20260103T000000000000Z-cccccc"]
    assert generations(root) == ["20260101T000000000000Z-aaaaaa"]
    fake_generation(root, "20251231T000000000000Z-zzzzzz")
    assert cleanup(root, keep=1) == ["20251231T000000000000Z-zzzzzz"]
    assert generations(root) == ["20260101T000000000000Z-aaaaaa"]
    with pytest.raises(ConfigError, match="keep must be >= 1"):
        cleanup(root, keep=0)


# -- self-contained --------------------------------------------------------------------------------------------------
def test_model_copy_hard_links_and_skips_checkpoints(tiny_model_dir, tmp_path):
    source = tmp_path / "towers"
    shutil.copytree(tiny_model_dir, source)
    (source / "checkpoint-200").mkdir()
    (source / "checkpoint-200" / "model.safetensors").write_bytes(b"x")
    (source / ".stage.work" / "sub").mkdir(parents=True)
    (source / ".stage.work" / "sub" / "config.json").write_text("{}")
    counts = copy_model(source, tmp_path / "copy")
    assert counts["copied"] == 0 and counts["linked"] > 0
    assert not (tmp_path / "copy" / "checkpoint-200").exists() and not (tmp_path / "copy" / ".stage.work").exists()
    weights = next(source.rglob("*.safetensors"))
    copied = tmp_path / "copy" / weights.relative_to(source)
    assert os.stat(weights).st_ino == os.stat(copied).st_ino
    assert model_fingerprint(tmp_path / "copy") == model_fingerprint(tiny_model_dir)


def test_model_copy_falls_back_to_copying(tiny_model_dir, tmp_path, monkeypatch):
    def no_links(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(artifacts.os, "link", no_links)
    counts = copy_model(tiny_model_dir, tmp_path / "copy")
    assert counts["linked"] == 0 and counts["copied"] > 0
    weights = next(tiny_model_dir.rglob("*.safetensors"))
    assert os.stat(weights).st_ino != os.stat(tmp_path / "copy" / weights.relative_to(tiny_model_dir)).st_ino
    assert model_fingerprint(tmp_path / "copy") == model_fingerprint(tiny_model_dir)


def test_index_loads_without_its_source_model_and_after_a_move(tiny_store, tiny_model_dir, tmp_path):
    source = tmp_path / "towers"
    shutil.copytree(tiny_model_dir, source)
    root = tmp_path / "index"
    catalog = load_catalog(tiny_store["catalog"])
    build_index(catalog, root, model=source, config=IndexConfig(progress=False))
    shutil.rmtree(source)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    os.replace(root, moved)
    engine = SearchEngine.load(moved)
    assert engine.folder.parent.parent == moved and engine.search("milk", k=2)
    assert engine.manifest["model"]["source"] == str(source)


# -- the older layout ------------------------------------------------------------------------------------------------
def test_an_index_of_the_older_layout_loads_and_is_replaced_by_generations(build, tiny_model_dir, tmp_path):
    root = tmp_path / "index"
    build(root)
    legacy = tmp_path / "legacy"
    shutil.copytree(current_generation(root), legacy, ignore=shutil.ignore_patterns("model"))
    manifest = json.loads((legacy / "manifest.json").read_text())
    del manifest["generation"]
    manifest["model"] = {
        "path": str(tiny_model_dir.resolve()),
        "untrained": False,
        "fingerprint": model_fingerprint(tiny_model_dir),
    }
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    engine = SearchEngine.load(legacy)
    assert engine.folder == legacy and index_root(engine.folder) == legacy and len(engine.products) == 6
    first = build(legacy, drop=("p6",))["generation"]
    assert len(SearchEngine.load(legacy).products) == 5
    assert (legacy / "manifest.json").is_file(), "the older index is the previous generation: kept"
    second = build(legacy, drop=("p5", "p6"))["generation"]
    assert sorted(p.name for p in legacy.iterdir()) == [".lock", CURRENT, GENERATIONS]
    assert generations(legacy) == [first, second] and len(SearchEngine.load(legacy).products) == 4


# -- rollback ----------------------------------------------------------------------------------------------------
def test_rollback_serves_the_previous_generation_and_can_roll_forward(tmp_path):
    from towersearch.index.generations import rollback

    root = tmp_path / "index"
    with pytest.raises(ArtifactError, match="no current generation"):
        rollback(root)
    for name in ("a", "b", "c"):
        fake_generation(root, name)
    switch(root, "a")
    with pytest.raises(ArtifactError, match="no generation older than a"):
        rollback(root)
    switch(root, "c")
    assert rollback(root) == ("c", "b") and current_generation(root).name == "b"
    assert generations(root) == ["a", "b", "c"]  # nothing deleted: the way forward stays open
    assert rollback(root, to="c") == ("b", "c") and resolve(root).name == "c"
    with pytest.raises(ArtifactError, match="no generation 'gone'"):
        rollback(root, to="gone")
    with pytest.raises(ArtifactError, match="already serves generation c"):
        rollback(root, to="c")
    assert current_generation(root).name == "c"


def test_rollback_refuses_a_generation_whose_milvus_collection_an_update_changed(tmp_path):
    from towersearch.index.generations import rollback

    root = tmp_path / "index"
    ann = {"kind": "milvus", "milvus_uri": "store.db", "collection_name": "products_a"}
    for name, collection in (("a", "products_a"), ("b", "products_a"), ("c", "products_c")):
        folder = fake_generation(root, name)
        (folder / "manifest.json").write_text(json.dumps({"ann": {**ann, "collection_name": collection}}))
    switch(root, "b")  # b: a catalogue update of a, written into a's collection
    with pytest.raises(ArtifactError, match="shares the Milvus collection 'products_a'"):
        rollback(root)
    assert current_generation(root).name == "b"
    switch(root, "c")  # c: a full build into its own collection
    with pytest.raises(ArtifactError, match="'products_a' at store.db with the later generation b"):
        rollback(root, to="a")  # b's update changed a's collection, whichever generation is current
    assert rollback(root) == ("c", "b")


def test_cli_rollback_and_the_engine_serves_the_earlier_build(build, cli_json, tmp_path):
    root = tmp_path / "index"
    first = build(root)["generation"]
    second = build(root, drop=("p6",))["generation"]
    assert len(SearchEngine.load(root).products) == 5
    result = cli_json("rollback", root, "--json")
    assert result == {"previous": second, "generation": first, "generations": [first, second]}
    assert len(SearchEngine.load(root).products) == 6  # the first build's catalogue again
    assert cli_json("rollback", root, "--to", second, "--json")["generation"] == second

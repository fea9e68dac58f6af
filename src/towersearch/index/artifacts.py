"""Manifests and fingerprints of pipeline folders.

Every folder a step writes carries a ``manifest.json`` (format version, towersearch version, what it was built
from and with, dimensions, counts, creation time). Loading checks it and fails with a clear
:class:`~towersearch.errors.ArtifactError` on a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from towersearch import __version__
from towersearch.data.io import write_json
from towersearch.errors import ArtifactError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX_KIND = "index"
"""The ``kind`` of an index folder's manifest."""
MODEL_DIR = "model"
"""Where an index generation keeps the towers it was built with."""


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


FINGERPRINT_CACHE = "fingerprint.cache"
"""Beside a model's files: its fingerprint with the size and modification time of each file it was hashed from."""


def _model_files(folder: Path) -> list[Path]:
    """The files a model's fingerprint covers: weights and configuration, not checkpoints or the ONNX export."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in (".safetensors", ".bin", ".json", ".txt")
        and "checkpoint" not in p.parts[-2]
        and not p.relative_to(folder).parts[0].startswith(("onnx", ".onnx"))
    )


def model_fingerprint(folder: str | Path) -> str:
    """A hash of a model folder's weights and configuration files (names and contents), order-independent.

    Hashing 90 MB of weights takes about 0.3 s, so the result is kept in ``fingerprint.cache`` with each file's
    size and modification time, and reused while they are unchanged (written atomically; never into an installed
    package such as the base model's, nor where the folder is read-only).
    """
    folder = Path(folder)
    files = _model_files(folder)
    if not files:
        raise ArtifactError(f"{folder} holds no model files")
    stats = {str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns] for p in files}
    cache = folder / FINGERPRINT_CACHE
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("files") == stats and isinstance(cached.get("fingerprint"), str):
            return cached["fingerprint"]
    except (OSError, ValueError):
        pass
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(folder)).encode())
        digest.update(file_sha256(p).encode())
    fingerprint = digest.hexdigest()[:16]
    if "site-packages" not in folder.resolve().parts:
        try:
            write_json(cache, {"fingerprint": fingerprint, "files": stats})
        except OSError:
            pass
    return fingerprint


def _skipped_folder(name: str) -> bool:
    """Folders of a model folder that are not the model: trainer checkpoints, work folders, hidden folders."""
    return name.startswith(("checkpoint", ".")) or name.endswith(".work")


def copy_model(source: str | Path, target: str | Path) -> dict[str, int]:
    """Copy model folder ``source`` to ``target`` (a new folder): hard links where the file system allows, else copies.

    ``checkpoint*`` folders, training work folders (``*.work``) and hidden folders are left out. A hard-linked file
    shares its bytes with the source, so a model changed in place after the build changes the copy too; loading an
    index checks the model's fingerprint and refuses it then.

    Returns:
        How many files were ``linked`` and ``copied``.

    Raises:
        ArtifactError: ``source`` is not a folder.
    """
    source, target = Path(source), Path(target)
    if not source.is_dir():
        raise ArtifactError(f"model folder {source} is missing")
    counts = {"linked": 0, "copied": 0}
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if not _skipped_folder(d))
        here = target / Path(dirpath).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            try:
                os.link(Path(dirpath) / name, here / name)  # follows a symbolic link to its file
                counts["linked"] += 1
            except OSError:  # another file system, no permission to link, or links unsupported
                shutil.copy2(Path(dirpath) / name, here / name)
                counts["copied"] += 1
    return counts


def index_model_dir(folder: str | Path, built_with: dict[str, Any]) -> Path:
    """The model folder an index folder's manifest names: ``folder/model`` (self-contained), or an absolute path.

    Indexes written before the model was copied into them record the model's absolute path instead.

    Raises:
        ArtifactError: a relative path that leaves ``folder``.
    """
    path = Path(built_with["path"])
    if path.is_absolute():
        return path
    if ".." in path.parts:
        raise ArtifactError(f"index {folder}: the manifest's model path {path} leaves the index folder")
    return Path(folder) / path


def write_manifest(folder: str | Path, kind: str, **fields: Any) -> dict[str, Any]:
    """Write ``manifest.json`` into ``folder`` and return it."""
    manifest = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "towersearch_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **fields,
    }
    write_json(Path(folder) / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path, kind: str) -> dict[str, Any]:
    """Read and check a folder's manifest.

    Raises:
        ArtifactError: no manifest, another kind of folder, or a format this version cannot read.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder} is not a towersearch {kind} folder (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc.msg}") from None
    if manifest.get("kind") != kind:
        raise ArtifactError(f"{folder} holds a {manifest.get('kind')!r} folder, not a {kind!r} one")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{folder} has format version {manifest.get('format_version')}; this towersearch reads "
            f"{FORMAT_VERSION}: rebuild it"
        )
    return manifest

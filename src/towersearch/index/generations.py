"""Index generations: every build writes a new folder, and one pointer file says which folder is served.

An index folder (``INDEX_DIR``) holds::

    CURRENT              the name of the generation to serve, on one line
    generations/<name>/  one complete build each: manifest.json, the index files and model/ (the towers)
    .lock                locked by a build while it runs (an fcntl lock; nothing is stored in it)

``<name>`` is the build's UTC start time and a short random suffix (``20260101T120000123456Z-3f9a1c``), so names
sort by age. A build writes into a hidden ``generations/.<name>.tmp`` folder, flushes it to disk, renames it to
``<name>`` and then switches ``CURRENT`` with one :func:`os.replace` of a temporary file. A reader that reads
``CURRENT`` once (:func:`resolve`) therefore gets either the previous generation or the new one, each complete,
never a missing folder or a mix of the two. A build that fails or is killed leaves ``CURRENT`` and the generation it
names untouched; its hidden folder is removed on failure, or by the next build if the process was killed.

After a switch, :func:`cleanup` keeps the current generation and the one before it (``keep=2``): a server that still
serves the previous generation has its files loaded and keeps working until it reloads; a generation is deleted
only once a second newer build has been switched to. The generation ``CURRENT`` names is never deleted. Builds into
one ``INDEX_DIR`` run one at a time (the second waits for the lock).

A build can also *stage* its generation (``new_generation(..., activate=False)``): written and renamed into place,
``CURRENT`` untouched, so it can be judged before it is served; :func:`promote` then switches to it (only if
``CURRENT`` still names the generation it was judged against) and :func:`discard` deletes it. ``towersearch
refresh`` (:mod:`towersearch.loop`) works this way.

An index written before generations existed (its files directly in ``INDEX_DIR``, no ``CURRENT``) still loads:
:func:`resolve` returns ``INDEX_DIR`` itself for it. The first build into such a folder adds ``CURRENT`` and
``generations/`` beside the old files, which count as the previous generation and are removed by the build after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from towersearch.errors import ArtifactError, ConfigError
from towersearch.index.artifacts import MANIFEST

CURRENT = "CURRENT"
"""The pointer file: the name of the generation to serve."""
GENERATIONS = "generations"
"""The folder of generations inside an index folder."""
LOCK = ".lock"
TMP_SUFFIX = ".tmp"
LEGACY_FILES = (
    MANIFEST,  # first, so that a half-removed old index no longer looks like one
    "products.parquet",
    "embeddings.npy",
    "ann.faiss",
    "bm25",
    "head_queries.json",
    "head_queries.npy",
    "suggest.jsonl",
    "suggest_embeddings.npy",
    "suggest_config.json",
    "suggest_modifiers.json",
)
"""What ``towersearch index`` wrote directly into ``INDEX_DIR`` before generations existed."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Generation:
    """A generation being written.

    Args:
        name: Its name, as ``CURRENT`` will hold it once the build succeeds.
        path: The folder to write into (a hidden temporary folder until the build succeeds).
    """

    name: str
    path: Path


def generation_name() -> str:
    """A new generation name: UTC time to the microsecond and 6 random hex digits, so names sort by age."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(3)}"


def _read_current(root: Path) -> str | None:
    """The name ``CURRENT`` holds, or None when there is no ``CURRENT`` file."""
    path = root / CURRENT
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from None
    name = text.strip()
    if not _NAME.fullmatch(name):
        raise ArtifactError(
            f"{path} does not name a generation (it holds {name[:60]!r}): rebuild the index with `towersearch index`"
        )
    return name


def current_generation(root: str | Path) -> Path | None:
    """The generation folder ``CURRENT`` names, reading ``CURRENT`` once; None when the folder has no ``CURRENT``.

    Raises:
        ArtifactError: ``CURRENT`` is unreadable, holds something other than a generation name, or names a
            generation that is missing.
    """
    root = Path(root)
    name = _read_current(root)
    if name is None:
        return None
    folder = root / GENERATIONS / name
    if not folder.is_dir():
        raise ArtifactError(
            f"{root / CURRENT} names generation {name}, but {folder} is missing: rebuild the index with "
            "`towersearch index`"
        )
    return folder


def resolve(root: str | Path) -> Path:
    """The folder to load for index folder ``root``: the current generation, or ``root`` itself (older layout).

    Raises:
        ArtifactError: as :func:`current_generation`, or ``root`` has generations but no finished build.
    """
    root = Path(root)
    folder = current_generation(root)
    if folder is not None:
        return folder
    if (root / GENERATIONS).is_dir() and not (root / MANIFEST).is_file():
        raise ArtifactError(f"{root} has no finished index build yet (no {CURRENT}): run `towersearch index` again")
    return root


def index_root(folder: str | Path) -> Path:
    """The index folder (``INDEX_DIR``) a loaded folder belongs to: the parent of ``generations/`` or itself."""
    folder = Path(folder)
    if folder.parent.name == GENERATIONS and (folder.parent.parent / CURRENT).is_file():
        return folder.parent.parent
    return folder


def generations(root: str | Path) -> list[str]:
    """The names of the complete generations in ``root``, oldest first."""
    folder = Path(root) / GENERATIONS
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold ``root/.lock`` exclusively (blocking); the kernel releases it if the process dies."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: builds are not serialised
        yield
        return
    with open(root / LOCK, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk, so a power cut cannot leave a switched-to hole."""
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def switch(root: str | Path, name: str) -> str | None:
    """Point ``root/CURRENT`` at generation ``name`` atomically and return the name it pointed at before.

    ``CURRENT`` is written to a temporary file beside it and renamed over it, so readers see the old name or the new.

    Raises:
        ArtifactError: ``name`` is not a complete generation of ``root``.
    """
    root = Path(root)
    if not _NAME.fullmatch(name) or not (root / GENERATIONS / name / MANIFEST).is_file():
        raise ArtifactError(f"cannot switch {root} to {name!r}: it is not a complete generation of this index")
    try:
        previous = _read_current(root)
    except ArtifactError:
        previous = None
    fd, tmp = tempfile.mkstemp(prefix=f".{CURRENT}.", suffix=TMP_SUFFIX, dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(name + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, root / CURRENT)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _fsync(root)
    return previous


def _remove(path: Path) -> None:
    """Delete a folder: first renamed to a hidden name, so a crash mid-delete never leaves a half generation."""
    trash = path.with_name(f".{path.name}.{secrets.token_hex(3)}.trash")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_leftovers(root: Path) -> None:
    """Delete what dead builds left: hidden folders in ``generations/`` and temporary ``CURRENT`` files."""
    folder = root / GENERATIONS
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith("."):
                _delete(p)
    for p in root.glob(f".{CURRENT}.*{TMP_SUFFIX}"):
        p.unlink(missing_ok=True)


def _cleanup_locked(root: Path, keep: int) -> list[str]:
    _remove_leftovers(root)
    current = _read_current(root)
    if current is None:  # nothing switched to yet: delete no complete generation
        return []
    names = generations(root)
    older = [n for n in names if n < current]
    kept = {current, *(older[-(keep - 1) :] if keep > 1 else [])}
    removed = [n for n in names if n not in kept]
    for name in removed:
        _remove(root / GENERATIONS / name)
    if len(kept) >= keep and (root / MANIFEST).is_file():  # the pre-generations index is now older than `keep`
        for name in LEGACY_FILES:
            _delete(root / name)
        removed.append("(files of the older layout)")
    return removed


def cleanup(root: str | Path, keep: int = 2) -> list[str]:
    """Delete old generations: keep the current one and the ``keep - 1`` newest ones older than it.

    Also deletes what dead builds left (hidden temporary folders), generations newer than the current one (a build
    killed between finishing and switching), and the files of the older layout once ``keep`` generations exist.
    Waits for a running build to finish first. Returns the names deleted.

    Raises:
        ConfigError: ``keep`` is below 1 (the current generation is always kept).
    """
    if keep < 1:
        raise ConfigError(f"keep must be >= 1 (the current generation is always kept), got {keep}")
    root = Path(root)
    if not root.is_dir():
        return []
    with _locked(root):
        return _cleanup_locked(root, keep)


@contextlib.contextmanager
def new_generation(root: str | Path, *, keep: int = 2, activate: bool = True) -> Iterator[Generation]:
    """Write a new generation of index folder ``root`` and switch ``CURRENT`` to it when the block succeeds.

    Yields a :class:`Generation` whose ``path`` is a hidden temporary folder. On success the folder is flushed to
    disk, renamed to its name, ``CURRENT`` is switched to it (:func:`switch`) and old generations are deleted
    (:func:`cleanup` with ``keep``). On any error, Ctrl-C included, the temporary folder is deleted and ``CURRENT``
    is left as it was. Builds into the same ``root`` run one at a time.

    With ``activate=False`` the generation is flushed and renamed into place but ``CURRENT`` is left as it is and
    nothing is deleted: the generation is *staged*, complete and loadable by its folder, not served. Switch to it
    with :func:`promote` or delete it with :func:`discard`; until then the next build, update or :func:`cleanup`
    deletes it as a leftover (a generation newer than the current one).

    Raises:
        ConfigError: ``keep`` is below 1.
        ArtifactError: ``root`` exists and is not a folder.
    """
    if keep < 1:
        raise ConfigError(f"keep must be >= 1 (the current generation is always kept), got {keep}")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ArtifactError(f"index folder {root} exists and is not a folder")
    (root / GENERATIONS).mkdir(parents=True, exist_ok=True)
    with _locked(root):
        _remove_leftovers(root)  # we hold the lock: any hidden folder is from a build that died
        name = generation_name()
        tmp = root / GENERATIONS / f".{name}{TMP_SUFFIX}"
        tmp.mkdir()
        try:
            yield Generation(name, tmp)
            _fsync_tree(tmp)
            os.replace(tmp, root / GENERATIONS / name)
            _fsync(root / GENERATIONS)
            if activate:
                switch(root, name)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if activate:
            _cleanup_locked(root, keep)


def promote(root: str | Path, name: str, *, expected: str | None, keep: int = 2) -> list[str]:
    """Switch ``CURRENT`` to the staged generation ``name`` if ``CURRENT`` still names ``expected``.

    The check and the switch happen under the build lock, so no build or update can switch in between: a staged
    candidate judged against the generation ``expected`` never replaces a newer one (a catalogue update that
    landed meanwhile, say). After the switch old generations are deleted as after a build (:func:`cleanup` with
    ``keep``). Returns the names deleted.

    Args:
        root: The index folder.
        name: The staged generation (written with ``new_generation(..., activate=False)``).
        expected: The generation ``CURRENT`` must name now; None for an index of the older layout (no ``CURRENT``).
        keep: Generations kept after the switch, the new one included.

    Raises:
        ConfigError: ``keep`` is below 1.
        ArtifactError: ``CURRENT`` no longer names ``expected`` (nothing is switched), or ``name`` is not a complete
            generation of ``root`` (deleted meanwhile by another build's clean-up, say).
    """
    if keep < 1:
        raise ConfigError(f"keep must be >= 1 (the current generation is always kept), got {keep}")
    root = Path(root)
    with _locked(root):
        current = _read_current(root)
        if current != expected:
            raise ArtifactError(
                f"{root / CURRENT} names {current or 'no generation'} now, not {expected or 'no generation'} as when "
                f"generation {name} was judged against it (another build or update switched meanwhile): not switching"
            )
        switch(root, name)
        return _cleanup_locked(root, keep)


def rollback(root: str | Path, to: str | None = None) -> tuple[str, str]:
    """Serve an earlier generation again: switch ``CURRENT`` to ``to``, or by default to the newest generation older
    than the current one (the one a build keeps, :func:`cleanup`). Nothing is deleted, so the generation rolled
    back from can be switched to again with ``to``; the next build or update deletes it as older generations are
    (it is newer than ``CURRENT`` then, and only older ones are kept). A running service keeps serving what it
    loaded until it reloads (``POST /admin/reload``). Catalogue updates applied since the target generation are
    undone with it. Returns ``(previous, now)``.

    Raises:
        ArtifactError: no generation is current, there is no older one, or ``to`` is not a complete generation.
    """
    root = Path(root)
    if not (root / CURRENT).is_file():
        raise ArtifactError(f"{root} has no current generation to roll back from (no {CURRENT} file)")
    with _locked(root):
        current = _read_current(root)
        if current is None:
            raise ArtifactError(f"{root} has no current generation to roll back from")
        names = generations(root)
        if to is None:
            older = [n for n in names if n < current]
            if not older:
                raise ArtifactError(
                    f"{root} keeps no generation older than {current} (generations: {', '.join(names)})"
                )
            to = older[-1]
        elif to not in names:
            raise ArtifactError(f"{root} has no generation {to!r} (generations: {', '.join(names)})")
        if to == current:
            raise ArtifactError(f"{root} already serves generation {to}")
        collection = _milvus_collection(root, to)
        for later in (n for n in names if n > to):
            if collection is not None and _milvus_collection(root, later) == collection:
                raise ArtifactError(
                    f"cannot switch {root} to {to}: it shares the Milvus collection {collection[1]!r} at "
                    f"{collection[0]} with the later generation {later}, a catalogue update that deleted the vectors "
                    "it replaced; build the index again instead"
                )
        switch(root, to)
        return current, to


def _milvus_collection(root: Path, name: str) -> tuple[str, str] | None:
    """``(uri, collection)`` of a generation on Milvus, else None (catalogue updates on Milvus write into the
    collection of the generation they start from, so two generations can share one)."""
    path = root / GENERATIONS / name / MANIFEST
    try:
        ann = json.loads(path.read_text(encoding="utf-8")).get("ann") or {}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}") from None
    return (ann.get("milvus_uri"), ann.get("collection_name")) if ann.get("kind") == "milvus" else None


def discard(root: str | Path, name: str) -> bool:
    """Delete generation ``name`` of ``root`` unless ``CURRENT`` names it; returns whether it was deleted.

    Waits for a running build first. A missing generation is not an error (False).
    """
    root = Path(root)
    folder = root / GENERATIONS / name
    if not _NAME.fullmatch(name) or not folder.is_dir():
        return False
    with _locked(root):
        if not folder.is_dir() or _read_current(root) == name:
            return False
        _remove(folder)
        return True

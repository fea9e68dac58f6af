"""The ITEMS loop: the live service's events retrain the towers, and a new index goes live only if it is not worse.

:func:`refresh` (``towersearch refresh``) runs one turn of it against an index folder and the event store the
service records into:

1. **Export** the event store's search log (:meth:`~towersearch.events.EventStore.iter_log_events`, aggregated as
   ``events export`` writes it); events about products the catalogue no longer has are left out and counted.
2. **Gate queries**: a seeded share of the log's engaged queries (a click, cart or purchase) is held out and graded
   from the log (purchase 3, add-to-cart 2, click 1), unless judgements are given.
3. **Train** on the rest (plus, whole, an earlier search log when one is given: typically the log the serving
   towers were trained on), warm-started from the serving towers (``train --init-model``: the current generation's
   ``model/``), with the serving towers' text format and towers kind.
4. **Build** the candidate as a new generation of the index folder, *staged*: complete on disk, ``CURRENT`` not
   switched (:func:`~towersearch.index.build.build_index` with ``activate=False``), with the serving generation's
   build settings (ANN kind and parameters, BM25 fields and stemmer, autocomplete settings and blocklist) and its
   review insights.
5. **Gate**: NDCG@10 of each index's default retriever on the gate queries, with the code ``evaluate --index`` runs
   (:meth:`~towersearch.search.engine.SearchEngine.load` and :func:`~towersearch.evaluation.report.evaluate`).
6. **Switch** ``CURRENT`` to the candidate only when its NDCG@10 ≥ the serving index's − ``tolerance``, and only if
   ``CURRENT`` still names the generation it was judged against (:func:`~towersearch.index.generations.promote`,
   under the build lock); otherwise the candidate generation is deleted
   (:func:`~towersearch.index.generations.discard`) and ``CURRENT`` stays as it was.
7. **Reload** a running service (``POST /admin/reload``) after a switch, when asked to.

Every step before the switch only reads the serving generation, and the switch is one atomic rename, so a crash or
Ctrl-C at any step leaves the serving generation serving: a killed run leaves at most a staged generation (deleted
by the next build, update or refresh as a generation newer than ``CURRENT``) and a hidden ``.refresh-*`` work folder
in the index folder (deleted by the next refresh). Refreshes of one index folder run one at a time.

Known bias: the gate's queries are new to the candidate, but the serving towers may have trained on some of them in
an earlier refresh (the same engaged query recurs in the store). That favours the serving index, so the gate errs
towards keeping it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import random
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from towersearch.data.catalog import Catalog, load_catalog
from towersearch.data.judgements import Judgements, load_judgements
from towersearch.data.schema import LogEvent, normalize_query
from towersearch.errors import ConfigError, ServiceError
from towersearch.http_client import Client, JsonClient, detail
from towersearch.index.artifacts import INDEX_KIND, index_model_dir, read_manifest
from towersearch.index.generations import GENERATIONS, current_generation, discard, promote, resolve
from towersearch.model import model_meta, model_text_config
from towersearch.training.config import TrainConfig

if TYPE_CHECKING:
    from towersearch.index.build import IndexConfig

WORK_PREFIX = ".refresh-"
"""Hidden work folders of a refresh inside the index folder (the trained towers before the build copies them)."""
LOCK = ".refresh.lock"
"""Locked while a refresh of the index folder runs."""
TOKEN_ENV = "TOWERSEARCH_ADMIN_TOKEN"
TOKEN_FILE_ENV = "TOWERSEARCH_ADMIN_TOKEN_FILE"


@dataclass(frozen=True)
class RefreshConfig:
    """Options of ``towersearch refresh`` (each field is the flag of the same name; ``reload_url`` is ``--reload``)."""

    gate_share: float = field(
        default=0.2, metadata={"help": "Share of the log's engaged queries held out to judge the candidate."}
    )
    min_gate_queries: int = field(
        default=20, metadata={"help": "Fewest gate queries: a log with fewer engaged queries to hold out is an error."}
    )
    max_gate_queries: int = field(default=1000, metadata={"help": "Hold out at most this many gate queries."})
    tolerance: float = field(
        default=0.005,
        metadata={"help": "Switch when the candidate's NDCG@10 is at least the serving index's minus this."},
    )
    max_steps: int | None = field(
        default=600, metadata={"help": "Optimiser steps of the warm-started training (as train --max-steps)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the gate split and of training."})
    keep: int = field(default=2, metadata={"help": "Generations kept after a switch, the new one included."})
    reload_url: str | None = field(
        default=None,
        metadata={
            "help": "After a switch, POST /admin/reload to the service at this URL (token from "
            "TOWERSEARCH_ADMIN_TOKEN or TOWERSEARCH_ADMIN_TOKEN_FILE)."
        },
    )
    reload_timeout: float = field(default=300.0, metadata={"help": "Seconds to wait for the service to reload."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})

    def __post_init__(self) -> None:
        if not 0.0 < self.gate_share < 1.0:
            raise ConfigError(f"gate_share must be between 0 and 1 (exclusive), got {self.gate_share}")
        if self.min_gate_queries < 1:
            raise ConfigError(f"min_gate_queries must be >= 1, got {self.min_gate_queries}")
        if self.max_gate_queries < self.min_gate_queries:
            raise ConfigError(
                f"max_gate_queries must be >= min_gate_queries ({self.min_gate_queries}), got {self.max_gate_queries}"
            )
        if not 0.0 <= self.tolerance < 1.0:
            raise ConfigError(f"tolerance must be in [0, 1) (an NDCG@10 difference), got {self.tolerance}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.keep < 1:
            raise ConfigError(f"keep must be >= 1 (the current generation is always kept), got {self.keep}")
        if self.reload_timeout <= 0:
            raise ConfigError(f"reload_timeout must be > 0 seconds, got {self.reload_timeout}")


# -- the gate ------------------------------------------------------------------------------------------------------


def gate_needs(config: RefreshConfig) -> int:
    """The fewest engaged queries a log needs for ``config.gate_share`` of them to reach ``min_gate_queries``."""
    return math.ceil(config.min_gate_queries / config.gate_share - 1e-9)


def hold_out_gate(
    events: Sequence[LogEvent], config: RefreshConfig, *, source: str = "the event store"
) -> tuple[set[str], Judgements]:
    """Choose the gate queries: a seeded share of the log's engaged queries, graded from the log.

    A product's grade for a query is the best thing shoppers did with it: purchase 3, add-to-cart 2, click 1
    (:func:`~towersearch.training.ranking.log_labels`); shown-only products are left out (they add no gain).

    Args:
        events: The log (queries in any form: they are normalised).
        config: ``gate_share``, ``min_gate_queries``, ``max_gate_queries`` and ``seed``.
        source: What the log is, for the error message.

    Returns:
        The gate queries (normalised) and their judgements.

    Raises:
        ConfigError: too few engaged queries to hold ``min_gate_queries`` out; the message says how many the log
            has and how many are needed.
    """
    from towersearch.training.ranking import log_labels

    labels = log_labels(events)
    engaged = sorted(q for q, grades in labels.items() if any(g > 0 for g in grades.values()))
    n = min(config.max_gate_queries, math.floor(len(engaged) * config.gate_share + 1e-9))
    if n < config.min_gate_queries:
        raise ConfigError(
            f"{source} has {len(engaged)} engaged queries (queries with a click, add-to-cart or purchase); refresh "
            f"holds {config.gate_share:.0%} of them out to judge the candidate, at least {config.min_gate_queries}, "
            f"so it needs at least {gate_needs(config)}: let the service record more searches, lower "
            "--min-gate-queries, or give --judgements"
        )
    chosen = set(random.Random(config.seed).sample(engaged, n))
    judged = {q: {p: g for p, g in labels[q].items() if g > 0} for q in sorted(chosen)}
    return chosen, judged


def without_queries(events: Sequence[LogEvent], queries: set[str]) -> list[LogEvent]:
    """The events whose normalised query is not in ``queries``."""
    return [e for e in events if normalize_query(e.query) not in queries]


def evaluate_index(folder: str | Path, judgements: Judgements) -> dict[str, Any]:
    """NDCG@10 of an index folder's default retriever on ``judgements``, as ``evaluate --index`` computes it.

    ``folder`` is an index folder (its ``CURRENT`` generation) or one generation's folder, staged ones included.

    Returns:
        ``{"generation", "mode", "ndcg@10", "queries", "seconds"}``.
    """
    from towersearch.evaluation.report import evaluate
    from towersearch.search.engine import MODE_RETRIEVER, SearchEngine

    start = time.perf_counter()
    engine = SearchEngine.load(folder)
    name = MODE_RETRIEVER[engine.default_mode]
    result = evaluate({name: engine.retrievers[name]}, judgements)
    info = {
        "generation": engine.manifest.get("generation"),
        "mode": engine.default_mode,
        "ndcg@10": result.metrics[name]["ndcg@10"],
        "queries": result.queries,
        "seconds": round(time.perf_counter() - start, 1),
    }
    del engine, result
    gc.collect()  # one index in memory at a time
    return info


def gate_decision(candidate: float, serving: float, tolerance: float) -> tuple[bool, str]:
    """Whether the candidate may go live (NDCG@10 ``candidate`` ≥ ``serving`` − ``tolerance``), and why, in words."""
    if candidate >= serving - tolerance:
        change = f"{candidate - serving:+.4f}"
        return True, (
            f"switched: candidate NDCG@10 {candidate:.4f} against the serving index's {serving:.4f} ({change}; "
            f"tolerance {tolerance:g})"
        )
    return False, (
        f"refused: candidate NDCG@10 {candidate:.4f} is {serving - candidate:.4f} below the serving index's "
        f"{serving:.4f} (tolerance {tolerance:g})"
    )


# -- the steps' settings -------------------------------------------------------------------------------------------


def warm_start_config(init_model: str | Path, config: RefreshConfig) -> TrainConfig:
    """Training options for a warm start from ``init_model``: its text format and towers kind (from its
    ``towersearch.json``; training's defaults for a model towersearch did not train), ``config``'s steps and seed,
    everything else training's defaults."""
    folder = Path(init_model)
    options: dict[str, Any] = {}
    meta = model_meta(folder)
    if meta is not None:
        towers = meta.get("towers")
        options["text"] = model_text_config(folder)
        if towers in ("shared", "distinct"):
            options["towers"] = towers
    return TrainConfig(max_steps=config.max_steps, seed=config.seed, progress=config.progress, **options)


def serving_insights(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The review insights of the generation in ``folder`` as ``build_index`` arguments, so the candidate keeps
    them (products the new catalogue lacks are dropped by the build); empty for an index without them."""
    from towersearch.reviews.insights import load_index_insights

    insights = load_index_insights(folder, manifest)
    if insights is None:
        return {}
    info = dict(manifest.get("review_insights") or {})
    for key in ("path", "products", "dropped_products"):  # the build counts them again
        info.pop(key, None)
    return {"insights": insights, "insights_info": info}


def index_config_like(manifest: dict[str, Any], folder: Path, work: Path, *, progress: bool) -> IndexConfig:
    """The build settings of the generation in ``folder`` (its ``manifest``), for the candidate: the same ANN kind
    and parameters, BM25 fields and stemmer, encoder backend, autocomplete settings and blocklist (written to a
    file in ``work``)."""
    from dataclasses import fields

    from towersearch.index.build import IndexConfig
    from towersearch.search.ann import AnnConfig
    from towersearch.search.autocomplete import SuggestConfig

    ann_info = manifest.get("ann", {})
    ann = AnnConfig(**{f.name: ann_info[f.name] for f in fields(AnnConfig) if f.name in ann_info})
    options: dict[str, Any] = {"ann": ann, "progress": progress}
    bm25 = manifest.get("bm25", {})
    if bm25.get("fields"):
        options["bm25_fields"] = tuple(bm25["fields"])
    if bm25.get("stemmer"):
        options["stemmer"] = bm25["stemmer"]
    if manifest.get("model", {}).get("encoder") == "torch":
        options["encoder"] = "torch"
    suggest_file = folder / "suggest_config.json"
    if suggest_file.is_file():
        options["suggest"] = SuggestConfig(**json.loads(suggest_file.read_text(encoding="utf-8")))
    blocklist = manifest.get("suggest", {}).get("blocklist")
    if blocklist:
        path = work / "blocklist.txt"
        path.write_text("".join(f"{phrase}\n" for phrase in blocklist), encoding="utf-8")
        options["blocklist"] = path
    return IndexConfig(**options)


def admin_token() -> str:
    """The service's admin token: ``TOWERSEARCH_ADMIN_TOKEN``, or the file ``TOWERSEARCH_ADMIN_TOKEN_FILE`` names.

    Raises:
        ConfigError: neither is set, both are, or the file is unreadable or empty.
    """
    token, token_file = os.environ.get(TOKEN_ENV), os.environ.get(TOKEN_FILE_ENV)
    if token and token_file:
        raise ConfigError(f"set {TOKEN_ENV} or {TOKEN_FILE_ENV}, not both")
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the admin token file {token_file} ({TOKEN_FILE_ENV}): {exc}") from None
    if not token:
        raise ConfigError(
            f"--reload needs the service's admin token in {TOKEN_ENV} (or a file named by {TOKEN_FILE_ENV})"
        )
    return token


def reload_service(client: Client, token: str) -> dict[str, Any]:
    """``POST /admin/reload`` to a running service; returns its answer (``reloaded``, ``generation``, …).

    Raises:
        ServiceError: the service cannot be reached or answers with an error (403: a wrong token; 409: the new index
            failed to load, and the service keeps serving the previous one).
    """
    response = client.post("/admin/reload", headers={"X-Admin-Token": token})
    if response.status_code != 200:
        raise ServiceError(f"POST /admin/reload answered {response.status_code}: {detail(response)}")
    return response.json()


# -- the loop ------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _refresh_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.refresh.lock`` without waiting; a second refresh of the same folder is an error."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: refreshes are not serialised
        yield
        return
    with open(root / LOCK, "a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another refresh of {root} is running; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _read_events(path: Path, product_ids: set[str], what: str) -> tuple[list[LogEvent], dict[str, Any]]:
    """A log (an event store or a log file), with events about products not in the catalogue left out."""
    from towersearch.data import load_log
    from towersearch.events.store import is_event_store, load_store_log

    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    reader = load_store_log if is_event_store(path) else load_log
    events, report = reader(path, product_ids=product_ids, skip_bad_rows=True)
    return events, {
        "path": str(path),
        "rows": report.rows,
        "loaded": report.loaded,
        "skipped": dict(report.skipped),
        "engaged_queries": len({normalize_query(e.query) for e in events if e.event != "impression"}),
    }


def refresh(
    index_dir: str | Path,
    events_path: str | Path,
    *,
    catalog: str | Path | None = None,
    judgements: str | Path | None = None,
    model: str | Path | None = None,
    log: str | Path | None = None,
    out_model: str | Path | None = None,
    config: RefreshConfig | None = None,
    train_config: TrainConfig | None = None,
    base_model: str | Path | None = None,
    client: Client | None = None,
) -> dict[str, Any]:
    """One turn of the loop: retrain on the service's events, build, gate, and switch only if not worse.

    See the module docstring for the steps and what a crash leaves.

    Args:
        index_dir: The served index folder (``CURRENT`` names the serving generation).
        events_path: The event store the service records into.
        catalog: The catalogue to train on and index; default: the serving generation's ``products.parquet``
            (which holds the catalogue updates applied to it).
        judgements: Judge the candidate on these instead of holding log queries out (then all of the log trains).
        model: Warm-start from this model folder instead of the serving generation's ``model/``.
        log: An earlier search log (a log file or another event store), typically the one the serving towers were
            trained on, added whole to the event store's for training, head queries and autocomplete. The gate's
            queries are held out of the event store's log only: the serving towers and the candidate then share the
            earlier history, and neither has seen the gate's events.
        out_model: Keep the trained towers in this folder (default: a work folder deleted at the end; the candidate
            generation holds its own copy either way). It must not be inside ``INDEX_DIR/generations``.
        config: The refresh options.
        train_config: Training options; default :func:`warm_start_config` of the model.
        base_model: The untrained reference model of training (default all-MiniLM-L6-v2; tests pass a tiny one).
        client: The HTTP client for ``config.reload_url`` (default: :class:`~towersearch.http_client.JsonClient`).

    Returns:
        ``{"index", "decision", "message", "switched", "current", "serving", "candidate", "tolerance", "difference",
        "gate", "log", "train", "removed", "reload", "seconds"}``: the gate queries' source and count, both indexes'
        generation, mode and NDCG@10, the generation ``CURRENT`` names afterwards, and seconds per step.

    Raises:
        ConfigError: bad options, too few engaged queries for the gate, another refresh running, or no ``--reload``
            token.
        ArtifactError: the index folder or a model is missing or broken, or ``CURRENT`` changed during the refresh
            (nothing switched).
        DataError: bad judgements.
    """
    from towersearch.index.build import build_index
    from towersearch.training.train import train

    config = config or RefreshConfig()
    root = Path(index_dir)
    events_path = Path(events_path)
    if not root.is_dir():
        raise ConfigError(f"index folder {root} does not exist: build one with `towersearch index` first")
    token = admin_token() if config.reload_url else None  # fail before the work, not after the switch
    if config.reload_url and client is None:
        client = JsonClient(config.reload_url, timeout=config.reload_timeout)
    if out_model is not None and _inside(Path(out_model), root / GENERATIONS):
        raise ConfigError(f"--out-model {out_model} is inside {root / GENERATIONS}; choose a folder outside it")
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(step: str, since: float) -> float:
        now = time.perf_counter()
        seconds[step] = round(now - since, 1)
        return now

    with _refresh_lock(root):
        for stale in root.glob(f"{WORK_PREFIX}*"):  # from a refresh that was killed
            shutil.rmtree(stale, ignore_errors=True)
        serving_folder = resolve(root)
        current = current_generation(root)
        serving_name = current.name if current is not None else None
        manifest = read_manifest(serving_folder, INDEX_KIND)
        init_model = Path(model) if model is not None else index_model_dir(serving_folder, manifest["model"])
        cat: Catalog = load_catalog(catalog if catalog is not None else serving_folder / "products.parquet")
        ids = set(cat.ids)
        t = time.perf_counter()

        store_events, log_info = _read_events(events_path, ids, "event store")
        extra_events: list[LogEvent] = []
        extra_info = None
        if log is not None:
            extra_events, extra_info = _read_events(Path(log), ids, "search log")
        t = lap("export", t)

        if judgements is not None:
            judged, _ = load_judgements(judgements, product_ids=ids)
            if not any(g >= 1 for grades in judged.values() for g in grades.values()):
                raise ConfigError(f"{judgements} grades no product >= 1: there is nothing to judge the candidate on")
            gate_queries: set[str] = set()
            gate = {"source": "judgements", "path": str(judgements), "queries": len(judged)}
        else:
            gate_queries, judged = hold_out_gate(store_events, config, source=f"the event store {events_path}")
            gate = {"source": "log", "queries": len(judged), "share": config.gate_share, "seed": config.seed}
        train_events = without_queries(store_events, gate_queries) + extra_events  # both sides saw the earlier log
        training = train_config or warm_start_config(init_model, config)

        work = root / f"{WORK_PREFIX}{secrets.token_hex(4)}"
        work.mkdir()
        try:
            towers = Path(out_model) if out_model is not None else work / "model"
            summary = train(
                cat, towers, events=train_events, config=training, base_model=base_model, init_model=init_model
            )
            t = lap("train", t)
            built = build_index(
                cat,
                root,
                events=store_events + extra_events,
                model=towers,
                config=index_config_like(manifest, serving_folder, work, progress=config.progress),
                catalog_path=catalog,
                keep=config.keep,
                activate=False,
                **serving_insights(serving_folder, manifest),
            )
            candidate_name = built["generation"]
            t = lap("index", t)
            try:
                serving = evaluate_index(serving_folder, judged)
                candidate = evaluate_index(root / GENERATIONS / candidate_name, judged)
                t = lap("gate", t)
                accept, message = gate_decision(candidate["ndcg@10"], serving["ndcg@10"], config.tolerance)
                removed: list[str] = []
                if accept:
                    removed = promote(root, candidate_name, expected=serving_name, keep=config.keep)
                else:
                    discard(root, candidate_name)
                    removed = [candidate_name]
                t = lap("switch", t)
            except BaseException:
                with contextlib.suppress(Exception):  # the error that got us here is the one to report
                    discard(root, candidate_name)  # never CURRENT's: a candidate judged or not, it is not served
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)

    reload: dict[str, Any] | None = None
    if accept and config.reload_url:
        reload = {"url": config.reload_url}
        try:
            reload.update(ok=True, answer=reload_service(client, token))
        except ServiceError as exc:
            reload.update(ok=False, error=str(exc))
        t = lap("reload", t)
    seconds["total"] = round(time.perf_counter() - started, 1)
    now = current_generation(root)
    return {
        "index": str(root),
        "decision": "switched" if accept else "refused",
        "switched": accept,
        "message": message,
        "current": now.name if now is not None else None,
        "serving": {**serving, "ndcg@10": round(serving["ndcg@10"], 4)},
        "candidate": {
            **candidate,
            "ndcg@10": round(candidate["ndcg@10"], 4),
            "kept": accept,
            "model": str(out_model) if out_model is not None else None,
            "init_model": str(init_model),
        },
        "tolerance": config.tolerance,
        "difference": round(candidate["ndcg@10"] - serving["ndcg@10"], 4),
        "gate": gate,
        "log": {"events": log_info, "extra": extra_info, "train_rows": len(train_events)},
        "train": {
            "steps": summary["steps"],
            "seconds": summary["seconds"],
            "towers": summary["towers"],
            "pairs": summary["pairs"],
            "ranker": summary.get("ranker", {}),
        },
        "removed": removed,
        "reload": reload,
        "seconds": seconds,
    }

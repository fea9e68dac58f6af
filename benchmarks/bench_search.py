"""Search latency, index build time and memory, in process and over HTTP, plus a load test with a live reload.

    python benchmarks/bench_search.py [--sizes 10000 100000] [--instacart] [--requests 2000]
        [--http] [--load-test SECONDS] [--clients 32] [--model DIR] [--work /tmp/towersearch-bench-search]
    python benchmarks/bench_search.py --ratio [--requests 1000]

For each catalogue (the demo store scaled to each size, and with ``--instacart`` the 49,688 real Instacart products
from ``../shared/data/instacart-full``) an index is built with the untrained base model (or ``--model``; the towers
have the same size either way) in a child process, so its build time and peak memory stand alone. Then:

- in process: ``SearchEngine.search`` in hybrid mode for head queries (pre-encoded at build time: cache hits) and
  for queries never seen before (the query tower runs: cache misses);
- ``--http``: the same through ``towersearch serve`` on loopback, one request at a time;
- ``--load-test N``: on the largest demo catalogue, ``--clients`` concurrent clients for N seconds with a mix of head,
  tail and malformed queries, and one ``POST /admin/reload`` half-way; it records status codes, failures and
  latency percentiles.

Results go to ``results/search.json`` and ``results/search.md``. ``--ratio`` alone measures one number: the p50 of an
uncached ``GET /search`` on a 5,000-product demo index built without ``--model``, over the p50 of plain
sentence-transformers encoding one query with all-MiniLM-L6-v2, one after the other in one run
(``results/search_ratio.json``).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import RESULTS, SHARED, machine

TOKEN = "bench-token"


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# -- building ------------------------------------------------------------------------------------------------------
def prepare_demo(work: Path, size: int) -> tuple[Path, Path]:
    from towersearch.data.demo import DemoConfig, generate_demo_store

    data = work / f"demo-{size}"
    if not (data / "catalog.csv").is_file():
        generate_demo_store(data, DemoConfig(n_products=size, seed=0, n_searches=max(10_000, size // 5)))
    return data / "catalog.csv", data / "log.csv"


def prepare_instacart(work: Path) -> tuple[Path, None]:
    from towersearch.data.importers.instacart import import_instacart

    data = work / "instacart-full"
    if not (data / "catalog.csv").is_file():
        import_instacart(SHARED / "instacart-full", data, judgements=False)
    return data / "catalog.csv", None


def build(job: tuple) -> dict[str, Any]:
    """Child process: build one index from ``(catalog, log, out, model[, ann kind])``; returns the manifest's numbers
    and the child's peak memory."""
    catalog_path, log_path, out, model, *rest = job
    from towersearch.data import load_catalog, load_log
    from towersearch.index.build import IndexConfig, build_index
    from towersearch.search.ann import AnnConfig

    catalog = load_catalog(catalog_path)
    events = load_log(log_path)[0] if log_path else []
    config = IndexConfig(ann=AnnConfig(kind=rest[0] if rest else "auto"), progress=False)
    start = time.perf_counter()
    manifest = build_index(catalog, out, events=events, model=model, config=config, catalog_path=catalog_path)
    return {
        "products": len(catalog),
        "build_seconds": round(time.perf_counter() - start, 1),
        "encode_seconds": manifest["encode_seconds"],
        "ann": manifest["ann"],
        "head_queries": manifest["head_queries"],
        "peak_rss_mb": peak_rss_mb(),
    }


# -- queries -------------------------------------------------------------------------------------------------------
def query_sets(index: Path, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Head queries (pre-encoded) and unseen tail queries (name fragments plus a nonce word, so none repeats)."""
    from towersearch.data import load_catalog
    from towersearch.index.generations import resolve

    rng = random.Random(seed)
    folder = resolve(index)  # the current generation (or the folder itself, for an index of the older layout)
    heads = json.loads((folder / "head_queries.json").read_text())
    products = load_catalog(folder / "products.parquet").products
    hits = [rng.choice(heads) for _ in range(n)] if heads else []
    misses = []
    for i in range(n):
        words = rng.choice(products).name.lower().split()
        start = rng.randrange(max(1, len(words) - 1))
        misses.append(" ".join(words[start : start + rng.randint(1, 3)] + [f"x{i}"]))
    return hits, misses


def in_process(job: tuple[str, int, str]) -> dict[str, Any]:
    """Child process: load the engine and time searches of one mode, cached and uncached."""
    index, n, mode = job
    from towersearch.search.engine import SearchEngine

    start = time.perf_counter()
    engine = SearchEngine.load(index)
    load_seconds = time.perf_counter() - start
    gc.collect()
    gc.freeze()  # as the service does after loading (service.app.load_engine)
    hits, misses = query_sets(Path(index), n)
    if not hits:  # no log, no head queries: cached means the LRU cache, warmed with these queries once
        hits = [f"{q} again" for q in misses]
        for q in hits:
            engine.search(q, k=10, mode=mode)
    for q in hits[:50] + [f"warm up {i}" for i in range(20)]:
        engine.search(q, k=10, mode=mode)
    out: dict[str, Any] = {"load_seconds": round(load_seconds, 1)}
    for name, queries in (("cached", hits), ("uncached", misses)):
        ms = []
        for q in queries:
            t = time.perf_counter()
            engine.search(q, k=10, mode=mode)
            ms.append((time.perf_counter() - t) * 1000)
        out[name] = percentiles(ms)
    out["sources"] = {"cached": engine.query_vector(hits[0])[1], "uncached": engine.query_vector("zz9 unseen")[1]}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def interleaved(job: tuple[str, int, list[str]]) -> dict[str, Any]:
    """Child process: every mode on each query in turn (the order rotating), so drift of the machine during the run
    touches all modes alike; per mode, latency percentiles and those of its per-query excess over the first mode.

    An unseen query is encoded once and then cached, so each mode gets its own unseen variant of it."""
    index, n, modes = job
    from towersearch.search.engine import SearchEngine

    engine = SearchEngine.load(index)
    gc.collect()
    gc.freeze()
    hits, misses = query_sets(Path(index), n)
    for q in hits[:50] + [f"warm up {i}" for i in range(20)]:
        for mode in modes:
            engine.search(q, k=10, mode=mode)
    out: dict[str, Any] = {mode: {} for mode in modes}
    for kind, queries in (("cached", hits), ("uncached", misses)):
        ms: dict[str, list[float]] = {mode: [] for mode in modes}
        for i, q in enumerate(queries):
            turn = modes[i % len(modes) :] + modes[: i % len(modes)]
            for mode in turn:
                text = q if kind == "cached" else f"{q} {mode}"
                t = time.perf_counter()
                engine.search(text, k=10, mode=mode)
                ms[mode].append((time.perf_counter() - t) * 1000)
        for mode in modes:
            out[mode][kind] = percentiles(ms[mode])
            if mode != modes[0]:
                excess = [a - b for a, b in zip(ms[mode], ms[modes[0]], strict=True)]
                out[mode][f"{kind}_excess"] = percentiles(excess)
    return out


# -- HTTP ----------------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``towersearch serve`` in a child process on a free loopback port."""

    def __init__(self, index: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TOWERSEARCH_ADMIN_TOKEN": TOKEN}
        cli = [sys.executable, "-m", "towersearch.cli", "serve", str(index), "--port", str(self.port)]
        self.proc = subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> Server:
        import httpx

        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError("server did not come up in 300 s")

    def rss_mb(self) -> dict[str, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        return {k: round(int(fields[k].split()[0]) / 1024, 1) for k in ("VmRSS", "VmHWM") if k in fields}

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def over_http(server: Server, index: Path, n: int) -> dict[str, Any]:
    import httpx

    hits, misses = query_sets(index, n, seed=1)
    out: dict[str, Any] = {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        if not hits:  # no head queries: warm the LRU cache with these queries once
            hits = [f"{q} again" for q in misses]
            for q in hits:
                client.get("/search", params={"q": q})
        for q in hits[:50]:
            client.get("/search", params={"q": q})
        for name, queries in (("cached", hits), ("uncached", misses)):
            ms = []
            for q in queries:
                t = time.perf_counter()
                r = client.get("/search", params={"q": q, "k": 10, "mode": "hybrid"})
                ms.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
            out[name] = percentiles(ms)
    out["server_memory_mb"] = server.rss_mb()
    return out


def load_test(server: Server, index: Path, seconds: float, clients: int, events_rate: float = 0) -> dict[str, Any]:
    """``clients`` threads hammer /search with head, tail and malformed queries; one reload half-way. With
    ``events_rate``, one more client posts that many click events a second (in 20 batches, each on a search of its
    own), and afterwards the event store is counted: every acknowledged event must be there."""
    import httpx

    from towersearch.events import EventStore
    from towersearch.index.generations import index_root

    store_path = index_root(index) / "events.db"  # the service's default event store
    events_before = 0
    if events_rate and store_path.is_file():
        with EventStore(store_path, create=False) as store:
            events_before = store.counts()["events"]
    acked = {"events": 0, "batches": 0, "refused": 0}

    hits, misses = query_sets(index, 5000, seed=2)
    malformed = [{"q": ""}, {"q": "x" * 300}, {"q": "milk", "k": 0}, {"q": "milk", "k": 1000}]
    malformed.append({"q": "milk", "mode": "sideways"})
    stop = time.perf_counter() + seconds
    lock = threading.Lock()
    statuses: dict[str, int] = {}
    failures: list[str] = []
    ms: dict[str, list[float]] = {"head": [], "tail": [], "malformed": []}

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while time.perf_counter() < stop:
                roll = rng.random()
                kind = "head" if roll < 0.6 else "tail" if roll < 0.9 else "malformed"
                params = (
                    {"q": rng.choice(hits)} if kind == "head" and hits
                    else {"q": rng.choice(misses) + str(rng.randrange(10**6))} if kind != "malformed"
                    else rng.choice(malformed)
                )  # fmt: skip
                t = time.perf_counter()
                try:
                    code = client.get("/search", params=params).status_code
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = (time.perf_counter() - t) * 1000
                with lock:
                    statuses[str(code)] = statuses.get(str(code), 0) + 1
                    ms[kind].append(elapsed)

    def events_loop() -> None:
        rng = random.Random(99)
        per_batch = max(1, round(events_rate / 20))
        next_tick = time.perf_counter()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while time.perf_counter() < stop:
                try:
                    body = client.get("/search", params={"q": rng.choice(hits or misses)}).json()
                    shown = [r["product_id"] for r in body["results"]]
                    if not shown or not body.get("search_id"):
                        continue
                    batch = [{"search_id": body["search_id"], "product_id": shown[i % len(shown)], "event": "click",
                              "position": i % len(shown) + 1} for i in range(per_batch)]  # fmt: skip
                    response = client.post("/events", json={"events": batch})
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"events: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    statuses[f"events {response.status_code}"] = statuses.get(f"events {response.status_code}", 0) + 1
                    if response.status_code == 200:
                        acked["events"] += response.json()["stored"]
                        acked["batches"] += 1
                    else:
                        acked["refused"] += 1
                next_tick += 1 / 20
                time.sleep(max(0.0, next_tick - time.perf_counter()))

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    if events_rate:
        threads.append(threading.Thread(target=events_loop))
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    t = time.perf_counter()
    reload = httpx.post(server.url + "/admin/reload", headers={"X-Admin-Token": TOKEN}, timeout=300)
    reload_info = {"status": reload.status_code, "seconds": round(time.perf_counter() - t, 1)}
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    total = sum(v for k, v in statuses.items() if not k.startswith("events"))
    stored = None
    if events_rate:
        with EventStore(store_path, create=False) as store:
            stored = store.counts()["events"] - events_before
    return {
        "events": None
        if not events_rate
        else {
            "rate_asked": events_rate,
            "acknowledged": acked["events"],
            "acknowledged_per_second": round(acked["events"] / elapsed, 1),
            "refused_batches": acked["refused"],
            "stored": stored,
            "all_acknowledged_stored": stored is not None and stored >= acked["events"],
        },
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": sum(v for k, v in statuses.items() if k.split()[-1].startswith("5")),
        "failed_requests": len(failures),
        "failure_examples": failures[:5],
        "reload": reload_info,
        "latency": {kind: percentiles(v) for kind, v in ms.items() if v},
        "server_memory_mb": server.rss_mb(),
    }


def plain_encoding(queries: list[str]) -> dict[str, Any]:
    """Child process: plain sentence-transformers, all-MiniLM-L6-v2, one query at a time (the ratio's yardstick)."""
    from sentence_transformers import SentenceTransformer

    from towersearch.model import base_model_path

    model = SentenceTransformer(str(base_model_path()), device="cpu", local_files_only=True)
    for q in queries[:20]:
        model.encode([q])
    ms = []
    for q in queries:
        t = time.perf_counter()
        model.encode([q])
        ms.append((time.perf_counter() - t) * 1000)
    return percentiles(ms)


def ratio(work: Path, n: int) -> dict[str, Any]:
    """p50 of an uncached ``GET /search`` on a 5,000-product demo index built without a model, over the p50 of
    plain sentence-transformers encoding one query with all-MiniLM-L6-v2, measured one after the other."""
    catalog_path, log_path = prepare_demo(work, 5000)
    index = work / "indexes" / "ratio-demo-5000"
    build_info = child(build, (str(catalog_path), str(log_path), str(index), None))
    _, misses = query_sets(index, n, seed=3)
    plain = child(plain_encoding, misses)
    with Server(index) as server:
        http = over_http(server, index, n)
    return {
        "build": build_info,
        "plain_encode": plain,
        "http": http,
        "ratio_p50": round(http["uncached"]["p50_ms"] / plain["p50_ms"], 3),
    }


# -- main ----------------------------------------------------------------------------------------------------------
def child(fn, job):
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, (job,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--instacart", action="store_true", help="Also the 49,688 Instacart products.")
    parser.add_argument("--requests", type=int, default=2000, help="Timed searches per kind (cached, uncached).")
    parser.add_argument("--http", action="store_true", help="Also time searches over HTTP.")
    parser.add_argument("--load-test", type=float, default=0, metavar="SECONDS", help="Load test length (0 = off).")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--events-rate", type=float, default=0, help="Click events a second during the load test.")
    parser.add_argument("--model", default=None, help="Trained model folder (default: the untrained base model).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/towersearch-bench-search"))
    parser.add_argument("--name", default=None, help="Result file (default: search; search_ratio with --ratio).")
    parser.add_argument(
        "--modes", nargs="*", default=["hybrid"], help="Modes timed in process (ranked needs a model with a ranker)."
    )
    parser.add_argument(
        "--reuse-builds", action="store_true", help="Keep an index already in --work and its recorded build numbers."
    )
    parser.add_argument(
        "--ratio",
        action="store_true",
        help="Only the ratio of uncached HTTP search to plain sentence-transformers encoding (5,000 demo products).",
    )
    args = parser.parse_args()
    args.name = args.name or ("search_ratio" if args.ratio else "search")
    if args.ratio:
        out = {"benchmark": args.name, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
               **ratio(args.work, args.requests)}  # fmt: skip
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
        print(json.dumps({k: out[k] for k in ("plain_encode", "ratio_p50")}, indent=2))
        print("http", out["http"])
        return

    catalogues: list[tuple[str, Path, Path | None]] = []
    for size in args.sizes:
        catalogues.append((f"demo {size:,}", *prepare_demo(args.work, size)))
    if args.instacart:
        catalogues.append(("instacart full", *prepare_instacart(args.work)))
    results: dict[str, Any] = {
        "benchmark": args.name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "cpus": os.cpu_count(),
        "model": args.model or "untrained all-MiniLM-L6-v2",
        "mode": "hybrid",
        "modes": args.modes,
        "catalogues": {},
    }
    previous = RESULTS / f"{args.name}.json"
    if previous.is_file():  # keep the catalogues measured by an earlier run (same name), replacing re-measured ones
        results["catalogues"] = json.loads(previous.read_text()).get("catalogues", {})

    def save() -> None:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")

    largest = f"demo {max(args.sizes):,}" if args.sizes else None
    for name, catalog_path, log_path in catalogues:
        index = args.work / "indexes" / name.replace(" ", "-").replace(",", "")
        earlier = results["catalogues"].get(name, {}).get("build")
        if args.reuse_builds and earlier and ((index / "CURRENT").is_file() or (index / "manifest.json").is_file()):
            row: dict[str, Any] = {"build": earlier}
        else:
            row = {"build": child(build, (str(catalog_path), str(log_path) if log_path else None, str(index),
                                          args.model))}  # fmt: skip
        print(name, "build", row["build"], flush=True)
        for mode in args.modes:
            key = "in_process" if mode == "hybrid" else f"in_process_{mode}"
            row[key] = child(in_process, (str(index), args.requests, mode))
            print(name, key, row[key], flush=True)
        if len(args.modes) > 1:
            row["interleaved"] = child(interleaved, (str(index), args.requests, list(args.modes)))
            print(name, "interleaved", row["interleaved"], flush=True)
        results["catalogues"][name] = row
        save()
        if args.http or (args.load_test and name == largest):
            with Server(index) as server:
                if args.http:
                    row["http"] = over_http(server, index, args.requests)
                    print(name, "http", row["http"], flush=True)
                if args.load_test and name == largest:
                    row["load_test"] = load_test(server, index, args.load_test, args.clients, args.events_rate)
                    print(name, "load test", row["load_test"], flush=True)
            save()
    write_markdown(results, RESULTS / f"{args.name}.md")
    print((RESULTS / f"{args.name}.md").read_text())


def _path(where: str) -> str:
    """``in_process`` → "in process (hybrid)", ``in_process_ranked`` → "in process (ranked)", ``http`` → "http"."""
    if where == "http":
        return "http (hybrid)"
    return f"in process ({where.removeprefix('in_process').lstrip('_') or 'hybrid'})"


def write_markdown(results: dict[str, Any], path: Path) -> None:
    lines = [
        "# Search latency",
        "",
        f"{results['date']}; {results['machine']}, {results['cpus']} CPUs; model: {results['model']}; hybrid mode, "
        "k = 10. Cached = head queries pre-encoded at build time (the LRU cache where a catalogue has no log); "
        "uncached = unseen queries (the query tower runs).",
        "",
        "| catalogue | products | ANN | recall@10 | build s | build peak MB | path | kind | p50 ms | p95 ms | p99 ms |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for name, row in results["catalogues"].items():
        b = row["build"]
        for where in [k for k in row if k.startswith("in_process")] + ["http"]:
            for kind in ("cached", "uncached"):
                if where in row and kind in row[where]:
                    p = row[where][kind]
                    lines.append(
                        f"| {name} | {b['products']:,} | {b['ann']['kind']} | {b['ann']['recall@10']:.4f} | "
                        f"{b['build_seconds']} | {b['peak_rss_mb']:,.0f} | {_path(where)} | {kind} | "
                        f"{p['p50_ms']} | {p['p95_ms']} | {p['p99_ms']} |"
                    )
    rows = {name: row["interleaved"] for name, row in results["catalogues"].items() if "interleaved" in row}
    if rows:
        lines += [
            "",
            "Modes interleaved in one process (each query in every mode in turn): latency, and each mode's per-query "
            "excess over the first mode (p50 / p99 ms).",
            "",
            "| catalogue | mode | cached p50 / p99 | uncached p50 / p99 | cached excess p50 / p99 | "
            "uncached excess p50 / p99 |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for name, modes in rows.items():
            for mode, r in modes.items():
                cells = [
                    f"{r[k]['p50_ms']} / {r[k]['p99_ms']}" if k in r else "–"
                    for k in ("cached", "uncached", "cached_excess", "uncached_excess")
                ]
                lines.append(f"| {name} | {mode} | {' | '.join(cells)} |")
    for name, row in results["catalogues"].items():
        if "load_test" in row:
            lt = row["load_test"]
            lines += [
                "",
                f"Load test on {name}: {lt['clients']} clients for {lt['seconds']} s, {lt['requests']:,} requests "
                f"({lt['requests_per_second']}/s), statuses {lt['statuses']}, {lt['server_errors']} server errors, "
                f"{lt['failed_requests']} failed requests; reload half-way answered {lt['reload']['status']} in "
                f"{lt['reload']['seconds']} s; server memory {lt['server_memory_mb']}.",
                *([f"Events: {lt['events']}."] if lt.get("events") else []),
                "",
                "| kind | n | p50 ms | p95 ms | p99 ms | max ms |",
                "| --- | ---: | ---: | ---: | ---: | ---: |",
            ]
            for kind, p in lt["latency"].items():
                lines.append(f"| {kind} | {p['n']:,} | {p['p50_ms']} | {p['p95_ms']} | {p['p99_ms']} | {p['max_ms']} |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

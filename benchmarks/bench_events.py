"""Event store throughput and latency: SQLite in WAL mode, durable (synchronous=FULL) against synchronous=NORMAL.

    python benchmarks/bench_events.py [--n 5000] [--threads 8] [--dir DIR] [--note TEXT]

For each setting (``durable=True``: every commit flushed to disk; ``durable=False``: ``synchronous=NORMAL``) and for
one thread and ``--threads`` threads sharing one :class:`~towersearch.events.EventStore`, as the service's worker
threads do, it times ``--n`` calls of ``record_search`` with 10 shown products, then ``--n`` calls of ``add_events``
with one click each on those searches, and reports per-call latency (p50, p99, max) and calls per second. Each run
starts from an empty store in a fresh folder under ``--dir`` (default: the system's temporary folder; put it on the
disk the service will use, since fsync time is the disk's). Writes ``results/events.json`` and ``results/events.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from towersearch.events import EventStore

RESULTS = Path(__file__).resolve().parent / "results"
SHOWN = 10


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}, Python {platform.python_version()}"


def file_system(folder: Path) -> str:
    """The file system type and device holding ``folder`` (Linux; "unknown" elsewhere)."""
    try:
        mounts = [line.split()[:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    target = str(folder.resolve())
    best = max(
        (m for m in mounts if target == m[1] or target.startswith(m[1].rstrip("/") + "/")),
        key=lambda m: len(m[1]),
        default=None,
    )
    return f"{best[2]} on {best[0]}" if best else "unknown"


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of sorted values, nearest rank."""
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))]


def timed(calls: list[Callable[[], Any]], threads: int) -> tuple[list[float], float]:
    """Run ``calls`` split over ``threads`` threads that start together; latencies (ms) and the wall time (s)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def work(worker: int) -> None:
        mine = calls[worker::threads]
        out = latencies[worker]
        barrier.wait()
        try:
            for call in mine:
                start = time.perf_counter()
                call()
                out.append((time.perf_counter() - start) * 1000)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sorted(v for values in latencies for v in values), wall


def run(folder: Path, n: int, threads: int, durable: bool) -> list[dict[str, Any]]:
    rows = []
    with EventStore(folder / "events.db", durable=durable) as store:
        ids: list[str] = [""] * n

        def search(i: int) -> Callable[[], None]:
            def call() -> None:
                ids[i] = store.record_search(
                    f"query {i % 500}", [f"p{(i * 7 + k) % 5000}" for k in range(SHOWN)], session_id=f"s{i % 997}"
                )

            return call

        def event(i: int) -> Callable[[], None]:
            def call() -> None:
                product = f"p{(i * 7 + i % SHOWN) % 5000}"
                store.add_events([{"search_id": ids[i], "product_id": product, "event": "click"}])

            return call

        for operation, make in ((f"record_search ({SHOWN} shown)", search), ("add_events (1 event)", event)):
            latencies, wall = timed([make(i) for i in range(n)], threads)
            rows.append(
                {
                    "durable": durable,
                    "synchronous": "FULL" if durable else "NORMAL",
                    "threads": threads,
                    "operation": operation,
                    "calls": n,
                    "calls_per_s": n / wall,
                    "p50_ms": percentile(latencies, 0.50),
                    "p99_ms": percentile(latencies, 0.99),
                    "max_ms": latencies[-1],
                }
            )
            print(
                f"synchronous={rows[-1]['synchronous']:<6} threads={threads} {operation:<26} "
                f"{rows[-1]['calls_per_s']:8.0f}/s  p50 {rows[-1]['p50_ms']:7.3f} ms  p99 {rows[-1]['p99_ms']:7.3f} ms",
                flush=True,
            )
        counts = store.counts()
        assert counts["searches"] == n and counts["events"] == n, counts
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="calls of each operation per run")
    parser.add_argument("--threads", type=int, default=8, help="threads of the concurrent runs")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the stores (default: system temp)")
    parser.add_argument("--note", default="", help="a remark saved with the results (e.g. other load)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-events-", dir=args.dir))
    rows = []
    try:
        for durable in (True, False):
            for threads in (1, args.threads):
                folder = base / f"{'full' if durable else 'normal'}-{threads}"
                folder.mkdir()
                rows.extend(run(folder, args.n, threads, durable))
        fs = file_system(base)
    finally:
        for path in sorted(base.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        base.rmdir()

    payload = {
        "benchmark": "events",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "sqlite": sqlite3.sqlite_version,
        "file_system": fs,
        "n": args.n,
        "note": args.note,
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "events.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# events",
        "",
        f"{payload['date']}; {payload['machine']}; SQLite {payload['sqlite']} (WAL) on {fs}; {args.n} calls each.",
    ]
    if args.note:
        lines += ["", args.note]
    lines += [
        "",
        "| synchronous | threads | operation | calls/s | p50 ms | p99 ms | max ms |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['synchronous']} | {r['threads']} | {r['operation']} | {r['calls_per_s']:.0f} | {r['p50_ms']:.3f} "
            f"| {r['p99_ms']:.3f} | {r['max_ms']:.3f} |"
        )
    (RESULTS / "events.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Fault test: kill -9 `towersearch index` mid-build and `towersearch serve` mid-reload; the index must stay whole.

(a) ``--builds`` times: start ``towersearch index --out INDEX`` as a subprocess on a small demo store, kill it with
SIGKILL at a random moment (uniform over the build, in its last part, or just as the new generation appears), then
load ``INDEX`` with :meth:`SearchEngine.load` and check that it answers a search and that everything it loaded comes
from one generation: the one ``CURRENT`` names, either the previous build (unchanged) or the killed build's own
(its catalogue), with its manifest's generation name equal to ``CURRENT``.

(b) ``--reloads`` times: point ``CURRENT`` at the other of two built generations (what a rebuild does), ``POST
/admin/reload`` to a ``towersearch serve`` subprocess on a free 127.0.0.1 port while a client searches, kill the
server with SIGKILL at a random moment during the reload, restart it, and check that ``/search`` answers 200 and
``/healthz`` shows the generation ``CURRENT`` names.

Every loop is bounded in count and in time (``--max-seconds``); only loopback addresses are used. The counts are
printed and written to ``benchmarks/results/fault_test.md``. Not part of the test suite::

    .venv/bin/python benchmarks/fault_test.py [--builds 20] [--reloads 20] [--products 300] [--max-seconds 900]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
CLI = [sys.executable, "-m", "towersearch.cli"]
HOST = "127.0.0.1"


# -- set-up ----------------------------------------------------------------------------------------------------------
def variants(data: Path, work: Path, log_rows: int, n: int = 2, step: int = 10) -> list[tuple[Path, Path, set[str]]]:
    """``n`` catalogue + log pairs: variant ``i`` drops the last ``i * step`` products (and their log rows); the
    log is cut to its first ``log_rows`` rows to keep builds short."""
    with open(data / "catalog.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    with open(data / "log.csv", newline="", encoding="utf-8") as fh:
        log = list(csv.reader(fh))
    pid = log[0].index("product_id")
    out = []
    for i in range(n):
        kept = rows[1 : len(rows) - i * step]
        ids = {r[0] for r in kept}
        catalog, log_path = work / f"catalog-{i}.csv", work / f"log-{i}.csv"
        with open(catalog, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([rows[0], *kept])
        with open(log_path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([log[0], *(r for r in log[1 : log_rows + 1] if r[pid] in ids)])
        out.append((catalog, log_path, ids))
    return out


def index_args(catalog: Path, log: Path, model: Path | None, out: Path) -> list[str]:
    args = [*CLI, "index", "--catalog", str(catalog), "--log", str(log), "--out", str(out), "--json"]
    return args + (["--model", str(model)] if model else [])


def read_current(root: Path) -> str | None:
    try:
        return (root / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


# -- (a) killed builds -------------------------------------------------------------------------------------------------
def check_index(root: Path, old: str | None, expected: dict[str, set[str]]) -> tuple[str, str]:
    """Load ``root`` as the service does and say whose it is: ``old``, ``new`` or ``mixed``/``failed`` (with why)."""
    from towersearch.search.engine import SearchEngine

    current = read_current(root)
    try:
        engine = SearchEngine.load(root)
    except Exception as exc:  # noqa: BLE001 - any failure to load is what we count
        return "failed", f"{type(exc).__name__}: {exc}"
    manifest = engine.manifest
    if not (engine.folder.name == current == manifest.get("generation")):
        return "mixed", f"CURRENT {current}, folder {engine.folder.name}, manifest {manifest.get('generation')}"
    if engine.folder.parent.parent != root:
        return "mixed", f"loaded {engine.folder}, outside {root}"
    ids = {p.product_id for p in engine.products}
    catalog_sha = manifest["catalog"]["sha256"]
    if catalog_sha not in expected or ids != expected[catalog_sha]:
        return "mixed", "products do not match the catalogue the manifest names"
    if not (len(ids) == manifest["catalog"]["products"] == len(engine.embeddings) == len(engine.dense.index)):
        return "mixed", "counts of products, embeddings and ANN vectors differ"
    if engine.suggester is None or len(engine.suggester.candidates) != manifest["suggest"]["candidates"]:
        return "mixed", "autocomplete candidates do not match the manifest"
    if not engine.search("milk", k=5) or not engine.search("organic milk", k=5, mode="dense"):
        return "failed", "search answered nothing"
    return ("old" if current == old else "new"), ""


def killed_builds(args, root: Path, model: Path | None, data, deadline: float, log) -> dict[str, Any]:
    expected = {}
    from towersearch.index.artifacts import file_sha256

    for catalog, _, ids in data:
        expected[file_sha256(catalog)] = ids
    t0 = time.perf_counter()
    subprocess.run(index_args(data[0][0], data[0][1], model, root), check=True, capture_output=True, timeout=600)
    build_seconds = time.perf_counter() - t0
    log(f"(a) first full build: {build_seconds:.1f} s")
    outcomes: Counter[str] = Counter({"old": 0, "new": 0, "mixed": 0, "failed": 0})
    when: Counter[str] = Counter()
    problems: list[str] = []
    leftovers_seen = 0
    runs = 0
    for i in range(args.builds):
        if time.monotonic() > deadline:
            log("(a) time limit reached")
            break
        runs += 1
        catalog, log_path, _ = data[(i + 1) % len(data)]
        old = read_current(root)
        mode = ("uniform", "late", "at-switch")[i % 3]
        proc = subprocess.Popen(
            index_args(catalog, log_path, model, root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        started = time.perf_counter()
        if mode == "uniform":
            time.sleep(random.uniform(0.05, build_seconds * 1.1))
        elif mode == "late":
            time.sleep(random.uniform(build_seconds * 0.8, build_seconds * 1.1))
        else:  # poll for the moment the new generation is renamed into place or CURRENT changes
            gens = root / "generations"
            before = {p.name for p in gens.iterdir()}
            limit = started + build_seconds * 3
            while time.perf_counter() < limit and proc.poll() is None:
                now = {p.name for p in gens.iterdir() if not p.name.startswith(".")}
                if now - before or read_current(root) != old:
                    time.sleep(random.uniform(0, 0.005))
                    break
                time.sleep(0.001)
        finished = proc.poll() is not None
        if not finished:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        hidden = [p.name for p in (root / "generations").iterdir() if p.name.startswith(".")]
        leftovers_seen += bool(hidden)
        verdict, why = check_index(root, old, expected)
        outcomes[verdict] += 1
        when["finished before the kill" if finished else f"killed ({mode})"] += 1
        if why:
            problems.append(f"build {i + 1}: {verdict}: {why}")
        log(
            f"(a) {i + 1:2d} {mode:9s} at {time.perf_counter() - started:5.2f} s: "
            f"{'finished' if finished else 'killed'}, index is {verdict} {why}"
        )
    # one last complete build: leftovers of killed builds go, at most 2 generations stay
    subprocess.run(index_args(data[0][0], data[0][1], model, root), check=True, capture_output=True, timeout=600)
    names = sorted(p.name for p in (root / "generations").iterdir())
    final_ok = len(names) <= 2 and not [n for n in names if n.startswith(".")] and read_current(root) in names
    return {
        "runs": runs,
        "build_seconds": round(build_seconds, 1),
        "outcomes": dict(outcomes),
        "kills": dict(when),
        "runs_with_leftover_temp_folder": leftovers_seen,
        "after_a_full_build": {"generations": len(names), "clean": final_ok},
        "problems": problems,
    }


# -- (b) killed reloads ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def request(method: str, url: str, headers: dict | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class Server:
    """``towersearch serve ROOT`` on a free loopback port, with an admin token in its environment."""

    def __init__(self, root: Path, token: str, logfile: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = {**os.environ, "TOWERSEARCH_ADMIN_TOKEN": token}
        with open(logfile, "ab") as fh:
            self.proc = subprocess.Popen(
                [*CLI, "serve", str(root), "--host", HOST, "--port", str(self.port)], stdout=fh, stderr=fh, env=env
            )

    def wait_ready(self, timeout: float = 120.0) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if request("GET", f"{self.url}/healthz", timeout=2)[0] == 200:
                    return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server not ready in time")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)


def killed_reloads(args, root: Path, model: Path | None, data, deadline: float, work: Path, log) -> dict[str, Any]:
    from towersearch.index.generations import generations, switch

    for catalog, log_path, _ in data[:2]:  # two generations to switch between
        subprocess.run(index_args(catalog, log_path, model, root), check=True, capture_output=True, timeout=600)
    names = generations(root)[-2:]
    token = secrets.token_hex(16)
    admin = {"X-Admin-Token": token}
    logfile = work / "server.log"
    server = Server(root, token, logfile)
    start_seconds = server.wait_ready()
    switch(root, names[0] if read_current(root) == names[1] else names[1])
    t0 = time.perf_counter()
    status, body = request("POST", f"{server.url}/admin/reload", admin, timeout=120)
    reload_seconds = time.perf_counter() - t0
    if status != 200:
        raise RuntimeError(f"a plain reload failed: {status} {body}")
    log(f"(b) server start {start_seconds:.1f} s, reload {reload_seconds:.2f} s, generations {names}")
    counts: Counter[str] = Counter({"mixed generations": 0, "restarts failed": 0})
    problems: list[str] = []
    runs = 0
    try:
        for i in range(args.reloads):
            if time.monotonic() > deadline:
                log("(b) time limit reached")
                break
            runs += 1
            target = names[0] if read_current(root) == names[1] else names[1]
            switch(root, target)  # what a finished rebuild does
            stop = threading.Event()
            client: list[tuple[float, str]] = []

            def searches(url=server.url, stop=stop, client=client):
                while not stop.is_set():
                    try:
                        code, _ = request("GET", f"{url}/search?q=milk&k=5", timeout=5)
                        client.append((time.perf_counter(), str(code)))
                    except Exception:  # noqa: BLE001 - reset, refused, incomplete read: the server died
                        client.append((time.perf_counter(), "connection error"))
                        time.sleep(0.01)

            reload_result: list[Any] = []

            def reload(url=server.url, out=reload_result):
                try:
                    out.append(request("POST", f"{url}/admin/reload", admin, timeout=60))
                except Exception as exc:  # noqa: BLE001 - the server died
                    out.append(("connection error", str(exc)))

            threads = [threading.Thread(target=searches), threading.Thread(target=reload)]
            for t in threads:
                t.start()
            time.sleep(random.uniform(0, reload_seconds * 1.2))
            killed_at = time.perf_counter()
            server.kill()
            stop.set()
            for t in threads:
                t.join(timeout=70)
            before_kill = [c for t, c in client if t < killed_at]
            after_kill = [c for t, c in client if t >= killed_at]
            counts["searches before the kill"] += len(before_kill)
            counts["failed searches before the kill"] += sum(c != "200" for c in before_kill)
            counts["searches refused after the kill (server dead)"] += len(after_kill)
            done = reload_result and reload_result[0][0] == 200
            counts["reload finished before the kill" if done else "reload killed"] += 1
            if done and reload_result[0][1].get("generation") != target:
                counts["mixed generations"] += 1
                problems.append(f"reload {i + 1}: answered generation {reload_result[0][1].get('generation')}")
            server = Server(root, token, logfile)
            try:
                server.wait_ready()
            except RuntimeError as exc:
                counts["restarts failed"] += 1
                problems.append(f"reload {i + 1}: restart: {exc}")
                server = Server(root, token, logfile)
                server.wait_ready()
                continue
            health = request("GET", f"{server.url}/healthz")[1]
            if health.get("generation") != read_current(root) or health.get("generation") != target:
                counts["mixed generations"] += 1
                problems.append(f"reload {i + 1}: /healthz generation {health.get('generation')}, CURRENT {target}")
            after = [
                request("GET", f"{server.url}/search?q={urllib.parse.quote(q)}&k=5")[0]
                for q in ("milk", "pasta", "organic eggs")
            ]
            counts["searches after the restart"] += len(after)
            counts["failed searches after the restart"] += sum(code != 200 for code in after)
            log(
                f"(b) {i + 1:2d} reload {'finished' if done else 'killed'}; "
                f"{len(before_kill)} searches before the kill ({sum(c != '200' for c in before_kill)} failed); "
                f"restarted on {health.get('generation')}: searches {after}"
            )
    finally:
        server.kill()
    return {
        "runs": runs,
        "server_start_seconds": round(start_seconds, 1),
        "reload_seconds": round(reload_seconds, 2),
        "counts": dict(counts),
        "problems": problems,
    }


# -- report ----------------------------------------------------------------------------------------------------------
def markdown(result: dict[str, Any]) -> str:
    a, b = result["builds"], result["reloads"]
    lines = [
        "# Fault test",
        "",
        f"{result['date']}; {result['machine']}, {result['cpus']} CPUs; demo store of {result['products']} products "
        f"and the first {result['log_rows']} rows of its log; "
        f"model: {result['model']}; {result['seconds']} s in all. Command: `{result['command']}`.",
        "",
        f"## (a) `towersearch index` killed with SIGKILL during the build ({a['runs']} runs)",
        "",
        f"A full build takes {a['build_seconds']} s. After each kill, `SearchEngine.load(INDEX_DIR)` must load, answer "
        "a search, and hold exactly one generation: the one `CURRENT` names, with the manifest's generation name, "
        "the products of the catalogue its manifest names, and matching embeddings, ANN and autocomplete counts.",
        "",
        "| outcome | runs |",
        "| --- | ---: |",
    ]
    verdicts = {
        "old": "loads the previous build, unchanged",
        "new": "loads the new build (killed after its switch, or finished), complete",
        "mixed": "holds mixed generations",
        "failed": "fails to load or to answer",
    }
    lines += [f"| index {verdicts[k]} | {v} |" for k, v in a["outcomes"].items()]
    lines += [f"| {k} | {v} |" for k, v in sorted(a["kills"].items())]
    lines += [
        f"| kills that left a temporary folder (removed by the next build) | {a['runs_with_leftover_temp_folder']} |",
        "",
        f"After one more full build: {a['after_a_full_build']['generations']} generations, no leftovers: "
        f"{a['after_a_full_build']['clean']}.",
        "",
        f"## (b) `towersearch serve` killed with SIGKILL during `POST /admin/reload` ({b['runs']} runs)",
        "",
        f"The server starts in {b['server_start_seconds']} s; a reload takes {b['reload_seconds']} s. Each run points "
        "`CURRENT` at the other generation, reloads while a client searches, kills the server at a random moment of "
        "the reload, restarts it, and checks `/healthz` and three searches.",
        "",
        "| count | value |",
        "| --- | ---: |",
    ]
    lines += [f"| {k} | {v} |" for k, v in sorted(b["counts"].items())]
    lines += ["", "## Problems", ""]
    lines += [f"- {p}" for p in a["problems"] + b["problems"]] or ["None."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=20, help="killed builds (a)")
    parser.add_argument("--reloads", type=int, default=20, help="killed reloads (b)")
    parser.add_argument("--products", type=int, default=300, help="products of the demo store")
    parser.add_argument("--log-rows", type=int, default=5000, help="log rows kept (the demo log has ~60,000)")
    parser.add_argument("--untrained", action="store_true", help="use the untrained base model, not a tiny one")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop starting new runs after this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "fault_test.md")
    args = parser.parse_args()
    random.seed(args.seed)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.monotonic()
    deadline = started + args.max_seconds
    work = args.work or Path(tempfile.mkdtemp(prefix="towersearch-fault-"))
    work.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(message, flush=True)

    subprocess.run(
        [*CLI, "demo-data", str(work / "data"), "--products", str(args.products), "--json"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    from towersearch.testing import save_tiny_model

    model = None if args.untrained else save_tiny_model(work / "tiny-model")
    data = variants(work / "data", work, args.log_rows)
    half = started + args.max_seconds / 2
    builds = killed_builds(args, work / "index-a", model, data, min(deadline, half), log)
    reloads = killed_reloads(args, work / "index-b", model, data, deadline, work, log)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "cpus": os.cpu_count(),
        "products": args.products,
        "log_rows": args.log_rows,
        "model": "untrained all-MiniLM-L6-v2" if args.untrained else "tiny random BERT (2 layers, 32 dimensions)",
        "command": "python benchmarks/fault_test.py " + " ".join(sys.argv[1:]),
        "seconds": round(time.monotonic() - started),
        "builds": builds,
        "reloads": reloads,
    }
    text = markdown(result)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

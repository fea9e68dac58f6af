"""Autocomplete at store scale: build time and in-process latency with a million candidate queries.

    python benchmarks/bench_suggest.py [--candidates 1000000] [--requests 20000]

Candidates are made from the demo taxonomy's words (type names, synonyms, variants, dietary attributes and
invented brand words) in realistic shapes ("organic oat milk", "valley fresh tortilla chips"), with Zipf search
counts; those words are the catalogue's modifier words. Embeddings for de-duplication have the real size (384) and
put candidates of one product type close together (cosine about 0.8), so that most folds go through the modifier
check, the costly path; they are written to a file and memory-mapped, as an index's are (encoding a million queries
is the index step's business, measured there). Requests are
prefixes of candidates (1 to 12 characters, by a head-heavy draw) and 10% misspelled ones.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import time
from pathlib import Path

import numpy as np

from common import RESULTS, machine
from towersearch.data import normalize_query
from towersearch.data.demo import product_types
from towersearch.search.autocomplete import Candidate, Suggester
from towersearch.search.phrases import singular


def make_candidates(n: int, seed: int = 0) -> tuple[list[Candidate], list[str], set[str]]:
    """Candidates sorted by text, the product type of each, and the modifier words."""
    rng = random.Random(seed)
    types = product_types()
    heads = sorted({w for t in types for w in [t.name, *t.synonyms]})
    mods = sorted({m for t in types for m in [*t.variants, *t.dietary]} | {"fresh", "frozen", "large", "mini"})
    brands = [f"{a}{b}" for a in ("sun", "val", "oak", "river", "green", "blue", "gold", "north") for b in
              ("field", "farm", "ridge", "brook", "leaf", "stone", "crest", "mill")]  # fmt: skip
    out: dict[str, tuple[Candidate, str]] = {}
    while len(out) < n:
        shape = rng.random()
        head = rng.choice(heads)
        if shape < 0.3:
            text = f"{rng.choice(mods)} {head}"
        elif shape < 0.55:
            text = f"{rng.choice(brands)} {head}"
        elif shape < 0.75:
            text = f"{rng.choice(mods)} {rng.choice(mods)} {head}"
        elif shape < 0.9:
            text = f"{rng.choice(brands)} {rng.choice(mods)} {head} {rng.randint(1, 64)} oz"
        else:
            text = f"{head} {rng.choice(heads)}"
        if text not in out:
            out[text] = (Candidate(text, float(1 + int(1000 / (1 + len(out)) ** 0.7) + rng.randint(0, 3)),
                                   conversion_rate=rng.random() * 0.5), head)  # fmt: skip
    rows = sorted(out.values(), key=lambda row: row[0].text)
    modifiers = {singular(w) for phrase in [*heads, *mods, *brands] for w in phrase.split()}
    return [c for c, _ in rows], [h for _, h in rows], modifiers


def write_embeddings(path: Path, heads: list[str], dim: int = 384, chunk: int = 50_000) -> np.ndarray:
    """Unit vectors near their product type's centre (cosine about 0.8), written to ``path`` in chunks and mapped
    back read-only as float16, as ``Suggester.save`` writes an index's ``suggest_embeddings.npy`` and ``load``
    maps it."""
    gen = np.random.default_rng(0)
    kinds = sorted(set(heads))
    of = {h: i for i, h in enumerate(kinds)}
    centre = gen.normal(size=(len(kinds), dim)).astype(np.float32)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    rows = np.array([of[h] for h in heads], dtype=np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f2", "fortran_order": False, "shape": (len(heads), dim)})
        for start in range(0, len(heads), chunk):
            noise = gen.normal(size=(min(chunk, len(heads) - start), dim)).astype(np.float32)
            block = centre[rows[start : start + chunk]] + 0.5 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            fh.write(block.astype("<f2").tobytes())
    return np.load(path, mmap_mode="r")


def memory_now() -> dict[str, float]:
    """Resident memory now, split into the heap (``RssAnon``) and mapped files (``RssFile``: the embeddings' pages
    read so far, which the kernel can drop and read again)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: round(int(fields[k].split()[0]) / 1024, 1) for k in ("VmRSS", "RssAnon", "RssFile") if k in fields}


def typo(text: str, rng: random.Random) -> str:
    if len(text) < 5:
        return text
    i = rng.randrange(1, len(text) - 1)
    return text[:i] + rng.choice("aeiourst") + text[i + 1 :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--name", default="suggest", help="Results file name (results/NAME.json).")
    parser.add_argument("--work", default="/tmp/towersearch-bench-suggest", help="Where the embeddings file goes.")
    args = parser.parse_args()
    t0 = time.perf_counter()
    candidates, heads, modifiers = make_candidates(args.candidates)
    made = time.perf_counter() - t0
    embeddings = write_embeddings(Path(args.work) / "suggest_embeddings.npy", heads)
    t0 = time.perf_counter()
    suggester = Suggester(candidates, embeddings, modifiers=modifiers)
    build = time.perf_counter() - t0
    gc.collect()
    gc.freeze()  # as the service does once the index is loaded
    rng = random.Random(1)
    requests = []
    for _ in range(args.requests):
        text = candidates[min(int(rng.paretovariate(1.2)) - 1, len(candidates) - 1) * 997 % len(candidates)].text
        prefix = text[: rng.randint(1, min(12, len(text)))]
        requests.append(typo(prefix, rng) if rng.random() < 0.1 else prefix)
    for prefix in [p for p in requests[:500] if p.strip()]:  # warm-up, without the answer cache
        suggester._suggest(normalize_query(prefix), 8, True)
    times, cold = [], []
    seen: set[str] = set()
    for prefix in requests:
        if not prefix.strip():
            continue
        t = time.perf_counter()
        suggester.suggest(prefix, 8)
        elapsed = (time.perf_counter() - t) * 1000
        times.append(elapsed)
        if prefix not in seen:  # computed, not answered from the cache of repeated prefixes
            cold.append(elapsed)
            seen.add(prefix)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    c50, c95, c99 = np.percentile(cold, [50, 95, 99])
    result = {
        "benchmark": args.name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "candidates": len(candidates),
        "keys": len(suggester.keys),
        "precomputed_prefixes": len(suggester._top),
        "generate_seconds": round(made, 1),
        "build_seconds": round(build, 1),
        "requests": len(times),
        "latency_ms": {"p50": round(p50, 3), "p95": round(p95, 3), "p99": round(p99, 3), "max": round(max(times), 3)},
        "first_seen_prefixes": len(cold),
        "first_seen_latency_ms": {"p50": round(c50, 3), "p95": round(c95, 3), "p99": round(c99, 3)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_now_mb": memory_now(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Autocomplete at store scale: build time and in-process latency with a million candidate queries.

    python benchmarks/bench_suggest.py [--candidates 1000000] [--requests 20000]

Candidates are made from the demo taxonomy's words (type names, synonyms, variants, dietary attributes and
invented brand words) in realistic shapes ("organic oat milk", "valley fresh tortilla chips"), with Zipf search
counts. Embeddings for de-duplication are random unit vectors of the real size (384): the cost of a request does not
depend on their values, and encoding a million queries is the index step's business, measured there. Requests
are prefixes of candidates (1 to 12 characters, by a head-heavy draw) and 10% misspelled ones.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time

import numpy as np

from common import RESULTS, machine
from towersearch.data.demo import product_types
from towersearch.search.autocomplete import Candidate, Suggester


def make_candidates(n: int, seed: int = 0) -> list[Candidate]:
    rng = random.Random(seed)
    types = product_types()
    heads = sorted({w for t in types for w in [t.name, *t.synonyms]})
    mods = sorted({m for t in types for m in [*t.variants, *t.dietary]} | {"fresh", "frozen", "large", "mini"})
    brands = [f"{a}{b}" for a in ("sun", "val", "oak", "river", "green", "blue", "gold", "north") for b in
              ("field", "farm", "ridge", "brook", "leaf", "stone", "crest", "mill")]  # fmt: skip
    out: dict[str, Candidate] = {}
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
            out[text] = Candidate(text, float(1 + int(1000 / (1 + len(out)) ** 0.7) + rng.randint(0, 3)),
                                  conversion_rate=rng.random() * 0.5)  # fmt: skip
    return sorted(out.values(), key=lambda c: c.text)


def typo(text: str, rng: random.Random) -> str:
    if len(text) < 5:
        return text
    i = rng.randrange(1, len(text) - 1)
    return text[:i] + rng.choice("aeiourst") + text[i + 1 :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    candidates = make_candidates(args.candidates)
    made = time.perf_counter() - t0
    embeddings = np.random.default_rng(0).normal(size=(len(candidates), 384)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    t0 = time.perf_counter()
    suggester = Suggester(candidates, embeddings)
    build = time.perf_counter() - t0
    rng = random.Random(1)
    requests = []
    for _ in range(args.requests):
        text = candidates[min(int(rng.paretovariate(1.2)) - 1, len(candidates) - 1) * 997 % len(candidates)].text
        prefix = text[: rng.randint(1, min(12, len(text)))]
        requests.append(typo(prefix, rng) if rng.random() < 0.1 else prefix)
    for prefix in requests[:500]:  # warm-up
        suggester.suggest(prefix, 8)
    times = []
    for prefix in requests:
        if not prefix.strip():
            continue
        t = time.perf_counter()
        suggester.suggest(prefix, 8)
        times.append((time.perf_counter() - t) * 1000)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    result = {
        "benchmark": "suggest",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "candidates": len(candidates),
        "keys": len(suggester.keys),
        "precomputed_prefixes": len(suggester._top),
        "generate_seconds": round(made, 1),
        "build_seconds": round(build, 1),
        "requests": len(times),
        "latency_ms": {"p50": round(p50, 3), "p95": round(p95, 3), "p99": round(p99, 3), "max": round(max(times), 3)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "suggest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

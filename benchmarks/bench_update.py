"""Catalogue updates: the time of each step, search latency while an update runs, and recall after it.

    python benchmarks/bench_update.py [--size 100000] [--upserts 1000] [--deletes 1000] [--ann auto|flat|hnsw]
        [--compact-share 0.2] [--queries 1000] [--model DIR] [--reuse DIR] [--work /tmp/towersearch-bench-update]

An index of the demo store scaled to ``--size`` products is built in a child process (as ``bench_search.py`` builds
its indexes; ``--ann`` forces the ANN kind, ``auto`` picks HNSW from 20,000 products), or ``--reuse DIR`` takes an
index folder already built (hard-linked into the work folder, so ``DIR`` itself is never changed). One batch is
then applied with :func:`towersearch.index.update.update_index`: ``--upserts`` products, half of them changed
versions of stored products (new name and description) and half new ones, and ``--deletes`` deleted products.

- Search latency: this process loads the index before the update and times searches (hybrid mode, alternating
  head queries, which are pre-encoded, and unseen queries, which run the query tower) with no update running, then
  again while the update runs in a child process (as ``towersearch update`` or the service's worker would run next
  to the searches), then loads the updated index (the reload) and times it.
- Update cost: the summary's seconds per step (validate, model, encode, ann, bm25, suggest, write, switch) and the
  child's peak memory.
- Quality: recall@10 of the updated ANN index against exact search over the updated embeddings (an exact rebuild of
  the updated catalogue), for head-query vectors and for the vectors of the new and changed products; and a check
  that no deleted product comes back from dense, lexical or hybrid search.

Results go to ``results/<--name>.json`` and ``.md`` (default ``update``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import multiprocessing as mp
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_search import build, peak_rss_mb, percentiles, prepare_demo, query_sets
from common import RESULTS, machine


def link_tree(source: Path, target: Path) -> None:
    """``target`` as a copy of folder ``source`` made of hard links (an update never changes a file in place)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def make_batch(index: Path, upserts: int, deletes: int, seed: int) -> tuple[list, list[str]]:
    """Half of ``upserts`` changed stored products, half new ones (names of stored products with a new word), and
    ``deletes`` stored products to delete, none of them also changed."""
    from towersearch.data import load_catalog
    from towersearch.index.generations import resolve

    rng = random.Random(seed)
    folder = resolve(index)
    products = load_catalog(folder / "products.parquet").products
    if upserts // 2 + deletes > len(products):
        raise SystemExit(f"--upserts/2 + --deletes ({upserts // 2 + deletes}) exceeds the {len(products)} products")
    chosen = rng.sample(range(len(products)), upserts // 2 + deletes)
    changed = [
        dataclasses.replace(products[i], name=f"{products[i].name} new recipe", description="Now with more flavour.")
        for i in chosen[: upserts // 2]
    ]
    gone = [products[i].product_id for i in chosen[upserts // 2 :]]
    flavours = ("smoky", "zesty", "maple", "garlic", "lemon", "harvest", "classic", "spicy")
    new = []  # ids named after the generation: new to it, also for an index --reuse has updated before
    for i in range(upserts - upserts // 2):
        base = rng.choice(products)
        new.append(
            dataclasses.replace(
                base, product_id=f"bench-new-{folder.name}-{i}", name=f"{rng.choice(flavours)} {base.name}"
            )
        )
    return [*changed, *new], gone


def run_update(job: tuple[str, list, list[str], float]) -> dict[str, Any]:
    """Child process: apply the batch; returns the summary and the child's peak memory."""
    index, upserts, deletes, compact_share = job
    from towersearch.index.update import update_index

    summary = update_index(index, upserts=upserts, deletes=deletes, compact_share=compact_share)
    summary["peak_rss_mb"] = peak_rss_mb()
    return summary


def time_searches(engine, queries: list[str], mode: str) -> list[float]:
    ms = []
    for q in queries:
        t = time.perf_counter()
        engine.search(q, k=10, mode=mode)
        ms.append((time.perf_counter() - t) * 1000)
    return ms


def during(hits: list[str], misses: list[str]):
    """Endless head and unseen queries, alternating; an unseen query is never repeated (a new word each round)."""
    for round_ in itertools.count():
        for i, q in enumerate(misses):
            if hits:
                yield hits[i % len(hits)]
            yield f"{q} r{round_}" if round_ else q


def recall_at_10(engine, queries: np.ndarray) -> float:
    from towersearch.search.ann import ann_recall

    return round(ann_recall(engine.dense.index, engine.embeddings, queries, k=10), 4) if len(queries) else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="Demo products in the index.")
    parser.add_argument("--upserts", type=int, default=1000, help="Upserted products: half changed, half new.")
    parser.add_argument("--deletes", type=int, default=1000, help="Deleted products.")
    parser.add_argument("--ann", default="auto", choices=("auto", "flat", "hnsw"), help="ANN kind of the build.")
    parser.add_argument("--compact-share", type=float, default=0.2, help="HNSW compaction threshold.")
    parser.add_argument("--queries", type=int, default=1000, help="Timed searches before the update (each kind).")
    parser.add_argument("--mode", default="hybrid", help="Search mode timed.")
    parser.add_argument("--model", default=None, help="Model folder (default: the untrained base model).")
    parser.add_argument("--reuse", type=Path, default=None, help="An index folder to update instead of building.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/towersearch-bench-update"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="update", help="Results file name (results/NAME.json and .md).")
    args = parser.parse_args()

    from towersearch.index.generations import current_generation
    from towersearch.search.engine import SearchEngine

    args.work.mkdir(parents=True, exist_ok=True)
    index = args.work / "index"
    if index.exists():
        shutil.rmtree(index)
    ctx = mp.get_context("spawn")
    result: dict[str, Any] = {"benchmark": args.name, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
                              "cpus": os.cpu_count()}  # fmt: skip
    if args.reuse is not None:
        link_tree(args.reuse, index)
        result["build"] = {"reused": str(args.reuse)}
    else:
        catalog, log = prepare_demo(args.work, args.size)
        with ctx.Pool(1) as pool:
            result["build"] = pool.apply(build, ((str(catalog), str(log), str(index), args.model, args.ann),))
    print("build:", json.dumps(result["build"]))

    upserts, deletes = make_batch(index, args.upserts, args.deletes, args.seed)
    engine = SearchEngine.load(index)
    result["products_before"] = len(engine.products)
    result["ann_before"] = {k: engine.manifest["ann"].get(k) for k in ("kind", "recall@10")}
    hits, misses = query_sets(index, args.queries, seed=args.seed)
    for q in hits[:50] + [f"warm up {i}" for i in range(20)]:
        engine.search(q, k=10, mode=args.mode)
    result["search_without_update"] = {
        "cached": percentiles(time_searches(engine, hits, args.mode)) if hits else None,
        "uncached": percentiles(time_searches(engine, misses, args.mode)),
    }
    print("without update:", json.dumps(result["search_without_update"]))

    # the update in a child process, searches here on the engine loaded before it
    during_hits, during_misses = query_sets(index, 5000, seed=args.seed + 1)
    queries = during(during_hits, during_misses)
    cached_ms: list[float] = []
    uncached_ms: list[float] = []
    heads = set(during_hits)
    with ctx.Pool(1) as pool:
        start = time.perf_counter()
        pending = pool.apply_async(run_update, ((str(index), upserts, deletes, args.compact_share),))
        while not pending.ready():
            q = next(queries)
            t = time.perf_counter()
            engine.search(q, k=10, mode=args.mode)
            (cached_ms if q in heads else uncached_ms).append((time.perf_counter() - t) * 1000)
        summary = pending.get()
        wall = time.perf_counter() - start
    result["update"] = {**summary, "wall_seconds": round(wall, 2)}
    result["search_during_update"] = {
        "cached": percentiles(cached_ms) if cached_ms else None,
        "uncached": percentiles(uncached_ms) if uncached_ms else None,
    }
    print("update:", json.dumps(result["update"]))
    print("during update:", json.dumps(result["search_during_update"]))

    start = time.perf_counter()
    engine = SearchEngine.load(index)  # the reload
    result["reload_seconds"] = round(time.perf_counter() - start, 2)
    assert engine.manifest["generation"] == current_generation(index).name == summary["generation"]
    result["search_after_update"] = {
        "uncached": percentiles(time_searches(engine, misses[: args.queries // 2], args.mode)),
    }

    # quality: the updated ANN index against exact search over the updated embeddings
    head_vectors = np.load(current_generation(index) / "head_queries.npy")[:500]
    fresh = [engine.rows[p.product_id] for p in upserts]
    result["recall@10"] = {
        "head_queries": recall_at_10(engine, head_vectors),
        "new_and_changed_products": recall_at_10(engine, engine.embeddings[fresh[:500]]),
        "queries": int(len(head_vectors)) + min(len(fresh), 500),
    }
    gone = set(deletes)
    returned = 0
    for mode in ("dense", "lexical", "hybrid"):
        for q in [p.name for p in upserts[:100]] + misses[:100]:
            returned += sum(r.product.product_id in gone for r in engine.search(q, k=100, mode=mode))
    result["deleted_products_returned"] = returned
    result["deleted_still_indexed"] = sum(pid in engine.rows for pid in gone)
    print("recall@10:", json.dumps(result["recall@10"]), "deleted returned:", returned)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result, args))
    print((RESULTS / f"{args.name}.md").read_text())


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    u = result["update"]
    lines = [
        f"# Catalogue update ({result['date']})",
        "",
        f"{result['machine']}, {result['cpus']} CPUs. Index of {result['products_before']:,} demo products "
        f"({result['ann_before']['kind']}); one batch of {u['upserted']:,} upserts ({u['changed']:,} changed, "
        f"{u['added']:,} new) and {u['deleted']:,} deletes; {u['encoded']:,} products encoded.",
        "",
        "| step | seconds |",
        "| --- | ---: |",
        *(f"| {step} | {seconds:.2f} |" for step, seconds in u["seconds"].items()),
        f"| wall (child process) | {u['wall_seconds']:.2f} |",
        f"| reload (`SearchEngine.load`) | {result['reload_seconds']:.2f} |",
        "",
        f"Update peak memory {u['peak_rss_mb']:,} MB. ANN after the update: {u['ann']}.",
        "",
        f"| {args.mode} search | n | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for when in ("search_without_update", "search_during_update", "search_after_update"):
        for kind, p in result[when].items():
            if p:
                label = f"{when.removeprefix('search_').replace('_', ' ')}, {kind}"
                lines.append(f"| {label} | {p['n']} | {p['p50_ms']} | {p['p99_ms']} | {p['max_ms']} |")
    r = result["recall@10"]
    lines += [
        "",
        f"recall@10 against exact search over the updated embeddings: head queries {r['head_queries']}, new and "
        f"changed products {r['new_and_changed_products']}. Deleted products returned by dense, lexical or hybrid "
        f"search: {result['deleted_products_returned']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

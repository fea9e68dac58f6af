"""Scale-out engines against the single-machine defaults: Ray Data encoding and Milvus (lite) search.

    python benchmarks/bench_scale.py --model MODEL [--texts 2000] [--queries 500] [--skip-ray] [--skip-milvus]

Ray Data: products a second encoding ``--texts`` demo product texts with MODEL's product tower (ONNX Runtime where
the model has its export, as ``index`` does), single-process with 1 and 2 threads against Ray with 1 and 2 actors of
one CPU each (a local Ray started once; its start-up is reported apart), and the largest difference between the two
paths' vectors.

Milvus: the 49,688 products of the Instacart catalogue (``../shared/data/instacart-full``) encoded once by MODEL,
indexed in FAISS (HNSW, the default above 20,000 products) and in milvus-lite (HNSW, same M and efConstruction);
``--queries`` product names (their first three words) through the query tower are the queries. Per backend:
build seconds, recall@10 against exact search, and p50 / p99 of one query's search (vector given), as the service
calls it.

Service: one uncached dense search through the engine (query tower included) on the demo store's index, FAISS
(flat, the default at 5,000 products) against milvus-lite, with and without a department filter (pushed into
Milvus; a post-filter over 5 × 100 candidates with FAISS). Results go to ``results/scale.json`` (a part skipped
with ``--skip-*`` keeps its earlier result there).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from common import RESULTS, SHARED, machine
from towersearch.data.demo import generate_demo_store
from towersearch.data.importers.instacart import import_instacart
from towersearch.encoders import load_encoder
from towersearch.model import model_text_config
from towersearch.search.ann import AnnConfig, FaissIndex, exact_search
from towersearch.search.dense import encode_products, encode_queries
from towersearch.text import product_text


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def bench_ray(model: Path, texts_n: int, work: Path) -> dict:
    import ray
    import torch

    from towersearch.data import load_catalog
    from towersearch.encoders.ray_engine import RayConfig, encode_on_ray, start

    generate_demo_store(work / "demo")
    products = load_catalog(work / "demo" / "catalog.csv").products[:texts_n]
    text = model_text_config(model)
    out: dict = {"texts": len(products)}
    local = None
    for threads in (1, 2):
        torch.set_num_threads(threads)
        os.environ["TOWERSEARCH_ONNX_THREADS"] = str(threads)
        encoder = load_encoder(model)
        backend = out["backend"] = getattr(encoder, "backend", "torch")
        encode_products(encoder, products[:64], text)  # warm-up
        started = time.perf_counter()
        local = encode_products(encoder, products, text)
        out[f"single_process_{threads}_threads_per_s"] = round(len(products) / (time.perf_counter() - started), 1)
    texts = [product_text(p, text) for p in products]
    started = time.perf_counter()
    start(RayConfig())
    out["ray_start_s"] = round(time.perf_counter() - started, 1)
    for actors in (1, 2):
        config = RayConfig(actors=actors, threads=1)
        encode_on_ray(model, texts[:64], tower="document", backend=backend, config=config)  # actors' start-up
        started = time.perf_counter()
        vectors = encode_on_ray(model, texts, tower="document", backend=backend, config=config)
        out[f"ray_{actors}_actors_per_s"] = round(len(products) / (time.perf_counter() - started), 1)
        out[f"ray_{actors}_actors_max_abs_diff"] = float(np.abs(vectors - local).max())
    ray.shutdown()
    return out


def bench_milvus(model: Path, queries_n: int, work: Path) -> dict:
    from towersearch.data import load_catalog
    from towersearch.search.milvus import MilvusIndex, product_fields

    import_instacart(SHARED / "instacart-full", work / "instacart", judgements=False, category=True)
    products = load_catalog(work / "instacart" / "catalog.csv").products
    text = model_text_config(model)
    encoder = load_encoder(model)
    started = time.perf_counter()
    vectors = encode_products(encoder, products, text)
    out: dict = {"products": len(products), "encode_s": round(time.perf_counter() - started, 1)}
    names = [" ".join(p.name.split()[:3]) for p in random.Random(0).sample(products, queries_n)]
    queries = encode_queries(encoder, names, text)
    truth = exact_search(vectors, queries, 10)
    config = AnnConfig(kind="hnsw")
    backends = {}
    started = time.perf_counter()
    backends["faiss_hnsw"] = FaissIndex.build(vectors, config)
    build = {"faiss_hnsw": time.perf_counter() - started}
    started = time.perf_counter()
    backends["milvus_lite"] = MilvusIndex.build(
        vectors,
        product_fields(products),
        str(work / "store.db"),
        "bench_1",
        hnsw_m=config.hnsw_m,
        ef_construction=config.ef_construction,
        ef_search=config.ef_search,
    )
    build["milvus_lite"] = time.perf_counter() - started
    for name, index in backends.items():
        _, rows = index.search(queries, 10)
        recall = float(np.mean([len(set(r) & set(t)) / 10 for r, t in zip(rows.tolist(), truth.tolist(), strict=True)]))
        for q in queries[:20]:  # warm-up
            index.search(q[None, :], 10)
        samples = []
        for q in queries:
            started = time.perf_counter()
            index.search(q[None, :], 10)
            samples.append(time.perf_counter() - started)
        out[name] = {"build_s": round(build[name], 1), "recall@10": round(recall, 4), **percentiles(samples)}
    filtered = []
    milvus = backends["milvus_lite"]
    where = 'department == "produce"'
    for q in queries[:200]:
        started = time.perf_counter()
        milvus.search(q[None, :], 10, where=where)
        filtered.append(time.perf_counter() - started)
    out["milvus_lite_filtered"] = {"filter": where, **percentiles(filtered)}
    milvus.close()
    return out


def bench_service(model: Path, queries_n: int, work: Path) -> dict:
    """One dense search through the engine (query tower included, no query cache) on the demo store, FAISS against
    milvus-lite, with and without a department filter."""
    from towersearch.data import load_catalog, load_log
    from towersearch.index.build import IndexConfig, build_index
    from towersearch.search.engine import SearchEngine

    data = work / "demo"
    if not (data / "catalog.csv").is_file():
        generate_demo_store(data)
    catalog = load_catalog(data / "catalog.csv")
    events = load_log(data / "log.csv")[0]
    queries = sorted({e.query for e in events})
    queries = random.Random(1).sample(queries, min(queries_n, len(queries)))
    department = catalog.products[0].department
    configs = {
        "faiss_flat": IndexConfig(progress=False),
        "milvus_lite": IndexConfig(
            progress=False, ann=AnnConfig(kind="milvus", milvus_uri=str(work / "service.db"), collection="bench")
        ),
    }
    out: dict = {"products": len(catalog), "queries": len(queries), "department": department}
    for name, config in configs.items():
        build_index(catalog, work / name, model=model, config=config)
        engine = SearchEngine.load(work / name, cache_size=0)
        for label, options in (("dense", {}), ("dense_filtered", {"department": department})):
            for q in queries[:20]:
                engine.search(q, mode="dense", **options)
            samples = []
            for q in queries:
                started = time.perf_counter()
                engine.search(q, mode="dense", **options)
                samples.append(time.perf_counter() - started)
            out[f"{name}_{label}"] = percentiles(samples)
        if name == "milvus_lite":
            engine.dense.index.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="A trained model folder (the demo's towers).")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-milvus", action="store_true")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--name", default="scale")
    args = parser.parse_args()
    result: dict = {"machine": machine(), "model": str(args.model)}
    with tempfile.TemporaryDirectory(prefix="towersearch-scale-") as tmp:
        if not args.skip_ray:
            result["ray"] = bench_ray(args.model, args.texts, Path(tmp))
            print(json.dumps(result["ray"], indent=1), flush=True)
        if not args.skip_milvus:
            result["milvus"] = bench_milvus(args.model, args.queries, Path(tmp))
            print(json.dumps(result["milvus"], indent=1), flush=True)
        if not args.skip_service:
            result["service"] = bench_service(args.model, args.queries, Path(tmp))
            print(json.dumps(result["service"], indent=1), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    if path.is_file():  # a part skipped this time keeps its earlier result
        result = {**json.loads(path.read_text()), **result}
    path.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

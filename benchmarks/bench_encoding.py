"""Encoding speed and quality: PyTorch against ONNX Runtime (towersearch's export), fp32 and int8.

    python benchmarks/bench_encoding.py [--model DIR] [--queries 500] [--work /tmp/towersearch-bench-encoding]

- Queries one at a time (as a live search encodes them), on the demo store's log queries: p50 / p99 / mean.
- NDCG@10 of dense retrieval on the demo store's judgements: each path's query vectors against the same product
  embeddings (encoded once by PyTorch fp32, as an index holds them), so the change is the query path's alone; and,
  for the ONNX paths, with their own product embeddings as well (what an index built with them serves).
- Product encoding: products a second over the demo catalogue's product text, each path at its default batch size
  (128 for PyTorch, 16 for ONNX Runtime, whose batches are bucketed by token length); the bf16 path is
  ``index --product-precision bf16`` (PyTorch bf16 autocast for products, ONNX fp32 for queries).

The model folder is copied into ``--work`` and exported there (``towersearch.encoders.export_onnx``), fp32 and int8.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import RESULTS, machine
from towersearch.data import load_catalog, load_judgements, load_log
from towersearch.data.demo import DemoConfig, generate_demo_store
from towersearch.encoders import export_onnx, load_encoder
from towersearch.encoders.bf16 import Bf16Products, native_bf16
from towersearch.evaluation.report import evaluate
from towersearch.model import base_model_path, load_model, model_text_config
from towersearch.search.ann import AnnConfig, FaissIndex
from towersearch.search.dense import DenseRetriever, QueryEncoder, encode_products, encode_queries
from towersearch.search.retriever import Hit


class Fixed:
    """Dense retrieval with given query vectors (from one encoding path) against fixed product embeddings."""

    def __init__(self, dense: DenseRetriever, vectors: dict[str, np.ndarray]) -> None:
        self.dense, self.vectors = dense, vectors

    def search(self, queries: list[str], k: int = 10) -> list[list[Hit]]:
        return self.dense.search_vectors(np.stack([self.vectors[q] for q in queries]), k)


def time_one_by_one(model, queries: list[str], text) -> tuple[list[float], dict[str, np.ndarray]]:
    for q in queries[:20]:
        encode_queries(model, [q], text)
    ms, vectors = [], {}
    for q in queries:
        t = time.perf_counter()
        vectors[q] = encode_queries(model, [q], text)[0]
        ms.append((time.perf_counter() - t) * 1000)
    return ms, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Model folder (default: the untrained base model).")
    parser.add_argument("--queries", type=int, default=500, help="Log queries timed one by one.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/towersearch-bench-encoding"))
    parser.add_argument("--name", default="encoding")
    args = parser.parse_args()
    import torch

    data = args.work / "demo"
    if not (data / "judgements.csv").is_file():
        generate_demo_store(data, DemoConfig(seed=0))
    catalog = load_catalog(data / "catalog.csv")
    judgements, _ = load_judgements(data / "judgements.csv")
    events, _ = load_log(data / "log.csv")
    log_queries = sorted({e.query for e in events})
    timed = random.Random(0).sample(log_queries, min(args.queries, len(log_queries)))
    text = model_text_config(args.model)

    folder = args.work / "model"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(args.model or base_model_path(), folder)
    export_onnx(load_model(folder), folder, quantize=True)
    plain = load_model(folder)
    ids = [p.product_id for p in catalog.products]

    def retriever(model, embeddings: np.ndarray) -> DenseRetriever:
        index = FaissIndex.build(embeddings, AnnConfig(kind="flat"))
        return DenseRetriever(QueryEncoder(model, text, cache_size=0), ids, index, embeddings)

    paths: dict[str, Any] = {
        "pytorch fp32": plain,
        "pytorch int8 (dynamic)": torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(plain), {torch.nn.Linear}, dtype=torch.qint8
        ),
        "onnx fp32": load_encoder(folder, backend="onnx"),
        "onnx int8 (dynamic)": load_encoder(folder, backend="onnx", quantized=True),
    }
    onnx_fp32 = paths["onnx fp32"]
    paths["bf16 products, onnx fp32 queries"] = Bf16Products(plain, onnx_fp32)  # `index --product-precision bf16`
    product_vectors: dict[str, np.ndarray] = {}
    throughput: dict[str, float] = {}
    for name in ("pytorch fp32", "onnx fp32", "onnx int8 (dynamic)", "bf16 products, onnx fp32 queries"):
        start = time.perf_counter()
        product_vectors[name] = encode_products(paths[name], catalog.products, text)  # each its default batch
        throughput[name] = round(len(catalog.products) / (time.perf_counter() - start), 1)
        print(name, "products/s", throughput[name], flush=True)
    dense = retriever(plain, product_vectors["pytorch fp32"])

    rows: dict[str, Any] = {}
    for name, model in paths.items():
        ms, _ = time_one_by_one(model, timed, text)
        judged = list(judgements)
        vectors = {q: encode_queries(model, [q], text)[0] for q in judged}
        ndcg = evaluate({"dense": Fixed(dense, vectors)}, judgements).metrics["dense"]["ndcg@10"]
        a = np.asarray(ms)
        rows[name] = {
            "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
            "mean_ms": round(statistics.mean(ms), 2),
            "ndcg@10": round(ndcg, 4),
        }
        if name in product_vectors and name != "pytorch fp32":  # its own product vectors too
            own = Fixed(retriever(model, product_vectors[name]), vectors)
            rows[name]["ndcg@10_own_products"] = round(
                evaluate({"dense": own}, judgements).metrics["dense"]["ndcg@10"], 4
            )
            rows[name]["max_abs_diff_products"] = float(
                np.abs(product_vectors[name] - product_vectors["pytorch fp32"]).max()
            )
        rows[name]["products_per_s"] = throughput.get(name)
        print(name, rows[name], flush=True)
    base = rows["pytorch fp32"]
    for row in rows.values():
        row["speedup"] = round(base["mean_ms"] / row["mean_ms"], 2)
        row["ndcg_change"] = round(row["ndcg@10"] / base["ndcg@10"] - 1, 4)
    payload = {
        "benchmark": args.name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "native_bf16": native_bf16(),
        "model": args.model or "untrained all-MiniLM-L6-v2",
        "queries_timed": len(timed),
        "judged_queries": len(judgements),
        "paths": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Query encoding",
        "",
        f"{payload['date']}; {payload['machine']}, {payload['threads']} threads; model: {payload['model']}; "
        f"{len(timed)} demo log queries encoded one at a time; NDCG@10 of dense retrieval on "
        f"{len(judgements)} judged demo queries against the same fp32 product embeddings.",
        "",
        "| path | p50 ms | p99 ms | mean ms | speed-up | NDCG@10 | change | NDCG@10, own products | products/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        own = f"{r['ndcg@10_own_products']:.4f}" if "ndcg@10_own_products" in r else "–"
        lines.append(
            f"| {name} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_ms']} | {r['speedup']}× | {r['ndcg@10']:.4f} | "
            f"{r['ndcg_change']:+.2%} | {own} | {r['products_per_s'] or '–'} |"
        )
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

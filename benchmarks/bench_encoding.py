"""Query encoding speed and quality: plain PyTorch against int8 dynamic quantisation (and ONNX when installed).

    python benchmarks/bench_encoding.py [--model DIR] [--queries 500] [--work /tmp/towersearch-bench-encoding]

One query at a time (as a live search encodes it), on the demo store's queries. Each path's NDCG@10 is measured on
the demo store's held-out judgements: its query vectors against the same product embeddings (encoded once by the
plain model, as an index holds them), so the NDCG change is the query path's alone. ONNX paths run only when
``optimum`` and ``onnxruntime`` are installed (``pip install "sentence-transformers[onnx]"``).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import RESULTS, machine
from towersearch.data import load_catalog, load_judgements, load_log
from towersearch.data.demo import DemoConfig, generate_demo_store
from towersearch.evaluation.report import evaluate
from towersearch.model import base_model_path, load_model, model_text_config
from towersearch.search.dense import DenseRetriever, encode_products, encode_queries
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

    plain = load_model(args.model)
    products = encode_products(plain, catalog.products, text)
    dense = DenseRetriever(plain, [p.product_id for p in catalog.products], products, text)
    paths: dict[str, Any] = {"pytorch fp32": plain}
    paths["pytorch int8 (dynamic)"] = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(plain), {torch.nn.Linear}, dtype=torch.qint8
    )
    try:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.backend import export_dynamic_quantized_onnx_model

        folder = str(args.model or base_model_path())
        onnx = SentenceTransformer(folder, backend="onnx", device="cpu", local_files_only=True)
        paths["onnx fp32"] = onnx
        quant_dir = args.work / "onnx-int8"
        onnx.save(str(quant_dir))
        export_dynamic_quantized_onnx_model(onnx, "avx2", str(quant_dir))
        paths["onnx int8 (avx2)"] = SentenceTransformer(
            str(quant_dir), backend="onnx", model_kwargs={"file_name": "onnx/model_qint8_avx2.onnx"}
        )
    except Exception as exc:  # noqa: BLE001 - an optional path; say why it was skipped
        print(f"ONNX skipped: {type(exc).__name__}: {exc}")

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
        "| path | p50 ms | p99 ms | mean ms | speed-up | NDCG@10 | change |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_ms']} | {r['speedup']}× | {r['ndcg@10']:.4f} | "
            f"{r['ndcg_change']:+.2%} |"
        )
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Autocomplete quality on held-out sessions of the demo log: prefix → the query the shopper finally searched.

    python benchmarks/bench_autocomplete.py [--model MODEL_DIR] [--work /tmp/towersearch-ac]

Sessions are split by a seeded draw (10% held out); candidates and their embeddings come from the other 90% (and
the catalogue). For every held-out session's last query and each prefix length of 1–6 characters, the
suggestions count as a success when the query is shown or folded into a shown suggestion (the same intent);
MRR@8 uses the rank of that suggestion. Diversity is the share of shown suggestions that are distinct intents by
an independent judge (the untrained all-MiniLM-L6-v2: cosine below 0.85 and different normal forms), measured
with and without de-duplication, over a range of de-duplication thresholds.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from common import RESULTS, machine
from towersearch.data import load_catalog, load_log, normalize_query
from towersearch.data.demo import DemoConfig, generate_demo_store
from towersearch.model import load_model, model_text_config
from towersearch.search.autocomplete import SuggestConfig, Suggester, build_candidates, normal_form
from towersearch.search.dense import encode_queries

THRESHOLDS = (0.8, 0.85, 0.9, 0.95, 1.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="Query tower for candidates (default: untrained).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/towersearch-ac"))
    args = parser.parse_args()
    data = args.work / "data"
    if not (data / "log.csv").exists():
        generate_demo_store(data, DemoConfig())
    catalog = load_catalog(data / "catalog.csv")
    events, _ = load_log(data / "log.csv")
    sessions = sorted({e.session_id for e in events})
    held = set(random.Random(0).sample(sessions, len(sessions) // 10))
    train = [e for e in events if e.session_id not in held]
    finals: dict[str, tuple[str, str]] = {}
    for e in events:
        if e.session_id in held and (e.session_id not in finals or e.timestamp >= finals[e.session_id][0]):
            finals[e.session_id] = (e.timestamp, normalize_query(e.query))
    targets = [q for _, q in finals.values()]
    candidates = build_candidates(train, catalog.products)
    model = load_model(args.model)
    vectors = encode_queries(model, [c.text for c in candidates], model_text_config(args.model))
    judge = load_model(None)
    rows = {}
    for threshold in THRESHOLDS:
        for dedup in (True, False):
            if not dedup and threshold != THRESHOLDS[0]:
                continue
            suggester = Suggester(candidates, vectors, SuggestConfig(dedup_threshold=min(threshold, 1.0)))
            if threshold > 1.0:
                suggester.embeddings = None  # normal forms only
            hits, rr, shown_total, distinct_total, n = 0, 0.0, 0, 0, 0
            shown_cache: dict[str, list] = {}
            for query in targets:
                for length in range(1, min(6, len(query)) + 1):
                    prefix = query[:length]
                    if not prefix.strip():
                        continue
                    if prefix not in shown_cache:
                        shown_cache[prefix] = suggester.suggest(prefix, 8, dedup=dedup)
                    shown = shown_cache[prefix]
                    n += 1
                    for rank, s in enumerate(shown, start=1):
                        if s.text == query or query in s.folded:
                            hits += 1
                            rr += 1 / rank
                            break
            for shown in shown_cache.values():
                texts = [s.text for s in shown]
                if not texts:
                    continue
                emb = judge.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
                kept: list[int] = []
                for i in range(len(texts)):
                    same = any(
                        float(emb[i] @ emb[j]) >= 0.85 or normal_form(texts[i]) == normal_form(texts[j]) for j in kept
                    )
                    if not same:
                        kept.append(i)
                shown_total += len(texts)
                distinct_total += len(kept)
            name = (
                f"dedup@{threshold:g}" if dedup and threshold <= 1.0 else ("normal forms only" if dedup else "no dedup")
            )
            rows[name] = {
                "success@8": round(hits / n, 4),
                "mrr@8": round(rr / n, 4),
                "distinct_share": round(distinct_total / max(shown_total, 1), 4),
                "prefixes": n,
            }
            print(name, rows[name], flush=True)
    result = {
        "benchmark": "autocomplete quality",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "model": str(args.model) if args.model else "untrained all-MiniLM-L6-v2",
        "held_out_sessions": len(held),
        "candidates": len(candidates),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "autocomplete.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

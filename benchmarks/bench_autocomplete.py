"""Autocomplete quality on held-out sessions of the demo log: prefix → the query the shopper finally searched.

    python benchmarks/bench_autocomplete.py [--model MODEL_DIR] [--products 5000]

Sessions are split by a seeded draw (10% held out); candidates and their embeddings come from the other 90% (and
the catalogue). For every held-out session's last query and each prefix length of 1–6 characters, the top 8
suggestions are judged against the demo generator's ground truth: the intent behind every spelling in the log
("mac n cheese", "macaroni & cheese" and "mac and cheese" are one intent; a catalogue phrase is its own).

- success@8: a shown suggestion has the final query's intent; MRR@8 uses the rank of the first such suggestion.
- exact@8: the final query's own text is shown.
- distinct share (diversity): distinct intents among the shown suggestions, over the number shown.

Each is measured without de-duplication, with normal forms only (plural/singular, "&"/"and"/"n", known
abbreviations), and with normal forms plus embedding de-duplication at several cosine thresholds (folds that the
catalogue's modifier words forbid are never made).

People's expectations: the prefixes of ``tests/fixtures/autocomplete_expectations.json`` (what must be shown, hidden,
folded together or kept apart) are checked with the same query tower on the whole demo log and, where
``../shared/data/instacart-full`` is present, on the Instacart catalogue; the count that pass is reported.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from common import RESULTS, SHARED, machine
from towersearch.data import load_catalog, normalize_query
from towersearch.data.demo import DemoConfig, build_demo_store
from towersearch.data.importers.instacart import import_instacart
from towersearch.evaluation.expectations import check, load_expectations, suggester_for
from towersearch.model import load_model, model_text_config
from towersearch.search.autocomplete import SuggestConfig, Suggester, build_candidates
from towersearch.search.dense import encode_queries
from towersearch.search.phrases import Vocabulary

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "autocomplete_expectations.json"

THRESHOLDS = (0.75, 0.8, 0.85, 0.9, 0.95)
PREFIX_LENGTHS = range(1, 7)


def people_expectations(store, model, model_dir) -> dict:
    """Pass counts of the expectations fixture per store (the Instacart one only where its data is present)."""
    cases = load_expectations(FIXTURE)
    text = model_text_config(model_dir)

    def encode(texts: list[str]):
        return encode_queries(model, texts, text)

    sources = {"demo": (store.events, store.products)}
    if (SHARED / "instacart-full").is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            import_instacart(SHARED / "instacart-full", Path(tmp), judgements=False)
            sources["instacart"] = ([], load_catalog(Path(tmp) / "catalog.csv").products)
    out = {}
    for name, (events, products) in sources.items():
        mine = [c for c in cases if c.store == name]
        suggester = suggester_for(events, products, [c.prefix for c in mine], encode)
        outcomes = [check(c, suggester.suggest) for c in mine]
        out[name] = {
            "cases": len(mine),
            "passed": sum(o.passed for o in outcomes),
            "failed": [{"prefix": o.case.prefix, "failures": o.failures} for o in outcomes if not o.passed],
        }
        print(name, "expectations", out[name]["passed"], "/", len(mine), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="Query tower for candidates (default: untrained).")
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--name", default="autocomplete")
    args = parser.parse_args()
    store = build_demo_store(DemoConfig(n_products=args.products, seed=0))
    intents = store.query_intents
    sessions = sorted({e.session_id for e in store.events})
    held = set(random.Random(0).sample(sessions, len(sessions) // 10))
    train = [e for e in store.events if e.session_id not in held]
    finals: dict[str, tuple[str, str]] = {}
    for e in store.events:
        if e.session_id in held and (e.session_id not in finals or e.timestamp >= finals[e.session_id][0]):
            finals[e.session_id] = (e.timestamp, normalize_query(e.query))
    targets = [q for _, q in finals.values()]
    vocabulary = Vocabulary.from_products(store.products)
    candidates = build_candidates(train, store.products, vocabulary=vocabulary)
    model = load_model(args.model)
    vectors = encode_queries(model, [c.text for c in candidates], model_text_config(args.model))

    def intent(text: str) -> str:
        return intents.get(text, text)

    settings = [("no dedup", None, False), ("normal forms only", None, True)]
    settings += [(f"dedup@{t:g}", t, True) for t in THRESHOLDS]
    rows = {}
    for name, threshold, dedup in settings:
        config = SuggestConfig(dedup_threshold=threshold or 1.0)
        suggester = Suggester(candidates, vectors, config, vocabulary.modifiers)
        if threshold is None:
            suggester.embeddings = None  # normal forms only (or nothing, without dedup)
        success = exact = 0
        rr = 0.0
        n = shown_total = distinct_total = 0
        cache: dict[str, list[str]] = {}
        for query in targets:
            goal = intent(query)
            for length in PREFIX_LENGTHS:
                prefix = query[:length]
                if length > len(query) or not prefix.strip():
                    continue
                if prefix not in cache:
                    cache[prefix] = [s.text for s in suggester.suggest(prefix, 8, dedup=dedup)]
                shown = cache[prefix]
                n += 1
                exact += query in shown
                for rank, text in enumerate(shown, start=1):
                    if intent(text) == goal:
                        success += 1
                        rr += 1 / rank
                        break
        for shown in cache.values():
            shown_total += len(shown)
            distinct_total += len({intent(t) for t in shown})
        rows[name] = {
            "success@8": round(success / n, 4),
            "mrr@8": round(rr / n, 4),
            "exact@8": round(exact / n, 4),
            "distinct_share": round(distinct_total / max(shown_total, 1), 4),
            "shown_per_prefix": round(shown_total / max(len(cache), 1), 2),
        }
        print(name, rows[name], flush=True)
    expectations = people_expectations(store, model, args.model)
    result = {
        "benchmark": args.name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "model": str(args.model) if args.model else "untrained all-MiniLM-L6-v2",
        "products": args.products,
        "held_out_sessions": len(held),
        "prefixes": n,
        "candidates": len(candidates),
        "rows": rows,
        "expectations": expectations,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Autocomplete quality",
        "",
        f"{result['date']}; {result['machine']}; demo store ({args.products} products), {len(held)} held-out "
        f"sessions, {n} (final query, prefix of 1–6 characters) cases, {len(candidates)} candidates; "
        f"candidate embeddings: {result['model']}.",
        "",
        "| de-duplication | success@8 | MRR@8 | exact@8 | distinct share | shown per prefix |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['success@8']:.4f} | {r['mrr@8']:.4f} | {r['exact@8']:.4f} | {r['distinct_share']:.4f} "
            f"| {r['shown_per_prefix']} |"
        )
    lines += ["", "People's expectations (default settings, `tests/fixtures/autocomplete_expectations.json`):", ""]
    for store_name, r in expectations.items():
        failed = "; ".join(f"{f['prefix']!r}: {', '.join(f['failures'])}" for f in r["failed"]) or "none"
        lines.append(f"- {store_name}: {r['passed']}/{r['cases']} prefixes pass; failed: {failed}")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Real catalogue: the Instacart aisle-retrieval task, trained on product text alone.

    python benchmarks/bench_instacart_aisles.py [--max-steps 600] [--sample | --full]

Each aisle name (129 of them in the sample) is a query and the products of that aisle are relevant. Training sees
only the product names: cold-start synthetic queries built from them, no aisle or department label anywhere
(the catalogue is imported with ``--no-category``). Compared with BM25 and the untrained model on names, the
references of ``../shared/data/instacart-sample/README.md`` (NDCG@10 / Recall@100: 0.363 / 0.267 and
0.508 / 0.426).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import SHARED, compare, save, with_overrides
from towersearch.data import load_catalog, load_judgements
from towersearch.data.importers.instacart import import_instacart
from towersearch.text import TextConfig
from towersearch.training.pairs import load_generator
from towersearch.training.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="All 49,688 products instead of the 9,288 sample.")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--name", default=None, help="Result file name (default: instacart_aisles[_full]).")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=JSON", help="TrainConfig overrides (text.markers=false, …)."
    )
    parser.add_argument("--query-generator", default=None, help="module:function, as train's --query-generator.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="towersearch-instacart-"))
    source = SHARED / ("instacart-full" if args.full else "instacart-sample")
    import_instacart(source, work / "data", judgements=True, category=False)
    catalog = load_catalog(work / "data" / "catalog.csv")
    assert not any(p.category for p in catalog), "no aisle or department label may reach training"
    judgements, _ = load_judgements(work / "data" / "judgements.csv")
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = with_overrides(TrainConfig(max_steps=args.max_steps, seed=args.seed), overrides)
    start = time.perf_counter()
    generator = load_generator(args.query_generator) if args.query_generator else None
    summary = train(catalog, work / "model", config=config, generator=generator)
    seconds = time.perf_counter() - start
    evaluation = compare(
        catalog,
        judgements,
        {"untrained": None, "trained": work / "model"},
        bm25_fields=("name",),
        untrained_text=TextConfig(fields=("name",), markers=False),
    )
    save(
        args.name or ("instacart_aisles_full" if args.full else "instacart_aisles"),
        evaluation,
        {
            "overrides": overrides,
            "query_generator": args.query_generator,
            "train_seconds": round(seconds, 1),
            "products": len(catalog),
            "training": {k: summary.get(k) for k in ("pairs", "stages", "steps")},
            "note": "BM25 here stems (Snowball); the README reference 0.363 / 0.267 is without stemming.",
        },
    )


if __name__ == "__main__":
    main()

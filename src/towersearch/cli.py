"""The ``towersearch`` command line: one command per pipeline step, ``--json`` output for scripts."""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from towersearch.cli_common import JsonOpt, SkipOpt, _emit_json, _summary_table, err, out
from towersearch.cli_options import config_options, section_values, with_options
from towersearch.errors import ConfigError, TowersearchError
from towersearch.text import TextConfig
from towersearch.training.config import TrainConfig
from towersearch.training.pairs import PairConfig
from towersearch.training.ranking import RankerConfig

app = typer.Typer(
    name="towersearch",
    help="Two-tower semantic product search and autocomplete for online stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
import_app = typer.Typer(help="Import public datasets into towersearch's formats.", no_args_is_help=True)
app.add_typer(import_app, name="import")
events_app = typer.Typer(help="The service's event store: searches, what they showed, shoppers' events.")
app.add_typer(events_app, name="events")


def read_log(path: Path, *, product_ids=None, skip_bad_rows: bool = False):
    """A search log file, or the event store the service records into (told apart by the file's header)."""
    from towersearch.data import load_log
    from towersearch.events.store import is_event_store, load_store_log

    if is_event_store(path):
        return load_store_log(path, product_ids=product_ids, skip_bad_rows=skip_bad_rows)
    return load_log(path, product_ids=product_ids, skip_bad_rows=skip_bad_rows)


@app.command("demo-data")
def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder for catalog.csv, log.csv, judgements.csv and reviews.csv.")],
    products: Annotated[int, typer.Option("--products", help="Number of products.")] = 5000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same files.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Generate the built-in demo grocery store: catalogue, search log and held-out judgements."""
    from towersearch.data.demo import DemoConfig, generate_demo_store

    summary = generate_demo_store(out_dir, DemoConfig(n_products=products, seed=seed))
    if as_json:
        _emit_json(summary)
    else:
        out.print(_summary_table(f"Demo store written to {out_dir}", _flatten(summary)))


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            flat[f"{prefix}{key}"] = ", ".join(map(str, value))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@import_app.command("instacart")
def import_instacart(
    src_dir: Annotated[Path, typer.Argument(help="Folder with products.csv, aisles.csv, departments.csv.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write catalog.csv (and judgements.csv) into.")],
    judgements: Annotated[
        bool, typer.Option("--judgements/--no-judgements", help="Also write the aisle-retrieval judgements.")
    ] = False,
    category: Annotated[
        bool,
        typer.Option(
            "--category/--no-category", help="Write 'department > aisle' as category (off for the aisle task)."
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Import the Instacart 2017 products, aisles and departments files."""
    from towersearch.data.importers.instacart import import_instacart as run

    summary = run(src_dir, out_dir, judgements=judgements, category=category)
    _emit_json(summary) if as_json else out.print(_summary_table(f"Instacart → {out_dir}", _flatten(summary)))


@import_app.command("esci")
def import_esci(
    src_dir: Annotated[Path, typer.Argument(help="Folder with the Shopping Queries dataset's parquet files.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write catalog.csv and judgements.csv into.")],
    locale: Annotated[str, typer.Option(help="us, es, jp or all.")] = "us",
    version: Annotated[str, typer.Option(help="small, large or all.")] = "small",
    split: Annotated[str, typer.Option(help="train, test or all.")] = "test",
    examples: Annotated[Path | None, typer.Option(help="Examples file, if not the default name.")] = None,
    products: Annotated[Path | None, typer.Option(help="Products file, if not the default name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import the Amazon Shopping Queries (ESCI) dataset: catalogue and graded judgements."""
    from towersearch.data.importers.esci import import_esci as run

    summary = run(src_dir, out_dir, locale=locale, version=version, split=split, examples=examples, products=products)
    _emit_json(summary) if as_json else out.print(_summary_table(f"ESCI → {out_dir}", _flatten(summary)))


@import_app.command("crowdflower")
def import_crowdflower(
    src: Annotated[Path, typer.Argument(help="The competition's train.csv, or its folder.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for catalog.csv, log.csv and judgements.csv.")],
    seed: Annotated[int, typer.Option(help="Seed of the query split.")] = 0,
    train_share: Annotated[float, typer.Option(help="Share of queries whose judgements become the log.")] = 0.5,
    as_json: JsonOpt = False,
) -> None:
    """Import CrowdFlower real queries: one half as a search log, the other as held-out judgements."""
    from towersearch.data.importers.crowdflower import import_crowdflower as run

    summary = run(src, out_dir, seed=seed, train_share=train_share)
    _emit_json(summary) if as_json else out.print(_summary_table(f"CrowdFlower → {out_dir}", summary))


@import_app.command("homedepot")
def import_homedepot(
    src_dir: Annotated[Path, typer.Argument(help="Folder with products.csv and train.csv.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for catalog.csv, log.csv and judgements.csv.")],
    eval_queries: Annotated[int, typer.Option(help="Search terms held out as judgements.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the search-term split.")] = 0,
    click_at: Annotated[float, typer.Option(help="Lowest relevance (1-3) logged as a click.")] = 2.33,
    cart_at: Annotated[float, typer.Option(help="Lowest relevance logged as an add-to-cart.")] = 2.67,
    purchase_at: Annotated[float, typer.Option(help="Lowest relevance logged as a purchase.")] = 3.0,
    as_json: JsonOpt = False,
) -> None:
    """Import Home Depot search terms and ratings: a seeded split into a search log and held-out judgements."""
    from towersearch.data.importers.homedepot import import_homedepot as run

    summary = run(
        src_dir,
        out_dir,
        eval_queries=eval_queries,
        seed=seed,
        click_at=click_at,
        cart_at=cart_at,
        purchase_at=purchase_at,
    )
    _emit_json(summary) if as_json else out.print(_summary_table(f"Home Depot → {out_dir}", _flatten(summary)))


@import_app.command("amazon-reviews")
def import_amazon_reviews(
    src: Annotated[Path, typer.Argument(help="The Amazon Fine Food Reviews' Reviews.csv, or its folder.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write reviews.csv into.")],
    as_json: JsonOpt = False,
) -> None:
    """Import Amazon Fine Food Reviews as a reviews file (for the review-intent classifier)."""
    from towersearch.data.importers.amazon_reviews import import_amazon_reviews as run

    summary = run(src, out_dir)
    _emit_json(summary) if as_json else out.print(_summary_table(f"Amazon reviews → {out_dir}", _flatten(summary)))


@app.command()
def validate(
    catalog: Annotated[Path | None, typer.Option(help="Catalogue file (CSV, TSV, JSON Lines or Parquet).")] = None,
    log: Annotated[Path | None, typer.Option(help="Search log file, or an event store.")] = None,
    judgements: Annotated[Path | None, typer.Option(help="Judgements file.")] = None,
    skip_bad_rows: SkipOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check data files without doing anything else, and print what they hold."""
    from towersearch.data import load_catalog, load_judgements
    from towersearch.data.schema import split_category

    if catalog is None and log is None and judgements is None:
        raise ConfigError("nothing to validate: give --catalog, --log and/or --judgements")
    result: dict[str, Any] = {}
    product_ids = None
    if catalog is not None:
        cat = load_catalog(catalog, skip_bad_rows=skip_bad_rows)
        product_ids = set(cat.ids)
        result["catalog"] = {
            **cat.report.as_dict(),
            "products": len(cat),
            "departments": len({p.department for p in cat if p.department}),
            "categories": len({" > ".join(split_category(p.category)) for p in cat if p.category}),
            "brands": len({p.brand for p in cat if p.brand}),
        }
    if log is not None:
        events, report = read_log(log, product_ids=product_ids, skip_bad_rows=skip_bad_rows)
        by_event: Counter[str] = Counter()
        for e in events:
            by_event[e.event] += e.count
        result["log"] = {
            **report.as_dict(),
            "events": dict(sorted(by_event.items())),
            "queries": len({e.query for e in events}),
            "products": len({e.product_id for e in events}),
            "sessions": len({e.session_id for e in events if e.session_id}),
        }
    if judgements is not None:
        judged, report = load_judgements(judgements, product_ids=product_ids, skip_bad_rows=skip_bad_rows)
        grades: Counter[float] = Counter(g for q in judged.values() for g in q.values())
        result["judgements"] = {
            **report.as_dict(),
            "queries": len(judged),
            "grades": {str(int(g) if g.is_integer() else g): n for g, n in sorted(grades.items())},
        }
    if as_json:
        _emit_json(result)
        return
    for name, section in result.items():
        rows = {k: v for k, v in _flatten(section).items() if k != "examples" and v != ""}
        out.print(_summary_table(f"{name}: OK", rows))
        for example in section.get("examples", []):
            err.print(f"  skipped: {example}")


@app.command()
def evaluate(
    judgements: Annotated[Path, typer.Option(help="Judgements file (query, product_id, grade).")],
    catalog: Annotated[Path | None, typer.Option(help="Catalogue: build the retrievers in memory.")] = None,
    index: Annotated[Path | None, typer.Option(help="A built index folder (towersearch index).")] = None,
    retriever: Annotated[
        str, typer.Option(help="bm25, dense, hybrid, ranked (models with a ranker), comma-separated, or all.")
    ] = "all",
    model: Annotated[
        Path | None, typer.Option(help="Trained model folder for dense/hybrid (default: the untrained base model).")
    ] = None,
    relevant_grade: Annotated[
        float, typer.Option("--relevant-grade", help="Minimum grade that counts as relevant for recall and MRR.")
    ] = 1.0,
    fields: Annotated[str, typer.Option(help="Product fields BM25 indexes, comma-separated.")] = (
        "name,brand,category,size,attributes"
    ),
    stemmer: Annotated[str, typer.Option(help="BM25 stemmer: english or none.")] = "english",
    spelling: Annotated[
        bool, typer.Option(help="BM25 reads a query word it does not know as the index term it most likely misspells.")
    ] = True,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for metrics.json, .md and .png.")] = None,
    skip_bad_rows: SkipOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate retrievers on graded judgements: NDCG@10, Recall@10, Recall@100, MRR@10, and how much of each list
    was judged (judged@10, condensed_ndcg@10)."""
    from towersearch.data import load_catalog, load_judgements
    from towersearch.evaluation.metrics import ALL_METRICS
    from towersearch.evaluation.report import evaluate as run_evaluation
    from towersearch.evaluation.report import write_report
    from towersearch.search.factory import available_retrievers, build_retrievers, parse_retriever_names
    from towersearch.text import parse_fields

    if (catalog is None) == (index is None):
        raise ConfigError("give exactly one of --catalog (build in memory) or --index (a built index folder)")
    if index is not None:
        from towersearch.search.engine import SearchEngine

        engine = SearchEngine.load(index, model=model)
        names = parse_retriever_names(retriever, list(engine.retrievers))
        judged, _ = load_judgements(judgements, product_ids=set(engine.rows), skip_bad_rows=skip_bad_rows)
        retrievers = {name: engine.retrievers[name] for name in names}
    else:
        names = parse_retriever_names(retriever, available_retrievers(model))
        cat = load_catalog(catalog, skip_bad_rows=skip_bad_rows)
        judged, _ = load_judgements(judgements, product_ids=set(cat.ids), skip_bad_rows=skip_bad_rows)
        retrievers = build_retrievers(
            cat,
            names,
            bm25_fields=parse_fields(fields),
            stemmer=stemmer,
            spelling=spelling,
            model=model,
            progress=not as_json,
        )
    evaluation = run_evaluation(retrievers, judged, relevant_grade=relevant_grade)
    if out_dir is not None:
        source = {"index": str(index)} if index else {"catalog": str(catalog)}
        write_report(evaluation, out_dir, extra={"judgements": str(judgements), **source})
    if as_json:
        _emit_json(evaluation.as_dict())
        return
    table = Table(title=f"{evaluation.queries} judged queries", title_justify="left", pad_edge=False)
    table.add_column("retriever")
    for m in ALL_METRICS:  # the long names on two lines, so the table fits 80 columns
        table.add_column(m.replace("_", "\n", 1), justify="right", no_wrap=True)
    for name, values in evaluation.metrics.items():
        table.add_row(name, *(f"{values[m]:.4f}" for m in ALL_METRICS))
    out.print(table)
    if evaluation.skipped_queries:
        err.print(f"{evaluation.skipped_queries} queries with no product graded >= {relevant_grade} were left out")
    if out_dir is not None:
        out.print(f"report written to {out_dir}/metrics.{{json,md,png}}")


TRAIN_OPTIONS = [
    *config_options(TrainConfig, skip={"progress"}, flags={"cached_loss", "resume"}, panel="Training"),
    *config_options(PairConfig, "pairs", skip={"seed"}, panel="Training pairs"),  # pairs.seed follows --seed
    *config_options(TextConfig, "text", panel="Product and query text"),
    *config_options(RankerConfig, "ranker", prefix="ranker_", names={"enabled": "ranker"}, panel="Ranking stage"),
]
"""The ``train`` command's options: the fields of :class:`TrainConfig` and of its nested configs."""


def train_config(options: dict[str, Any], *, progress: bool) -> TrainConfig:
    """The training configuration for the parsed values of :data:`TRAIN_OPTIONS`."""
    values = section_values(TRAIN_OPTIONS, options)
    top = values[""]
    return TrainConfig(
        **top,
        progress=progress,
        text=TextConfig(**values["text"]),
        pairs=PairConfig(**values["pairs"], seed=top["seed"]),
        ranker=RankerConfig(**values["ranker"]),
    )


@app.command()
@with_options(TRAIN_OPTIONS)
def train(
    catalog: Annotated[Path, typer.Option(help="Catalogue file.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the trained model (replaced atomically).")],
    log: Annotated[
        Path | None,
        typer.Option(help="Search log, or the service's event store; without it, cold-start synthetic queries only."),
    ] = None,
    judgements: Annotated[Path | None, typer.Option(help="Held-out judgements to evaluate after each stage.")] = None,
    base_model: Annotated[Path | None, typer.Option(help="Start from this model folder instead of MiniLM.")] = None,
    init_model: Annotated[
        Path | None,
        typer.Option(
            help="Warm start: continue from these trained towers (a model folder train saved, or an index "
            "generation's model/) instead of the base model; distinct towers stay distinct. The base model stays "
            "the untrained reference (guided negatives, neighbour queries)."
        ),
    ] = None,
    query_generator: Annotated[
        str | None, typer.Option(help="Extra synthetic queries from module:function (off by default).")
    ] = None,
    skip_bad_rows: SkipOpt = False,
    as_json: JsonOpt = False,
    **options: Any,
) -> None:
    """Train the query and product towers (two-step cascade by default) and save a sentence-transformers folder."""
    from towersearch.data import load_catalog, load_judgements
    from towersearch.training.distributed import is_main, leave, world_size
    from towersearch.training.pairs import load_generator
    from towersearch.training.train import train as run

    config = train_config(options, progress=not as_json)
    generator = load_generator(query_generator) if query_generator else None
    cat = load_catalog(catalog, skip_bad_rows=skip_bad_rows)
    events = read_log(log, product_ids=set(cat.ids), skip_bad_rows=skip_bad_rows)[0] if log else []
    judged = (
        load_judgements(judgements, product_ids=set(cat.ids), skip_bad_rows=skip_bad_rows)[0] if judgements else None
    )
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout stays for results
        summary = run(
            cat,
            out_dir,
            events=events,
            config=config,
            judgements=judged,
            base_model=base_model,
            generator=generator,
            init_model=init_model,
        )
    if is_main():  # one of several training processes: the first reports and saves
        _report_training(summary, out_dir, as_json)
    if world_size() > 1:
        leave()  # every process of the group, without the interpreter's finalisation


def _report_training(summary: dict[str, Any], out_dir: Path, as_json: bool) -> None:
    if as_json:
        _emit_json(summary)
        return
    out.print(_summary_table("Training pairs", summary["pairs"]))
    for stage in summary["stages"]:
        rows = {k: v for k, v in stage.items() if k not in ("metrics", "pairs", "rows")}
        out.print(_summary_table(f"Stage {stage['name']}", rows))
        for name, values in stage.get("metrics", {}).items():
            out.print(f"  {name}: " + "  ".join(f"{m}={v:.4f}" for m, v in values.items()))
    feedback = summary.get("feedback")
    if feedback is not None:
        held = feedback.get("validation_queries")
        basis = "fixed" if held is None else f"chosen on {held} held-out log queries" if held else "no held-out queries"
        out.print(f"dense search feedback: weight {feedback['chosen']:g} ({basis})")
    ranker_info = summary.get("ranker", {})
    if "skipped" in ranker_info:
        out.print(f"ranking stage: not trained ({ranker_info['skipped']})")
    elif ranker_info:
        used = "the default retriever" if ranker_info.get("default") else "not the default (hybrid was better)"
        rounds = ranker_info.get("fold_rounds", [ranker_info.get("rounds")])
        out.print(
            f"ranking stage: {ranker_info.get('queries_with_positive_candidates')} queries, "
            f"{len(rounds)} booster(s) of {', '.join(map(str, rounds))} rounds, "
            f"validation NDCG@10 {ranker_info.get('validation_ndcg@10')}; {used}"
        )
    out.print(f"model saved to {out_dir} ({summary['steps']} steps, {summary['seconds']} s)")


@app.command("export-onnx")
def export_onnx(
    model_dir: Annotated[Path, typer.Argument(help="Model folder (a trained towers folder).")],
    as_json: JsonOpt = False,
) -> None:
    """Export a model's towers to ONNX (fp32 and int8) into MODEL_DIR/onnx, checked against PyTorch.

    `train` exports when it saves a model and `index` when the model it uses has no export; this command does it for
    a model saved without one (`train --no-onnx`, or another tool).
    """
    from towersearch.encoders import export_onnx as run
    from towersearch.model import load_model

    manifest = run(load_model(model_dir), model_dir, quantize=True)
    if as_json:
        _emit_json(manifest)
        return
    for name, tower in manifest["towers"].items():
        out.print(
            f"{name} tower: {model_dir / 'onnx' / tower['file']} (int8: {tower['int8']}), max abs difference from "
            f"PyTorch {tower['max_abs_diff']:.1e}"
        )


@app.command()
def index(
    catalog: Annotated[Path, typer.Option(help="Catalogue file.")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Index folder: each build is a new generation, switched to atomically.")
    ],
    log: Annotated[Path | None, typer.Option(help="Search log or event store: head queries are pre-encoded.")] = None,
    model: Annotated[
        Path | None, typer.Option(help="Trained model folder (default: the untrained base model).")
    ] = None,
    ann: Annotated[str, typer.Option(help="auto, flat (exact), hnsw, or milvus (with --milvus-uri).")] = "auto",
    hnsw_threshold: Annotated[int, typer.Option(help="auto uses HNSW from this many products.")] = 20_000,
    milvus_uri: Annotated[
        str | None,
        typer.Option(
            help="With --ann milvus: a milvus-lite file (store.db; no server, one process at a time) or a Milvus "
            "server (http://host:19530). Needs towersearch[scale]."
        ),
    ] = None,
    collection: Annotated[
        str,
        typer.Option(help="With --ann milvus: collection name prefix; each generation gets NAME_<tag>_<generation>."),
    ] = "towersearch",
    head_queries: Annotated[int, typer.Option(help="Most frequent log queries to pre-encode.")] = 10_000,
    engine: Annotated[
        str,
        typer.Option(
            help="Where products and suggestions are encoded: local, or ray (Ray Data actors; towersearch[scale])."
        ),
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="With --engine ray: a Ray cluster to join (default: Ray on this machine).")
    ] = None,
    ray_actors: Annotated[
        int | None, typer.Option(help="With --engine ray: most encoder actors (default: CPUs / --ray-threads).")
    ] = None,
    ray_threads: Annotated[int, typer.Option(help="With --engine ray: CPUs per encoder actor.")] = 1,
    ray_gpus: Annotated[float, typer.Option(help="With --engine ray: GPUs per encoder actor (0: CPUs only).")] = 0.0,
    ray_work: Annotated[
        Path | None,
        typer.Option(
            help="With --engine ray: folder for texts and embedding shards (on a cluster: storage every node "
            "sees; default: a temporary folder)."
        ),
    ] = None,
    encoder: Annotated[
        str, typer.Option(help="auto (ONNX Runtime; exports the towers into the index when needed), onnx or torch.")
    ] = "auto",
    product_precision: Annotated[
        str,
        typer.Option(
            help="fp32, or bf16: products encoded under PyTorch bf16 autocast, several times faster on CPUs with AMX "
            "or AVX-512 BF16 (embeddings within about 1e-3, queries stay fp32; catalogue updates follow the index)."
        ),
    ] = "fp32",
    reviews: Annotated[
        Path | None, typer.Option(help="Reviews file: review insights are stored per product (with --review-intents).")
    ] = None,
    review_intents: Annotated[
        Path | None,
        typer.Option(help="Classified-reviews CSV of the --reviews file (`towersearch reviews classify` writes it)."),
    ] = None,
    blocklist: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Phrases autocomplete never suggests, one per line (# starts a comment); a single word blocks every "
            "suggestion holding it. Catalogue updates keep applying it.",
        ),
    ] = None,
    skip_bad_rows: SkipOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Encode the catalogue and write a new index generation: embeddings, FAISS (or Milvus), BM25, head queries,
    model, manifest.

    With --reviews and --review-intents the generation also stores review insights per product (review count, share
    of each intent, most useful review), which GET /products/{id} serves.
    """
    from towersearch.data import load_catalog
    from towersearch.encoders.ray_engine import RayConfig
    from towersearch.index.build import IndexConfig, build_index
    from towersearch.search.ann import AnnConfig

    if (reviews is None) != (review_intents is None):
        given, missing = ("--reviews", "--review-intents") if reviews is not None else ("--review-intents", "--reviews")
        raise ConfigError(f"{given} needs {missing}: give both (review insights) or neither")

    config = IndexConfig(
        ann=AnnConfig(kind=ann, hnsw_threshold=hnsw_threshold, milvus_uri=milvus_uri, collection=collection),
        head_queries=head_queries,
        encoder=encoder,
        product_precision=product_precision,
        engine=engine,
        ray=RayConfig(
            address=ray_address, actors=ray_actors, threads=ray_threads, gpus_per_actor=ray_gpus, work_dir=ray_work
        ),
        blocklist=blocklist,
        progress=not as_json,
    )
    cat = load_catalog(catalog, skip_bad_rows=skip_bad_rows)
    events = read_log(log, product_ids=set(cat.ids), skip_bad_rows=skip_bad_rows)[0] if log else []
    insights = insights_info = None
    if reviews is not None and review_intents is not None:
        from towersearch.reviews.data import load_reviews
        from towersearch.reviews.insights import load_review_intents, product_insights

        counts: dict[str, int] = {}
        insights = product_insights(
            load_reviews(reviews, skip_bad_rows=skip_bad_rows)[0], load_review_intents(review_intents), counts=counts
        )
        insights_info = {
            "source": {"reviews": str(reviews), "intents": str(review_intents)},
            "reviews": counts["reviews"],
            "classified": counts["classified"],
            "unmatched_intents": counts["unmatched"],  # classified ids with no review: ignored
        }
    manifest = build_index(
        cat,
        out_dir,
        events=events,
        model=model,
        config=config,
        catalog_path=catalog,
        insights=insights,
        insights_info=insights_info,
    )
    if as_json:
        _emit_json(manifest)
    else:
        out.print(
            _summary_table(f"Index written to {out_dir} (generation {manifest['generation']})", _flatten(manifest))
        )


@app.command()
def update(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    upsert: Annotated[
        Path | None, typer.Option(help="Catalogue file (any catalogue format) of new and changed products.")
    ] = None,
    delete: Annotated[Path | None, typer.Option(help="File of product ids to delete, one per line.")] = None,
    compact_share: Annotated[
        float, typer.Option(help="Rebuild HNSW from the live vectors once more than this share of it is deleted.")
    ] = 0.2,
    as_json: JsonOpt = False,
) -> None:
    """Add, change and delete products as a new index generation, encoding only the new and changed ones.

    The batch is applied whole or not at all; CURRENT switches atomically once the new generation is on disk. A
    running server picks it up with POST /admin/reload.
    """
    from towersearch.data import load_catalog
    from towersearch.data.io import iter_rows
    from towersearch.errors import DataError
    from towersearch.index.update import BatchError, read_ids, update_index

    if upsert is None and delete is None:
        raise ConfigError("nothing to update: give --upsert FILE, --delete IDS_FILE or both")
    products = load_catalog(upsert).products if upsert is not None else []
    ids = read_ids(delete) if delete is not None else []
    try:
        summary = update_index(
            index_dir,
            upserts=products,
            deletes=[product_id for _, product_id in ids],
            progress=not as_json,
            compact_share=compact_share,
        )
    except BatchError as exc:  # name the file and line of the item at fault
        if exc.batch == "deletes":
            raise DataError(exc.message, path=delete, line=ids[exc.item][0], field=exc.field) from None
        wanted = products[exc.item].product_id
        line = next((n for n, row in iter_rows(upsert) if str(row.get("product_id", "")).strip() == wanted), None)
        raise DataError(exc.message, path=upsert, line=line, field=exc.field) from None
    if as_json:
        _emit_json(summary)
    elif not summary["changed_anything"]:
        out.print(f"nothing changed: {index_dir} stays at generation {summary['generation']}")
    else:
        out.print(_summary_table(f"Index {index_dir} updated (generation {summary['generation']})", _flatten(summary)))


@app.command()
def rollback(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    to: Annotated[
        str | None, typer.Option(help="Generation to serve (default: the newest one older than the current one).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve an earlier index generation again: CURRENT switches atomically, nothing is deleted.

    A build keeps the generation before it, so one step back is always there. Catalogue updates made since that
    generation are undone with it. A running server picks it up with POST /admin/reload.
    """
    from towersearch.index.generations import generations
    from towersearch.index.generations import rollback as roll_back

    previous, now = roll_back(index_dir, to)
    if as_json:
        _emit_json({"previous": previous, "generation": now, "generations": generations(index_dir)})
    else:
        out.print(f"{index_dir} now serves generation {now} (was {previous}); reload a running server to serve it")


def _refresh_options() -> list:
    from towersearch.loop import RefreshConfig

    return config_options(RefreshConfig, skip={"progress"}, names={"reload_url": "reload"}, panel="Refresh")


REFRESH_OPTIONS = _refresh_options()
"""The ``refresh`` command's options: the fields of :class:`towersearch.loop.RefreshConfig`."""


@app.command()
@with_options(REFRESH_OPTIONS)
def refresh(
    index_dir: Annotated[Path, typer.Argument(help="The served index folder.")],
    events: Annotated[Path, typer.Option(help="The event store the service records into.")],
    catalog: Annotated[
        Path | None,
        typer.Option(help="Catalogue to train on and index (default: the serving generation's products)."),
    ] = None,
    judgements: Annotated[
        Path | None, typer.Option(help="Judge the candidate on these instead of holding log queries out.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Warm-start from this model folder (default: the serving generation's towers).")
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option(help="An earlier search log or event store (the serving towers' own), added whole to training."),
    ] = None,
    out_model: Annotated[
        Path | None, typer.Option("--out-model", help="Keep the trained towers here (default: not kept apart).")
    ] = None,
    base_model: Annotated[
        Path | None, typer.Option(help="Untrained reference model of training instead of MiniLM.")
    ] = None,
    as_json: JsonOpt = False,
    **options: Any,
) -> None:
    """Retrain the towers on the service's events, build a new generation, and switch to it only if not worse.

    The candidate is warm-started from the serving towers, built as a new generation without switching CURRENT,
    and judged with the serving index on held-out log queries (NDCG@10 of each index's default mode); CURRENT
    switches when the candidate is at least the serving index's NDCG@10 minus --tolerance, else the candidate is
    deleted. --reload URL then reloads the running service (token from TOWERSEARCH_ADMIN_TOKEN).
    """
    from towersearch.errors import ServiceError
    from towersearch.loop import RefreshConfig
    from towersearch.loop import refresh as run

    config = RefreshConfig(**section_values(REFRESH_OPTIONS, options)[""], progress=not as_json)
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout stays for results
        result = run(
            index_dir,
            events,
            catalog=catalog,
            judgements=judgements,
            model=model,
            log=log,
            out_model=out_model,
            config=config,
            base_model=base_model,
        )
    if as_json:
        _emit_json(result)
    else:
        rows = {
            "gate queries": f"{result['gate']['queries']} (from the {result['gate']['source']})",
            "serving": f"{result['serving']['generation']} ({result['serving']['mode']}) "
            f"NDCG@10 {result['serving']['ndcg@10']:.4f}",
            "candidate": f"{result['candidate']['generation']} ({result['candidate']['mode']}) "
            f"NDCG@10 {result['candidate']['ndcg@10']:.4f}",
            "CURRENT": result["current"],
            "seconds": ", ".join(f"{k} {v}" for k, v in result["seconds"].items()),
        }
        out.print(_summary_table(f"Refresh of {index_dir}", rows))
        out.print(result["message"])
    reload = result["reload"]
    if reload is not None and not reload["ok"]:
        raise ServiceError(f"switched to {result['current']}, but reloading the service failed: {reload['error']}")
    if reload is not None and not as_json:
        out.print(f"service at {reload['url']} reloaded: generation {reload['answer'].get('generation')}")


@app.command()
def search(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    query: Annotated[str, typer.Argument(help="The query.")],
    k: Annotated[int, typer.Option("--k", help="Results to return (1-100).", min=1, max=100)] = 10,
    mode: Annotated[
        str | None, typer.Option(help="ranked, hybrid, dense or lexical (default: ranked when the model has one).")
    ] = None,
    department: Annotated[str | None, typer.Option(help="Only this department.")] = None,
    category: Annotated[str | None, typer.Option(help="Only under this category path.")] = None,
    min_score: Annotated[float | None, typer.Option(help="Drop results scoring below this.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search an index from the shell."""
    from towersearch.search.engine import SearchEngine

    engine = SearchEngine.load(index_dir)
    results = engine.search(query, k=k, mode=mode, department=department, category=category, min_score=min_score)
    read = {} if as_json else engine.corrections(query, mode)
    if read:
        out.print("showing results for: " + ", ".join(f"{typed} → {word}" for typed, word in read.items()))
    _print_results(results, as_json)


@app.command()
def suggest(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    prefix: Annotated[str, typer.Argument(help="What the shopper has typed so far.")],
    k: Annotated[int, typer.Option("--k", help="Suggestions to return (1-20).", min=1, max=20)] = 8,
    dedup: Annotated[bool, typer.Option("--dedup/--no-dedup", help="Semantic de-duplication.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Autocomplete: the best completions of a prefix, each a different intent."""
    from towersearch.search.engine import SearchEngine

    suggestions = SearchEngine.load(index_dir).suggest(prefix, k, dedup=dedup)
    if as_json:
        _emit_json({"suggestions": [s.as_dict() for s in suggestions]})
        return
    table = Table(show_header=True)
    for column in ("suggestion", "score", "match", "folded"):
        table.add_column(column)
    for s in suggestions:
        table.add_row(s.text, f"{s.score:.3f}", s.match, ", ".join(s.folded))
    out.print(table)


@app.command()
def similar(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    product_id: Annotated[str, typer.Argument(help="A product of the index.")],
    k: Annotated[int, typer.Option("--k", help="Neighbours to return (1-100).", min=1, max=100)] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Products nearest to a product, by the product tower."""
    from towersearch.search.engine import SearchEngine

    engine = SearchEngine.load(index_dir)
    if product_id not in engine.rows:
        raise ConfigError(f"unknown product {product_id!r}: not in the index")
    _print_results(engine.similar(product_id, k=k), as_json)


def _print_results(results, as_json: bool) -> None:
    if as_json:
        _emit_json({"results": [r.as_dict() for r in results]})
        return
    table = Table(show_header=True)
    for column in ("rank", "product_id", "name", "brand", "category", "size", "score"):
        table.add_column(column)
    for r in results:
        d = r.as_dict()
        table.add_row(
            str(d["rank"]), d["product_id"], d["name"], d["brand"], d["category"], d["size"], f"{r.score:.4f}"
        )
    out.print(table)


SinceOpt = Annotated[str | None, typer.Option(help="Only searches at or after this ISO-8601 time.")]
UntilOpt = Annotated[str | None, typer.Option(help="Only searches before this ISO-8601 time.")]


@events_app.command("export")
def events_export(
    events_path: Annotated[Path, typer.Argument(help="Event store (events.db in the index folder by default).")],
    out_path: Annotated[Path, typer.Argument(help="Search log to write (.csv, .tsv, .jsonl or .parquet).")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the recorded searches and events as a search log, aggregated (one row per query, product and event,
    with its count), for `train --log`."""
    from towersearch.events import EventStore

    with EventStore(events_path, create=False) as store:
        rows = store.export_log(out_path, since=since, until=until)
        counts = store.counts()
    result = {"out": str(out_path), "rows": rows, **counts}
    if as_json:
        _emit_json(result)
    else:
        out.print(_summary_table(f"Search log written to {out_path}", result))


@app.command()
def analytics(
    events_path: Annotated[Path, typer.Argument(help="Event store.")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    top: Annotated[int, typer.Option(help="Queries per list.")] = 20,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Also write analytics.json and analytics.png (a chart) here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Top queries, queries without results, queries without clicks, click-through and conversion per query."""
    from towersearch.data.io import atomic_path
    from towersearch.events import EventStore, save_chart
    from towersearch.events import analytics as report_of

    with EventStore(events_path, create=False) as store:
        report = report_of(store, since=since, until=until, top=top)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / "analytics.json") as tmp:
            tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        save_chart(report, out_dir / "analytics.png")
    if as_json:
        _emit_json(report)
        return
    out.print(_summary_table("Totals", report["totals"]))
    for key, title in (("top_queries", "Top queries"), ("no_results", "No results"), ("no_clicks", "No clicks")):
        rows = report[key]
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for column in rows[0]:
            table.add_column(column)
        for row in rows:
            table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
        out.print(table)


@app.command()
def serve(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    quantize_queries: Annotated[
        bool | None,
        typer.Option(
            "--quantize-queries/--no-quantize-queries",
            help="int8 query encoding: about 2x faster, about 1% NDCG@10. [default: TOWERSEARCH_QUANTIZE_QUERIES, off]",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            help="Event store to record searches and shoppers' events in [default: TOWERSEARCH_EVENTS_PATH, else "
            "events.db in INDEX_DIR]; TOWERSEARCH_RECORD_EVENTS=false turns recording off.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the HTTP API and the web page for an index.

    Settings come from TOWERSEARCH_* environment variables (see the README); POST /admin/reload is enabled by
    TOWERSEARCH_ADMIN_TOKEN or TOWERSEARCH_ADMIN_TOKEN_FILE, never by a flag.
    """
    import uvicorn
    from pydantic import ValidationError

    from towersearch.search.engine import SearchEngine
    from towersearch.service.app import create_app
    from towersearch.service.settings import Settings

    flags: dict[str, Any] = {} if quantize_queries is None else {"quantize_queries": quantize_queries}
    if events is not None:
        flags["events_path"] = events
    try:
        settings = Settings(index_dir=index_dir, **flags)  # everything else from TOWERSEARCH_* variables
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"bad service settings: {problems}") from None
    engine = SearchEngine.load(
        settings.index_dir, cache_size=settings.cache_size, quantize_queries=settings.quantize_queries
    )  # fail here, clearly, not in a worker
    out.print(f"serving {index_dir} on http://{host}:{port}/ (API docs at http://{host}:{port}/docs)")
    uvicorn.run(create_app(settings, engine), host=host, port=port, log_level="info")


from towersearch.cli_reviews import reviews_app  # noqa: E402  (its commands use the helpers above)

app.add_typer(reviews_app, name="reviews")


def main() -> None:
    """Entry point: run the app and turn towersearch errors into one clear line and exit code 1."""
    try:
        app()
    except TowersearchError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

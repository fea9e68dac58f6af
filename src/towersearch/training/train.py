"""Two-step cascade training of the query and product towers (after Instacart's ITEMS).

Stage 1 trains one shared encoder on every positive (large, noisy) plus cold-start synthetic pairs. Stage 2
unties it into distinct query and product towers, both initialised from stage 1, and fine-tunes them on the
high-quality positives with hard negatives mined by the stage-1 model, at a lower learning rate. Both stages use
in-batch negatives with self-adversarial re-weighting (``MultipleNegativesRankingLoss(hardness_mode=
"in_batch_negatives")``) and batches without duplicate texts. Every option has a switch so the ablation in
``benchmarks/bench_ablation.py`` can turn each ingredient off.

The options are :class:`~towersearch.training.config.TrainConfig` and the hard negatives come from
:mod:`towersearch.training.negatives`; both stay importable from here (``TrainConfig``, ``mine_negatives``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from towersearch import __version__
from towersearch.data.catalog import Catalog
from towersearch.data.io import atomic_dir, write_json
from towersearch.data.judgements import Judgements
from towersearch.data.schema import LogEvent
from towersearch.errors import ArtifactError, ConfigError
from towersearch.model import BASE_MODEL_NAME, MODEL_META, model_meta, model_text_config, text_config_dict
from towersearch.search.dense import Feedback
from towersearch.search.hybrid import Fusion
from towersearch.search.ranker import Ranker
from towersearch.text import TextConfig, product_text, query_text
from towersearch.training import distributed
from towersearch.training.config import LOSS_DIRECTIONS, TrainConfig
from towersearch.training.negatives import known_positives, lexical_negatives, mine_negatives, skipped_products
from towersearch.training.pairs import (
    FOOD_CATALOGUE_SHARE,
    Pair,
    QueryGenerator,
    cap_synthetic,
    cold_start_pairs,
    food_share,
    mine_pairs,
    neighbour_queries,
    select_stage2,
    typo_pairs,
)
from towersearch.training.ranking import choose_default, split_ranker_queries
from towersearch.training.towers import (
    PRODUCT_ROUTE,
    QUERY_ROUTE,
    interpolate,
    is_distinct,
    shared_encoder,
    tower_parameters,
    untie,
)
from towersearch.training.validation import (
    FEEDBACK_WEIGHT,
    UNCALIBRATED_FUSION,
    calibrate_fusion,
    choose_feedback,
    choose_interpolation,
    engaged_judgements,
    remembered,
    split_validation,
)

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from towersearch.search.lexical import BM25Retriever
    from towersearch.training.residual import LexicalBias

logger = logging.getLogger(__name__)

SUMMARY_FILE = "training_summary.json"


@dataclass
class StageData:
    """The pairs of one stage; ``negatives`` holds hard-negative rows (query, positive, negative)."""

    name: str
    pairs: list[Pair]
    negatives: list[tuple[str, str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(p.kind for p in self.pairs)
        return {**dict(sorted(c.items())), "with_hard_negative": len(self.negatives)}


def _dataset(rows: dict[str, list[str]]) -> Dataset:
    from datasets import Dataset

    return Dataset.from_dict(rows)


def pair_dataset(pairs: Sequence[Pair], catalog: Catalog, text: TextConfig) -> Dataset:
    """A (query, positive) dataset of texts."""
    return _dataset(
        {
            "query": [query_text(p.query, text) for p in pairs],
            "positive": [product_text(catalog[p.product_id], text) for p in pairs],
        }
    )


def _loss(
    model: SentenceTransformer,
    config: TrainConfig,
    guide: SentenceTransformer | None = None,
    lexical: LexicalBias | None = None,
):
    from sentence_transformers.sentence_transformer.losses import (
        CachedGISTEmbedLoss,
        CachedMultipleNegativesRankingLoss,
        GISTEmbedLoss,
        MultipleNegativesRankingLoss,
    )

    gather = {"gather_across_devices": True} if distributed.world_size() > 1 else {}
    if config.guided_negatives:
        if guide is None:
            raise ConfigError("guided negatives need a guide model")
        options = {"temperature": 1.0 / config.scale, "contrast_anchors": False, "contrast_positives": False, **gather}
        if config.cached_loss:
            return CachedGISTEmbedLoss(model, guide, mini_batch_size=config.mini_batch_size, **options)
        return GISTEmbedLoss(model, guide, **options)

    hardness = {"hardness_mode": "in_batch_negatives", "hardness_strength": config.hardness_strength}
    if config.hardness_strength == 0:
        hardness = {}
    hardness.update(gather)
    # symmetric: the mean of both directions' softmaxes (Jina embeddings 2); all: one softmax over the four (GTE)
    hardness["directions"] = LOSS_DIRECTIONS[config.loss_directions]
    hardness["partition_mode"] = "joint" if config.loss_directions == "all" else "per_direction"
    if lexical is not None:
        from towersearch.training.residual import LexicalResidualLoss

        return LexicalResidualLoss(model, lexical, config.lexical_residual, scale=config.scale, **hardness)
    if config.cached_loss:
        return CachedMultipleNegativesRankingLoss(
            model, scale=config.scale, mini_batch_size=config.mini_batch_size, **hardness
        )
    return MultipleNegativesRankingLoss(model, scale=config.scale, **hardness)


def training_precision(precision: str, device: str) -> str:
    """``precision`` ("auto", "fp32" or "bf16") resolved for ``device``: auto is bf16 where it is native
    (:func:`towersearch.encoders.bf16.native_bf16`)."""
    if precision == "auto":
        from towersearch.encoders import bf16

        return "bf16" if bf16.native_bf16(device) else "fp32"
    return precision


def _stage_steps(n_rows: int, config: TrainConfig, budget: int | None) -> int:
    """Steps of one stage: its share of ``max_steps``, capped by ``epochs`` when given (1 epoch without a budget)."""
    epochs = config.epochs if config.epochs is not None else (1.0 if budget is None else None)
    if epochs is None:
        return max(1, budget)
    epoch_steps = max(1, math.ceil(epochs * n_rows / config.batch_size))
    return epoch_steps if budget is None else max(1, min(epoch_steps, budget))


def _last_checkpoint(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    checkpoints = sorted(
        (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(checkpoints[-1]) if checkpoints else None


def _label_lexical(
    datasets: dict[str, Dataset], data: StageData, catalog: Catalog, text: TextConfig, bm25: BM25Retriever
) -> LexicalBias:
    """Give every row of ``datasets`` a ``label`` column (its query's number, its products' catalogue rows) and
    return the BM25 scores the lexical-residual loss reads through it."""
    from towersearch.training.residual import LexicalBias

    if distributed.world_size() > 1:
        raise ConfigError("lexical_residual trains in one process (its BM25 scores are not gathered across devices)")
    raw = {query_text(p.query, text): p.query for p in data.pairs}
    row = {}
    for i, product in enumerate(catalog.products):
        row.setdefault(product_text(product, text), i)
    queries = sorted(set(raw.values()))
    number = {q: i for i, q in enumerate(queries)}
    for name, ds in list(datasets.items()):
        products = [ds[c] for c in ("positive", "negative") if c in ds.column_names]  # whole columns, once
        labels = [[number[raw[q]], *(row[col[i]] for col in products)] for i, q in enumerate(ds["query"])]
        datasets[name] = ds.add_column("label", labels)
    return LexicalBias(bm25, queries)


def run_stage(
    model: SentenceTransformer,
    data: StageData,
    catalog: Catalog,
    config: TrainConfig,
    *,
    steps: int,
    learning_rate: float,
    work_dir: Path,
    guide: SentenceTransformer | None = None,
    bm25: BM25Retriever | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place on one stage's data for ``steps`` optimiser steps (``guide``: see
    ``TrainConfig.guided_negatives``; ``bm25``: the catalogue's index, read by ``TrainConfig.lexical_residual``)."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers

    text = config.text
    datasets: dict[str, Dataset] = {}
    rest = list(data.pairs)
    if data.negatives:
        with_negative = {(r[0], r[1]) for r in data.negatives}
        plain = [
            p
            for p in data.pairs
            if (query_text(p.query, text), product_text(catalog[p.product_id], text)) not in with_negative
        ]
        # both datasets' batches share one size, as large as the smaller one's distinct queries allow: when either
        # part is that small, every batch would shrink, so the stage then trains on plain pairs alone
        target = min(config.batch_size, len({p.query for p in data.pairs}))
        if len({r[0] for r in data.negatives}) >= target and (not plain or len({p.query for p in plain}) >= target):
            datasets["hard_negatives"] = _dataset(
                {
                    "query": [r[0] for r in data.negatives],
                    "positive": [r[1] for r in data.negatives],
                    "negative": [r[2] for r in data.negatives],
                }
            )
            rest = plain
        else:
            logger.warning(
                "%s: too few distinct queries with and without a hard negative for batches of %d; training on plain "
                "pairs only",
                data.name,
                target,
            )
    if rest:
        datasets["pairs"] = pair_dataset(rest, catalog, text)
    lexical = None
    if config.lexical_residual:
        if bm25 is None:
            raise ConfigError("lexical_residual needs the catalogue's BM25 index")
        lexical = _label_lexical(datasets, data, catalog, config.text, bm25)
    train_dataset = datasets["pairs"] if list(datasets) == ["pairs"] else datasets
    distinct_queries = min(len(set(ds["query"])) for ds in datasets.values())
    batch_size = min(config.batch_size, distinct_queries)
    if batch_size < 2:
        raise ConfigError(f"{data.name}: fewer than 2 distinct queries; in-batch negatives need more")
    router_mapping = (
        {"query": QUERY_ROUTE, "positive": PRODUCT_ROUTE, "negative": PRODUCT_ROUTE} if is_distinct(model) else {}
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate * distributed.world_size(),  # linear scaling with the global batch
        warmup_steps=int(config.warmup_ratio * steps),
        lr_scheduler_type="linear",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        router_mapping=router_mapping,
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=config.checkpoint_steps,
        save_total_limit=1,
        logging_steps=max(1, min(50, steps // 10)),
        report_to=[],
        use_cpu=model.device.type == "cpu",
        bf16=training_precision(config.precision, str(model.device)) == "bf16",  # mixed: autocast, fp32 weights
        # the loss runs the towers once per column before one backward: DDP must not look for unused parameters
        ddp_find_unused_parameters=False if distributed.world_size() > 1 else None,
        disable_tqdm=not config.progress,
        dataloader_drop_last=True,
    )
    if distributed.world_size() > 1:  # DDP waits for a gradient of every trainable parameter; mean pooling never
        for name, parameter in model.named_parameters():  # reads the transformer's own pooler
            if ".pooler." in name:
                parameter.requires_grad_(False)
    if config.freeze_product_tower:  # the optimiser skips parameters without gradients
        for parameter in tower_parameters(model)[1]:
            parameter.requires_grad_(False)
    loss = _loss(model, config, guide, lexical)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset, loss=loss)
    resume = _last_checkpoint(work_dir) if config.resume else None
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    # mixed precision wraps the model's forward in bf16 autocast; later encodings (mining, calibration, the ONNX
    # export's check against PyTorch) must run the fp32 model again
    trainer.accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "steps": int(output.global_step),
        "seconds": round(time.perf_counter() - start, 1),
        "train_loss": round(float(output.training_loss), 4),
        "first_loss": round(float(losses[0]), 4) if losses else None,
        "last_loss": round(float(losses[-1]), 4) if losses else None,
        "learning_rate": learning_rate * distributed.world_size(),
        "resumed_from": resume,
        "rows": {name: len(ds) for name, ds in datasets.items()},
        "batch_size": batch_size,
        "precision": "bf16" if args.bf16 else "fp32",
    }


def evaluate_model(
    model: SentenceTransformer,
    catalog: Catalog,
    judgements: Judgements,
    text: TextConfig,
    bm25=None,
    fusion: Fusion | None = None,
    dense=None,
    ranker=None,
) -> dict[str, dict[str, float]]:
    """Dense (and, given BM25, hybrid, and given a ranker, ranked) metrics of ``model`` on held-out judgements
    (``dense``: the catalogue already encoded by ``model``)."""
    from towersearch.evaluation.report import evaluate
    from towersearch.search.dense import DenseRetriever
    from towersearch.search.factory import compose

    dense = dense or DenseRetriever.from_products(model, catalog.products, text)
    built = compose(bm25, dense, fusion or Fusion(), ranker=ranker, products=catalog.products)
    retrievers = {name: r for name, r in built.items() if name != "bm25"}
    return evaluate(retrievers, judgements).metrics


def fit_ranker(
    model: SentenceTransformer,
    catalog: Catalog,
    tower_events: Sequence[LogEvent],
    ranker_events: Sequence[LogEvent],
    validation: Judgements,
    config: TrainConfig,
    fusion: Fusion,
    dense=None,
    lexical=None,
):
    """Train the ranking stage on the held-out ranker queries; returns ``(ranker or None, summary)``. ``dense`` and
    ``lexical``: the catalogue's retrievers when already built (else built here).

    The ranker becomes the default retriever only when it beats hybrid on the validation queries by more than chance
    (:func:`~towersearch.training.ranking.choose_default`).
    """
    from towersearch.search.dense import DenseRetriever, encode_queries
    from towersearch.search.factory import compose
    from towersearch.search.lexical import BM25Retriever
    from towersearch.training.ranking import build_context, train_ranker, validation_metrics

    dense = dense or DenseRetriever.from_products(model, catalog.products, config.text)
    lexical = lexical or BM25Retriever(catalog.products, spelling=config.spelling)
    context = build_context(tower_events, catalog, lambda qs: encode_queries(model, qs, config.text))
    placeholder = Ranker.placeholder(context, config.ranker.candidates)
    built = compose(lexical, dense, fusion, ranker=placeholder, products=catalog.products)
    ranked = built["ranked"]
    ranker, summary = train_ranker(built["hybrid"], ranked.extractor, ranker_events, config.ranker, seed=config.seed)
    if ranker is None:
        return None, summary
    if validation:
        ranked.ranker = ranker
        ndcg, per_query = validation_metrics({"hybrid": built["hybrid"], "ranked": ranked}, validation)
        summary["validation_ndcg@10"] = ndcg
        ranker.meta["default"], summary["default_p_value"] = choose_default(per_query["ranked"], per_query["hybrid"])
    else:
        ranker.meta["default"] = True
    summary["default"] = ranker.meta["default"]
    ranker.meta["training"] = summary
    return ranker, summary


def generic_queries(catalog: Catalog, base_model: str | Path | None, device: str | None) -> dict[str, str]:
    """Neighbour-derived generic queries (:func:`~towersearch.training.pairs.neighbour_queries`), from the untrained
    model's view of the catalogue (plain product text)."""
    from towersearch.model import UNTRAINED_TEXT, load_model
    from towersearch.search.dense import encode_products

    model = load_model(base_model, device=device or "cpu")
    return neighbour_queries(catalog.products, encode_products(model, catalog.products, UNTRAINED_TEXT))


def check_init_model(init_model: str | Path, config: TrainConfig) -> None:
    """Check that a warm start from model folder ``init_model`` fits ``config``.

    A folder towersearch saved (``towersearch.json`` beside the weights) records its towers and the product and
    query text it was trained on: the text of ``config`` must be the same (the towers would otherwise read text
    they never saw), and distinct towers cannot become one shared encoder. A folder without ``towersearch.json``
    (the base model, another tool's model) only has to be a sentence-transformers folder.

    Raises:
        ArtifactError: ``init_model`` is not a sentence-transformers model folder.
        ConfigError: the text configuration differs, or ``config.towers`` is ``shared`` for distinct towers.
    """
    folder = Path(init_model)
    if not (folder / "modules.json").is_file():
        raise ArtifactError(f"init model {folder} is not a sentence-transformers model folder (no modules.json)")
    meta = model_meta(folder)
    if meta is None:
        return
    trained_text = model_text_config(folder)
    if trained_text != config.text:
        raise ConfigError(
            f"init model {folder} was trained on text {text_config_dict(trained_text)}, not "
            f"{text_config_dict(config.text)}: warm-start with the same --fields and --markers/--no-markers"
        )
    if meta.get("towers") == "distinct" and config.towers == "shared":
        raise ConfigError(
            f"init model {folder} has distinct towers, which cannot be merged into one shared encoder: "
            "warm-start it with --towers distinct"
        )


def train(
    catalog: Catalog,
    out_dir: str | Path,
    *,
    events: Sequence[LogEvent] = (),
    config: TrainConfig | None = None,
    judgements: Judgements | None = None,
    base_model: str | Path | None = None,
    generator: QueryGenerator | None = None,
    init_model: str | Path | None = None,
) -> dict[str, Any]:
    """Train the towers and save them to ``out_dir`` (atomically: a failed run leaves no half-written folder).

    Args:
        catalog: The products.
        out_dir: Where the trained sentence-transformers folder goes.
        events: The search log (empty for a new store: synthetic cold-start queries only).
        config: Training options.
        judgements: Held-out judgements to evaluate after each stage.
        base_model: Start from this model folder instead of all-MiniLM-L6-v2 (used by tests with a tiny model). It
            is also the untrained reference: the guide of guided negatives and the view that neighbour queries come
            from.
        generator: Optional extra synthetic-query generator.
        init_model: Warm start: continue from this trained model folder (the towers a previous run saved, or an
            index generation's ``model/``) instead of ``base_model``, which stays the untrained reference. Distinct
            towers stay distinct and train as they are in both stages; a shared encoder trains as one in stage 1
            and is untied in stage 2 as usual. See :func:`check_init_model`.

    Returns:
        The training summary, also written to ``out_dir/training_summary.json``.

    Raises:
        ConfigError: bad options, no training pairs, or an ``init_model`` that does not fit ``config``.
        ArtifactError: ``init_model`` or ``base_model`` is not a model folder.
    """
    import torch
    from transformers import set_seed

    config = config or TrainConfig()
    if init_model is not None:
        check_init_model(init_model, config)
    out_dir = Path(out_dir)
    work = out_dir.parent / f".{out_dir.name}.work"
    if distributed.is_main():
        if work.exists() and not config.resume:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = time.perf_counter()

    validation: Judgements = {}
    if config.validation_queries and events:
        events, validation = split_validation(
            events, max_queries=config.validation_queries, max_share=config.validation_share, seed=config.seed
        )
    events, ranker_events = split_ranker_queries(events, config.ranker, config.seed)
    positives, high_quality = mine_pairs(events, config.pairs)
    reads_skipped = (config.logged_negatives or config.shown_not_negative) and config.hard_negatives > 0
    skipped = skipped_products(events) if reads_skipped else {}
    if config.guided_negatives is None:
        # without a log (synthetic pairs only) the base model guards the in-batch negatives, unless the towers
        # learn BM25's residual instead
        config = replace(config, guided_negatives=not positives and not config.lexical_residual)
    covered = {p.product_id for p in positives}
    generic = None
    if config.pairs.cold_start and config.pairs.neighbour_queries:
        generic = generic_queries(catalog, base_model, config.device)
    share = food_share(catalog.products) if config.pairs.cold_start and config.pairs.food_terms == "auto" else None
    food = config.pairs.food_terms == "on" or (share is not None and share >= FOOD_CATALOGUE_SHARE)
    synthetic = (
        cold_start_pairs(catalog.products, covered, config.pairs, generator, generic, food=food)
        if config.pairs.cold_start
        else []
    )
    made = Counter(p.kind for p in synthetic)
    if positives:
        synthetic = cap_synthetic(synthetic, round(config.pairs.synthetic_ratio * len(positives)), config.seed)
    kept = Counter(p.kind for p in synthetic)
    if not positives and not synthetic:
        raise ConfigError("no training pairs: the log has no positive and cold-start augmentation is off")
    typos = typo_pairs(positives, config.pairs.typo_share, config.seed) if config.pairs.typo_share else []
    stage2_source, stage2_targets = select_stage2(positives, high_quality, config.min_stage2_pairs)
    stage2_synthetic = cap_synthetic(synthetic, round(config.pairs.synthetic_ratio * len(stage2_targets)), config.seed)
    stage2_pairs = stage2_targets + (stage2_synthetic if positives else synthetic)
    stage1_negatives = config.cascade and config.stage1_negatives and config.hard_negatives > 0 and bool(positives)
    reads_bm25 = (
        bool(judgements or validation or ranker_events)  # metrics, the fusion's calibration, the ranking stage
        or config.lexical_residual > 0
        or stage1_negatives
        or (config.hard_negatives > 0 and config.negative_source != "model")
    )
    bm25 = None  # one index of the catalogue for every step that reads BM25
    if reads_bm25:
        from towersearch.search.lexical import BM25Retriever

        bm25 = BM25Retriever(catalog.products, spelling=config.spelling)
    stage1_rows: list = []
    if stage1_negatives:  # BM25's confusers for the log's positives; the synthetic and typo pairs stay plain
        avoid = known_positives(positives, skipped if config.shown_not_negative else None)
        stage1_rows = lexical_negatives(positives, avoid, catalog, config, bm25)
    stage1 = StageData("stage1", positives + synthetic + typos, stage1_rows)

    summary: dict[str, Any] = {
        "towersearch_version": __version__,
        "base_model": str(base_model) if base_model else BASE_MODEL_NAME,
        "init_model": str(init_model) if init_model is not None else None,
        "config": config.as_dict(),
        "pairs": {
            "positives": len(positives),
            "high_quality": len(high_quality),
            "synthetic": len(synthetic),  # every cold-start pair kept under the cap, of every kind
            "synthetic_made": made.total(),
            "generated": kept["generated"],  # the query generator's
            "generated_made": made["generated"],
            "food_terms": kept["food_term"],  # WordNet food terms
            "food_terms_made": made["food_term"],
            "food_share": None if share is None else round(share, 4),  # products with a food type (auto only)
            "typo": len(typos),
            "generic_queries": len(generic or {}),
            "cold_start_products": len({p.product_id for p in synthetic}),
            "queries": len({p.query for p in positives}),
        },
        "stages": [],
    }
    budget = config.max_steps
    device = distributed.setup(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    distributed.barrier()  # the work folder exists
    start_from = init_model if init_model is not None else base_model
    model = shared_encoder(start_from, max_seq_length=config.max_seq_length, device=device)
    if config.freeze_product_tower:  # distinct from the first step: only the query tower trains
        model = untie(model)
    guide = None
    if config.guided_negatives:
        guide = shared_encoder(base_model, max_seq_length=config.max_seq_length, device=device)
        guide.requires_grad_(False)
    if config.cascade:
        stage1_budget = None if budget is None else max(1, round(budget * config.stage1_share))
        steps1 = _stage_steps(len(stage1.pairs), config, stage1_budget)
        done1 = work / "stage1-model"
        if config.resume and (done1 / "modules.json").is_file():
            model = shared_encoder(done1, max_seq_length=config.max_seq_length, device=device)
            info1 = json.loads((work / "stage1.json").read_text())
        else:
            info1 = run_stage(
                model,
                stage1,
                catalog,
                config,
                steps=steps1,
                learning_rate=config.learning_rate,
                work_dir=work / "stage1",
                guide=guide,
                bm25=bm25,
            )
            if distributed.is_main():
                model.save(str(done1))
                write_json(work / "stage1.json", info1)
        stage1_towers = "distinct" if is_distinct(model) else "shared"  # distinct only when warm-started so
        info1 = {"name": "stage1", "towers": stage1_towers, "pairs": stage1.counts(), **info1}
        dense1 = None
        mines = bool(stage2_targets) and config.hard_negatives > 0 and config.negative_source != "bm25"
        if (judgements or mines) and distributed.is_main():  # the catalogue through the stage-1 towers, once
            from towersearch.encoders import onnx_copy
            from towersearch.search.dense import DenseRetriever

            dense1 = DenseRetriever.from_products(onnx_copy(model), catalog.products, config.text)
            if judgements:
                info1["metrics"] = evaluate_model(model, catalog, judgements, config.text, bm25, dense=dense1)
        summary["stages"].append(info1)

        def mine_stage2() -> list:
            mining = work / "mining-cache"
            shutil.rmtree(mining, ignore_errors=True)
            corpus = None if dense1 is None else dense1.embeddings
            rows = mine_negatives(
                model, positives, stage2_targets, catalog, config, corpus_embeddings=corpus, cache_dir=mining,
                skipped=skipped, bm25=bm25,
            )  # fmt: skip
            shutil.rmtree(mining, ignore_errors=True)
            return rows

        negatives = [tuple(r) for r in distributed.computed_by_first(work / "negatives.json", mine_stage2)]
        stage2 = StageData("stage2", stage2_pairs, negatives)
        if config.towers == "distinct":
            model = untie(model)
        remaining = None if budget is None else max(1, budget - info1["steps"])
        steps2 = _stage_steps(len(stage2.pairs), config, remaining)
        info2 = run_stage(
            model,
            stage2,
            catalog,
            config,
            steps=steps2,
            learning_rate=config.stage2_learning_rate,
            work_dir=work / "stage2",
            guide=guide,
            bm25=bm25,
        )
        info2 = {"name": "stage2", "towers": config.towers, "pairs": stage2.counts(), **info2}
        summary["pairs"]["stage2_source"] = stage2_source
    else:
        if config.towers == "distinct":
            model = untie(model)
        negatives = [
            tuple(r)
            for r in distributed.computed_by_first(
                work / "negatives.json",
                lambda: (
                    mine_negatives(model, positives, high_quality, catalog, config, skipped=skipped, bm25=bm25)
                    if config.hard_negatives
                    else []
                ),
            )
        ]
        single = StageData("single", positives + synthetic + typos, negatives)
        steps = _stage_steps(len(single.pairs), config, budget)
        info2 = run_stage(
            model,
            single,
            catalog,
            config,
            steps=steps,
            learning_rate=config.learning_rate,
            work_dir=work / "single",
            guide=guide,
            bm25=bm25,
        )
        info2 = {"name": "single", "towers": config.towers, "pairs": single.counts(), **info2}
    summary["world_size"] = distributed.world_size()
    if not distributed.is_main():  # the first process calibrates, trains the ranker and saves
        return summary
    calibration: dict[str, Any] = {"chosen": UNCALIBRATED_FUSION.as_dict(), "validation_queries": 0}
    held_out = {**validation, **engaged_judgements(ranker_events)}  # queries the towers never trained on
    # BM25's lists of the held-out queries, searched once for the merge weight's choice and the calibration
    held_out_bm25 = remembered(bm25) if bm25 is not None else None
    dense = None
    if config.interpolation != 1.0:
        if guide is not None and init_model is None:
            start = guide  # the guide is the base model training started from
        else:
            start = shared_encoder(start_from, max_seq_length=config.max_seq_length, device=device)
        if config.interpolation is None:
            summary["interpolation"], dense = choose_interpolation(
                model,
                start,
                catalog,
                held_out,
                config.text,
                lexical=held_out_bm25 if config.interpolation_by == "hybrid" else None,
            )
        else:
            interpolate(model, start, config.interpolation)
            summary["interpolation"] = {"chosen": config.interpolation}
        del start
    if dense is None and (validation or ranker_events or judgements):
        from towersearch.encoders import onnx_copy
        from towersearch.search.dense import DenseRetriever

        dense = DenseRetriever.from_products(onnx_copy(model), catalog.products, config.text)
    if config.feedback is not None:
        summary["feedback"] = {"chosen": config.feedback}
    elif held_out:  # held-out queries come with a dense retriever (built above for them)
        summary["feedback"] = choose_feedback(dense, held_out)
    else:
        summary["feedback"] = {"chosen": FEEDBACK_WEIGHT, "validation_queries": 0}
    feedback = Feedback(weight=summary["feedback"]["chosen"])
    if dense is not None:
        dense.feedback = feedback  # the fusion, the ranker and the evaluation below search as the model will
    if held_out:
        calibration = calibrate_fusion(
            model, catalog, held_out, config.text, dense=dense, lexical=held_out_bm25, spelling=config.spelling
        )
    summary["fusion"] = calibration
    fusion = Fusion.from_dict(calibration["chosen"])
    ranker = None
    if ranker_events:
        ranker, summary["ranker"] = fit_ranker(
            model, catalog, events, ranker_events, validation, config, fusion, dense=dense, lexical=bm25
        )
    else:
        summary["ranker"] = {"skipped": "off" if not config.ranker.enabled else "too few engaged log queries"}
    if judgements:
        info2["metrics"] = evaluate_model(
            model, catalog, judgements, config.text, bm25, fusion, dense=dense, ranker=ranker
        )
    summary["stages"].append(info2)
    summary["steps"] = sum(s["steps"] for s in summary["stages"])
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["towers"] = "distinct" if is_distinct(model) else "shared"

    with atomic_dir(out_dir) as tmp:
        model.save(str(tmp))
        write_json(
            tmp / MODEL_META,
            {
                "towersearch_version": __version__,
                "towers": summary["towers"],
                "text": text_config_dict(config.text),
                "max_seq_length": config.max_seq_length,
                "fusion": fusion.as_dict(),
                "feedback": feedback.as_dict(),
            },
        )
        write_json(tmp / SUMMARY_FILE, summary)
        if ranker is not None:
            ranker.save(tmp)
        if config.onnx:  # last: the export records the fingerprint of everything above
            from towersearch.encoders import export_onnx

            export_onnx(model, tmp, quantize=True)
    shutil.rmtree(work, ignore_errors=True)
    return summary

"""``towersearch reviews``: train, apply and evaluate the review intent classifier; expand products with reviews."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from towersearch.cli_common import JsonOpt, SkipOpt, _emit_json, _summary_table, out

reviews_app = typer.Typer(
    help="Review intents (highly useful, passionate, obnoxious, balanced) from weak labels and a few hand labels.",
    no_args_is_help=True,
)

LabelsOpt = Annotated[
    Path | None,
    typer.Option(help="Hand labels: review_id plus a 0/1 column per intent (the layout of review-intents/labels.csv)."),
]


@reviews_app.command("train")
def train(
    reviews: Annotated[Path, typer.Argument(help="Reviews file (CSV, JSON Lines or Parquet).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    labels: LabelsOpt = None,
    augment: Annotated[
        str | None, typer.Option(help="Paraphrases of hand-labelled reviews from module:function (off by default).")
    ] = None,
    gold_weight: Annotated[float, typer.Option(help="Weight of a hand label against a weak label.")] = 20.0,
    weak_labels: Annotated[
        bool, typer.Option("--weak-labels/--no-weak-labels", help="Also learn from the labelling functions' vote.")
    ] = True,
    skip_bad_rows: SkipOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the intent classifier: on weak labels alone, or with hand labels (thresholds chosen on them)."""
    from towersearch.data.io import atomic_dir
    from towersearch.reviews.classifier import ReviewTrainConfig, train_classifier
    from towersearch.reviews.data import load_intent_labels, load_reviews

    config = ReviewTrainConfig(gold_weight=gold_weight, use_weak_labels=weak_labels, augment=augment)
    rows, report = load_reviews(reviews, skip_bad_rows=skip_bad_rows)
    hand = load_intent_labels(labels) if labels else None
    with contextlib.redirect_stdout(sys.stderr):
        model = train_classifier(rows, labels=hand, config=config, progress=not as_json)
    with atomic_dir(out_dir) as tmp:
        model.save(tmp)
    summary = {"model": str(out_dir), "skipped_rows": report.skipped, **model.summary}
    if as_json:
        _emit_json(summary)
        return
    out.print(_summary_table("Review intent classifier", {"reviews": len(rows), "hand labels": len(hand or {})}))
    for intent, info in model.summary["intents"].items():
        out.print(
            f"  {intent}: {info['positives']:,} positives of {info['training_rows']:,} training rows, threshold "
            f"{info['threshold']} (from {info['threshold_from']})"
        )
    out.print(f"model saved to {out_dir}")


@reviews_app.command("classify")
def classify(
    reviews: Annotated[Path, typer.Argument(help="Reviews file (CSV, JSON Lines or Parquet).")],
    model_dir: Annotated[Path, typer.Option("--model", help="A model folder 'reviews train' wrote.")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV to write: review_id, a 0/1 column and p_ per intent.")],
    skip_bad_rows: SkipOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Tag every review with its intents (0/1 per intent at the model's thresholds, and the probabilities)."""
    from towersearch.data.io import write_table
    from towersearch.reviews.classifier import IntentClassifier
    from towersearch.reviews.data import load_reviews

    model = IntentClassifier.load(model_dir)
    rows, report = load_reviews(reviews, skip_bad_rows=skip_bad_rows)
    with contextlib.redirect_stdout(sys.stderr):
        labels, proba = model.predict(rows, progress=not as_json)
    columns = ["review_id", *model.intents, *(f"p_{i}" for i in model.intents)]
    write_table(
        out_file,
        columns,
        ([r.review_id, *(int(v) for v in labels[n]), *(f"{p:.4f}" for p in proba[n])] for n, r in enumerate(rows)),
    )
    counts = {intent: int(labels[:, t].sum()) for t, intent in enumerate(model.intents)}
    summary = {"reviews": len(rows), "skipped_rows": report.skipped, "tagged": counts, "path": str(out_file)}
    if as_json:
        _emit_json(summary)
        return
    out.print(_summary_table(f"{len(rows):,} reviews classified", counts))
    out.print(f"written to {out_file}")


@reviews_app.command("evaluate")
def evaluate(
    reviews: Annotated[Path, typer.Argument(help="Reviews file (CSV, JSON Lines or Parquet).")],
    labels: Annotated[Path, typer.Option(help="Hand labels to score against (review_id plus 0/1 columns).")],
    model_dir: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Score this model on the labels. Without it: baselines, the labelling functions' vote, weak labels "
            "alone and cross-validated training with the labels.",
        ),
    ] = None,
    folds: Annotated[int, typer.Option(help="Folds of the cross-validation (without --model).")] = 5,
    skip_bad_rows: SkipOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """F1 per intent and macro-F1 (over highly_useful, passionate, balanced) against hand labels."""
    import numpy as np

    from towersearch.errors import DataError
    from towersearch.reviews.classifier import IntentClassifier, ReviewEncoder, ReviewTrainConfig, train_classifier
    from towersearch.reviews.data import INTENTS, load_intent_labels, load_reviews
    from towersearch.reviews.evaluate import (
        always_yes,
        cross_validate,
        gold_matrix,
        keyword_rules,
        scores,
        zero_shot,
    )
    from towersearch.reviews.labelling import lf_report, weak_labels

    rows, _ = load_reviews(reviews, skip_bad_rows=skip_bad_rows)
    hand = load_intent_labels(labels)
    index, gold = gold_matrix(rows, hand)
    if not index:
        raise DataError("none of the labelled review_ids is among the reviews", path=labels, field="review_id")
    labelled = [rows[i] for i in index]
    results: dict[str, dict] = {}
    extra: dict = {"labelled_reviews": len(index), "unmatched_labels": len(hand) - len(index)}
    with contextlib.redirect_stdout(sys.stderr):
        if model_dir is not None:
            model = IntentClassifier.load(model_dir)
            predicted, _ = model.predict(labelled, progress=not as_json)
            results["model"] = scores(predicted, gold, model.intents)
            if model.summary.get("hand_labelled"):
                extra["warning"] = (
                    "the model was trained with hand labels; if these are among them, the scores are optimistic "
                    "(evaluate without --model for cross-validated numbers)"
                )
        else:
            config = ReviewTrainConfig()
            encoder = ReviewEncoder(config.max_seq_length)
            embeddings = encoder.encode(rows, config.batch_size, progress=not as_json)
            weak = weak_labels(rows)
            results["always yes"] = scores(always_yes(labelled), gold)
            results["keyword rules"] = scores(keyword_rules(labelled), gold)
            results["zero-shot"] = scores(zero_shot(labelled, encoder, embeddings=embeddings[index]), gold)
            results["labelling functions' vote"] = scores((weak.labels[index] == 1).astype(np.int8), gold)
            model = train_classifier(rows, embeddings=embeddings, encoder=encoder, progress=False)
            results["weak labels only"] = scores(model.predict(labelled, embeddings=embeddings[index])[0], gold)
            results[f"labels + weak labels ({folds}-fold CV)"] = cross_validate(
                rows, hand, config, embeddings=embeddings, folds=folds, repeats=1, encoder=encoder
            )
            gold_rows = {i: {t: int(gold[n, k]) for k, t in enumerate(INTENTS)} for n, i in enumerate(index)}
            extra["labelling_functions"] = lf_report(weak, gold_rows)
    if as_json:
        _emit_json({"results": results, **extra})
        return
    for name, result in results.items():
        per = "  ".join(f"{i}={v['f1']:.3f}" for i, v in result["per_intent"].items())
        out.print(f"{name}: macro-F1 {result['macro_f1']:.3f}  ({per})")
    if "warning" in extra:
        out.print(f"[yellow]{extra['warning']}[/yellow]")


@reviews_app.command("expand")
def expand(
    catalog: Annotated[Path, typer.Argument(help="Catalogue file (CSV, TSV, JSON Lines or Parquet).")],
    reviews: Annotated[Path, typer.Argument(help="Reviews file (CSV, JSON Lines or Parquet).")],
    intents: Annotated[
        Path, typer.Option("--intents", help="Classified reviews: the CSV 'reviews classify' wrote for REVIEWS.")
    ],
    out_file: Annotated[
        Path, typer.Option("--out", help="Catalogue to write: CATALOG with a review_text attribute per product.")
    ],
    per_product: Annotated[
        int, typer.Option(help="Reviews per product: those most likely highly useful (obnoxious ones never).")
    ] = 2,
    max_words: Annotated[int, typer.Option(help="Clip each review to this many words.")] = 40,
    skip_bad_rows: SkipOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Expand product signals with review text: a copy of the catalogue whose products carry their most useful
    reviews as the review_text attribute, read by the towers with --fields ...,reviews."""
    from towersearch.data.catalog import load_catalog, write_catalog
    from towersearch.reviews.data import load_reviews
    from towersearch.reviews.expand import expand_catalog
    from towersearch.reviews.insights import load_review_intents

    products = load_catalog(catalog, skip_bad_rows=skip_bad_rows)
    rows, report = load_reviews(reviews, skip_bad_rows=skip_bad_rows)
    classified = load_review_intents(intents)
    expanded, counts = expand_catalog(products, rows, classified, per_product=per_product, max_words=max_words)
    write_catalog(expanded, out_file)
    summary = {
        **counts.as_dict(),
        "skipped_rows": report.skipped,
        "skipped_catalog_rows": products.report.skipped if products.report else {},
        "path": str(out_file),
    }
    if as_json:
        _emit_json(summary)
        return
    out.print(
        _summary_table(
            "Review text added to products",
            {
                "products": counts.products,
                "products expanded": counts.products_expanded,
                "reviews used": counts.reviews_used,
                "reviews not classified": counts.unclassified,
                "obnoxious reviews left out": counts.obnoxious,
                "reviews of unknown products": counts.unknown_product,
            },
        )
    )
    out.print(f"written to {out_file}")

"""Review intents on real reviews: baselines, weak labels, few-shot and all dev labels, on the 100 dev labels.

    python benchmarks/bench_reviews.py [--seeds 5] [--name reviews]

Reads ``../shared/data/amazon-fine-food-reviews`` (1,000 reviews) and ``../shared/data/review-intents/labels.csv``
(100 of them labelled). Rows: always yes, keyword rules, zero-shot, the labelling functions' own vote, the
classifier trained on weak labels only (scored on all 100 dev labels, which it never saw), few-shot k = 8/16/32
(k labelled reviews drawn with several seeds, scored on the other dev reviews) without and with weak labels and
with paraphrase augmentation, and all dev labels with and without weak labels (5-fold cross-validation, two
repeats). Also times encoding/classifying the 1,000 reviews and training on weak labels, and lists what the weak
classifier flags as obnoxious. Results: ``results/<name>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import RESULTS, SHARED, machine
from towersearch.data.importers.amazon_reviews import import_amazon_reviews
from towersearch.reviews.classifier import ReviewEncoder, ReviewTrainConfig, train_classifier
from towersearch.reviews.data import INTENTS, load_intent_labels, load_reviews
from towersearch.reviews.evaluate import (
    always_yes,
    cross_validate,
    few_shot,
    gold_matrix,
    keyword_rules,
    scores,
    zero_shot,
)
from towersearch.reviews.labelling import lf_report, weak_labels

AUGMENT = "towersearch.reviews.augment:synonym_swap"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5, help="Draws per few-shot k.")
    parser.add_argument("--name", default="reviews")
    parser.add_argument("--max-seq-length", type=int, default=None, help="Token limit (default: the classifier's).")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="towersearch-reviews-"))
    import_amazon_reviews(SHARED / "amazon-fine-food-reviews", work)
    reviews, _ = load_reviews(work / "reviews.csv")
    labels = load_intent_labels(SHARED / "review-intents" / "labels.csv")
    rows, gold = gold_matrix(reviews, labels)
    dev = [reviews[i] for i in rows]
    config = ReviewTrainConfig()
    if args.max_seq_length:
        config = replace(config, max_seq_length=args.max_seq_length)
    seeds = tuple(range(args.seeds))

    start = time.perf_counter()
    encoder = ReviewEncoder(config.max_seq_length)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    embeddings = encoder.encode(reviews, config.batch_size, progress=True)
    encode_seconds = time.perf_counter() - start

    table: dict[str, dict] = {}
    table["always yes"] = scores(always_yes(dev), gold)
    table["keyword rules"] = scores(keyword_rules(dev), gold)
    table["zero-shot (base encoder)"] = scores(zero_shot(dev, encoder, embeddings=embeddings[rows]), gold)
    weak = weak_labels(reviews)
    table["labelling functions' vote"] = scores((weak.labels[rows] == 1).astype(np.int8), gold)

    start = time.perf_counter()
    model = train_classifier(reviews, config=config, embeddings=embeddings, encoder=encoder, progress=False)
    head_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predicted, proba = model.predict(reviews, embeddings=embeddings)
    head_predict_seconds = time.perf_counter() - start
    table["weak labels only (classifier)"] = scores(predicted[rows], gold)
    obnoxious = [
        {"review_id": reviews[i].review_id, "p": round(float(proba[i, INTENTS.index("obnoxious")]), 3),
         "text": reviews[i].full_text[:200]}
        for i in np.flatnonzero(predicted[:, INTENTS.index("obnoxious")])
    ]  # fmt: skip

    ob = INTENTS.index("obnoxious")
    flagged_by_vote = [
        {"review_id": reviews[i].review_id, "text": reviews[i].full_text[:200]}
        for i in np.flatnonzero(weak.labels[:, ob] == 1)
    ]
    plain = replace(config, use_weak_labels=True)
    augmented = replace(config, augment=AUGMENT)
    no_weak = replace(config, use_weak_labels=False)
    for k in (8, 16, 32):
        print(f"few-shot k={k}")
        table[f"few-shot k={k}"] = few_shot(reviews, labels, k, no_weak, embeddings=embeddings, seeds=seeds,
                                            encoder=encoder)  # fmt: skip
        table[f"few-shot k={k} + weak labels"] = few_shot(reviews, labels, k, plain, embeddings=embeddings,
                                                          seeds=seeds, encoder=encoder)  # fmt: skip
        table[f"few-shot k={k} + weak labels + paraphrases"] = few_shot(
            reviews, labels, k, augmented, embeddings=embeddings, seeds=seeds, encoder=encoder
        )
    print("all dev labels")
    table["all 100 labels (5-fold CV)"] = cross_validate(reviews, labels, no_weak, embeddings=embeddings,
                                                        encoder=encoder)  # fmt: skip
    table["all 100 labels + weak labels (5-fold CV)"] = cross_validate(reviews, labels, plain, embeddings=embeddings,
                                                                      encoder=encoder)  # fmt: skip

    # End to end as the CLI runs it: a fresh encoder, weak labels only, then classifying all reviews.
    start = time.perf_counter()
    fresh = train_classifier(reviews, config=config, progress=False)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fresh.predict(reviews)
    classify_seconds = time.perf_counter() - start

    gold_by_row = {j: {t: int(gold[n, k]) for k, t in enumerate(INTENTS)} for n, j in enumerate(rows)}
    payload = {
        "benchmark": args.name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "reviews": len(reviews),
        "dev_labels": len(rows),
        "few_shot_seeds": list(seeds),
        "table": table,
        "labelling_functions": lf_report(weak, gold_by_row),
        "weak_label_coverage": model.summary["weak_label_coverage"],
        "thresholds_weak_only": model.thresholds,
        "flagged_obnoxious": obnoxious,
        "flagged_obnoxious_by_vote": flagged_by_vote,
        "seconds": {
            "load_encoder": round(load_seconds, 2),
            "encode_1000": round(encode_seconds, 2),
            "fit_heads_weak_only": round(head_seconds, 2),
            "predict_heads_1000": round(head_predict_seconds, 3),
            "train_weak_only_end_to_end": round(train_seconds, 2),
            "classify_1000_end_to_end": round(classify_seconds, 2),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [f"# {args.name}", "", f"{len(reviews)} reviews, {len(rows)} dev labels; {payload['date']}; "
             f"{payload['machine']}", "", "| model | highly_useful F1 | passionate F1 | balanced F1 | macro-F1 |",
             "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, result in table.items():
        f1 = [result["per_intent"][i]["f1"] for i in ("highly_useful", "passionate", "balanced")]
        spread = f" ± {result['macro_f1_std']:.3f}" if "macro_f1_std" in result else ""
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in f1) + f" | {result['macro_f1']:.3f}{spread} |")
    lines += ["", "| labelling function | intent | coverage | conflicts | accuracy on dev (votes) |",
              "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for lf in payload["labelling_functions"]:
        acc = "–" if lf["accuracy"] is None else f"{lf['accuracy']:.3f}"
        lines.append(f"| {lf['lf']} | {lf['intent']} | {lf['coverage']:.3f} | {lf['conflicts']:.3f} | "
                     f"{acc} ({lf['gold_votes']}) |")  # fmt: skip
    lines += ["", "seconds: " + ", ".join(f"{k} {v}" for k, v in payload["seconds"].items()),
              "", f"flagged obnoxious (weak labels only): {len(obnoxious)}"]  # fmt: skip
    lines += [f"- {o['review_id']} (p={o['p']}): {o['text']}" for o in obnoxious]
    lines += ["", f"flagged obnoxious by the labelling functions' vote: {len(flagged_by_vote)}"]
    lines += [f"- {o['review_id']}: {o['text']}" for o in flagged_by_vote]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""Scoring review intent predictions against hand labels, the baselines every model must beat, and the
cross-validated and few-shot protocols of ``towersearch reviews evaluate`` and ``benchmarks/bench_reviews.py``.

- **always yes**: every review has every intent (its F1 is what a label's base rate alone gives).
- **keyword rules**: one plain rule per intent (two kinds of concrete detail; an exclamation mark or a
  strong-feeling word; a contrast word; a hostile word).
- **zero-shot**: the base encoder's cosine similarity of a review to a written description of each intent against
  one of its opposite (:data:`INTENT_DESCRIPTIONS`); the intent holds where the description is nearer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from towersearch.reviews.classifier import ReviewEncoder, ReviewTrainConfig, train_classifier
from towersearch.reviews.data import INTENTS, Review
from towersearch.reviews.labelling import CONTRAST, HOSTILE, STRONG_WORDS, Signals

SCORED_INTENTS = ("highly_useful", "passionate", "balanced")
"""The intents scored by F1 on the dev labels (obnoxious occurs once in 300 labelled reviews: too rare to score)."""

INTENT_DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "highly_useful": (
        "A detailed, informative review with concrete facts about the product: its taste, texture, ingredients, "
        "size, price and value, packaging, how to prepare it, who it suits, compared with other products.",
        "A short, vague review with no specific information about the product.",
    ),
    "passionate": (
        "An intensely emotional review: I absolutely LOVE it!!! The best ever! Or: I hate it, the worst, "
        "disgusting, never again!",
        "A calm, matter-of-fact review written without strong emotion.",
    ),
    "obnoxious": (
        "A hostile, rude, insulting rant attacking the seller, the company or other people, or spam and "
        "advertising unrelated to the product.",
        "A polite review that talks about the product.",
    ),
    "balanced": (
        "A balanced review that names both good points and bad points of the product: it is good, but it has a "
        "downside.",
        "A one-sided review that is only positive or only negative about the product.",
    ),
}


def scores(
    predicted: np.ndarray, gold: np.ndarray, intents: Sequence[str] = INTENTS, scored: Sequence[str] = SCORED_INTENTS
) -> dict[str, Any]:
    """Precision, recall and F1 per intent and macro-F1 over ``scored`` (rows: reviews, columns: ``intents``)."""
    out: dict[str, Any] = {"per_intent": {}}
    for t, intent in enumerate(intents):
        p, g = predicted[:, t] == 1, gold[:, t] == 1
        tp = float((p & g).sum())
        precision = tp / p.sum() if p.sum() else 0.0
        recall = tp / g.sum() if g.sum() else 0.0
        f1 = 2 * tp / (p.sum() + g.sum()) if (p.sum() + g.sum()) else 0.0
        out["per_intent"][intent] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": int(g.sum()),
            "predicted": int(p.sum()),
        }
    present = [i for i in scored if i in intents]
    out["macro_f1"] = round(float(np.mean([out["per_intent"][i]["f1"] for i in present])), 4) if present else None
    out["scored"] = present
    return out


def gold_matrix(reviews: Sequence[Review], labels: Mapping[str, Mapping[str, int]]) -> tuple[list[int], np.ndarray]:
    """The rows of ``reviews`` that have hand labels and their labels (absent intents count as 0)."""
    rows = [i for i, r in enumerate(reviews) if r.review_id in labels]
    gold = np.array([[int(labels[reviews[i].review_id].get(t, 0)) for t in INTENTS] for i in rows], dtype=np.int8)
    return rows, gold.reshape(len(rows), len(INTENTS))


def always_yes(reviews: Sequence[Review]) -> np.ndarray:
    return np.ones((len(reviews), len(INTENTS)), dtype=np.int8)


def keyword_rules(reviews: Sequence[Review]) -> np.ndarray:
    """One plain rule per intent (see the module docstring)."""
    out = np.zeros((len(reviews), len(INTENTS)), dtype=np.int8)
    for i, review in enumerate(reviews):
        s = Signals(review)
        rules = {
            "highly_useful": len(s.detail_kinds) >= 2,
            "passionate": s.exclamations > 0 or bool(s.word_set & STRONG_WORDS),
            "obnoxious": bool(s.word_set & HOSTILE),
            "balanced": bool(s.word_set & CONTRAST),
        }
        out[i] = [int(rules[t]) for t in INTENTS]
    return out


def zero_shot(reviews: Sequence[Review], encoder: ReviewEncoder, *, embeddings: np.ndarray | None = None) -> np.ndarray:
    """Each intent where a review is nearer its description than the opposite one (base encoder)."""
    emb = encoder.encode(reviews) if embeddings is None else embeddings
    texts = [INTENT_DESCRIPTIONS[t][k] for t in INTENTS for k in (0, 1)]
    desc = encoder.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    sims = emb @ desc.T
    return (sims[:, 0::2] > sims[:, 1::2]).astype(np.int8)


def cross_validate(
    reviews: Sequence[Review],
    labels: Mapping[str, Mapping[str, int]],
    config: ReviewTrainConfig,
    *,
    embeddings: np.ndarray,
    folds: int = 5,
    repeats: int = 2,
    encoder: ReviewEncoder | None = None,
) -> dict[str, Any]:
    """Train on all hand labels but one fold (plus weak labels, as configured), predict the fold; every labelled
    review is predicted once per repeat. Returns the mean per-intent F1 and macro-F1 over repeats."""
    rows, gold = gold_matrix(reviews, labels)
    ids = [reviews[i].review_id for i in rows]
    runs = []
    for repeat in range(repeats):
        order = np.random.default_rng(repeat).permutation(len(rows))
        predicted = np.zeros_like(gold)
        for k in range(folds):
            held = order[k::folds]
            train_ids = set(ids) - {ids[j] for j in held}
            model = train_classifier(
                reviews,
                labels={rid: labels[rid] for rid in train_ids},
                config=config,
                embeddings=embeddings,
                encoder=encoder,
                progress=False,
            )
            held_rows = [rows[j] for j in held]
            pred, _ = model.predict([reviews[r] for r in held_rows], embeddings=embeddings[held_rows])
            predicted[held] = pred
        runs.append(scores(predicted, gold))
    return _mean_runs(runs)


def few_shot(
    reviews: Sequence[Review],
    labels: Mapping[str, Mapping[str, int]],
    k: int,
    config: ReviewTrainConfig,
    *,
    embeddings: np.ndarray,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    encoder: ReviewEncoder | None = None,
) -> dict[str, Any]:
    """Train on ``k`` labelled reviews drawn at random (each draw holding at least one positive and one negative of
    every scored intent), score the remaining labelled ones; mean over ``seeds``."""
    rows, gold = gold_matrix(reviews, labels)
    scored = [INTENTS.index(i) for i in SCORED_INTENTS]
    runs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for _ in range(10_000):
            pick = rng.choice(len(rows), size=k, replace=False)
            sums = gold[pick][:, scored].sum(axis=0)
            if (sums >= 1).all() and (sums <= k - 1).all():
                break
        else:  # pragma: no cover - only with degenerate labels
            raise ValueError(f"cannot draw {k} labelled reviews holding both classes of every scored intent")
        rest = np.setdiff1d(np.arange(len(rows)), pick)
        train_labels = {reviews[rows[j]].review_id: labels[reviews[rows[j]].review_id] for j in pick}
        model = train_classifier(
            reviews, labels=train_labels, config=config, embeddings=embeddings, encoder=encoder, progress=False
        )
        test_rows = [rows[j] for j in rest]
        pred, _ = model.predict([reviews[r] for r in test_rows], embeddings=embeddings[test_rows])
        runs.append(scores(pred, gold[rest]))
    return _mean_runs(runs)


def _mean_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": len(runs), "per_intent": {}}
    for intent in INTENTS:
        out["per_intent"][intent] = {
            key: round(float(np.mean([r["per_intent"][intent][key] for r in runs])), 4)
            for key in ("precision", "recall", "f1")
        }
    macro = [r["macro_f1"] for r in runs]
    out["macro_f1"] = round(float(np.mean(macro)), 4)
    out["macro_f1_std"] = round(float(np.std(macro)), 4)
    return out


def labels_only(config: ReviewTrainConfig) -> ReviewTrainConfig:
    """The same configuration without weak labels."""
    return replace(config, use_weak_labels=False)

"""Review intent classifier: sentence embeddings and surface features, one logistic-regression head per intent.

Features of a review: the all-MiniLM-L6-v2 embedding of its title and text (what it talks about, how) and a few
standardised surface features (:data:`SURFACE_FEATURES`: length, kinds of concrete detail, quantities, exclamation
marks, capitals, strong-feeling words, contrast and caveats, star-rating extremity, helpfulness votes), which an
averaged embedding hardly carries. Each intent gets its own head (multi-label: a review may have any number of
intents), trained on

- the labelling functions' majority vote (:mod:`towersearch.reviews.labelling`) for every review they label, and
- hand labels where given, weighted ``gold_weight`` times a weak label (20 by default: on the 100 dev labels,
  cross-validated, weights 10, 20 and 40 were within 0.01 macro-F1 of each other);
- optionally paraphrases of the hand-labelled reviews from an ``--augment module:function`` hook, with their labels.

Each intent's decision threshold is chosen in training to maximise F1 on out-of-fold predictions: against the hand
labels when they hold both classes of that intent, else against the weak labels. The model is a folder with one
JSON file (weights, feature scaling, thresholds, versions; no pickle); the encoder is the base model, which every
towersearch install has.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from towersearch.data.io import write_json
from towersearch.errors import ArtifactError, ConfigError, DataError
from towersearch.reviews.data import INTENTS, Review
from towersearch.reviews.labelling import ABSTAIN, Signals, weak_labels

MODEL_FILE = "classifier.json"
FORMAT = "towersearch-review-intents/1"
SURFACE_FEATURES = (
    "log_words",
    "detail_kinds",
    "log_quantities",
    "log_exclamations",
    "log_capitals",
    "log_strong_words",
    "contrast",
    "caveat",
    "two_sided",
    "extreme_rating",
    "rating",
    "log_votes",
    "helpful_ratio",
)
Augmenter = Callable[[Review], Sequence[str]]


@dataclass
class ReviewTrainConfig:
    """Options of ``towersearch reviews train``."""

    gold_weight: float = field(default=20.0, metadata={"help": "Weight of a hand label against a weak label."})
    use_weak_labels: bool = field(
        default=True, metadata={"help": "Train on the labelling functions' vote as well as on hand labels."}
    )
    regularization: float = field(default=1.0, metadata={"help": "Inverse L2 strength C of each head."})
    max_seq_length: int = field(default=128, metadata={"help": "Token limit of a review's text (its embedding)."})
    batch_size: int = field(default=32, metadata={"help": "Reviews per encoding batch."})
    folds: int = field(default=5, metadata={"help": "Folds of the out-of-fold predictions that pick thresholds."})
    augment: str | None = field(
        default=None, metadata={"help": "module:function returning paraphrases of a hand-labelled review."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the folds."})

    def __post_init__(self) -> None:
        if self.gold_weight <= 0 or self.regularization <= 0:
            raise ConfigError("gold_weight and regularization must be > 0")
        if self.folds < 2:
            raise ConfigError(f"folds must be >= 2, got {self.folds}")
        if self.max_seq_length < 8 or self.batch_size < 1:
            raise ConfigError("max_seq_length must be >= 8 and batch_size >= 1")


def load_augmenter(spec: str) -> Augmenter:
    """Import an augmentation hook given as ``module:function`` (it maps a Review to a list of paraphrased texts)."""
    from towersearch.training.pairs import load_hook

    return load_hook(spec, "augmentation hook")


def surface_features(reviews: Sequence[Review]) -> np.ndarray:
    """The raw (unscaled) :data:`SURFACE_FEATURES` of each review, one row per review."""
    out = np.zeros((len(reviews), len(SURFACE_FEATURES)), dtype=np.float64)
    for i, review in enumerate(reviews):
        s = Signals(review)
        rating = review.rating if review.rating is not None else 3.0
        ratio = s.helpful_ratio
        out[i] = (
            math.log1p(s.n_words),
            len(s.detail_kinds),
            math.log1p(s.quantities),
            math.log1p(s.exclamations),
            math.log1p(s.caps_words),
            math.log1p(s.strong_words),
            float(s.has_contrast),
            float(s.has_caveat),
            float(s.two_sided),
            float(rating in (1.0, 5.0)),
            (rating - 3.0) / 2.0,
            math.log1p(review.total_votes or 0),
            ratio if ratio is not None else 0.5,
        )
    return out


class ReviewEncoder:
    """The base sentence encoder for review text (title and text), with a token limit."""

    def __init__(self, max_seq_length: int = 128) -> None:
        from towersearch.model import load_model

        self.model = load_model(None)
        self.model.max_seq_length = max_seq_length

    def encode(self, reviews: Sequence[Review], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        texts = [r.full_text for r in reviews]
        return self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=progress, convert_to_numpy=True
        ).astype(np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


@dataclass
class IntentClassifier:
    """A trained classifier: per intent a weight vector over [embedding, scaled surface features] and a threshold."""

    intents: tuple[str, ...]
    weights: np.ndarray  # (intents, features)
    bias: np.ndarray  # (intents,)
    thresholds: dict[str, float]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    max_seq_length: int = 128
    summary: dict[str, Any] = field(default_factory=dict)
    _encoder: ReviewEncoder | None = field(default=None, repr=False, compare=False)

    @property
    def encoder(self) -> ReviewEncoder:
        if self._encoder is None:
            self._encoder = ReviewEncoder(self.max_seq_length)
        return self._encoder

    def features(self, reviews: Sequence[Review], *, embeddings: np.ndarray | None = None, progress=False):
        emb = self.encoder.encode(reviews, progress=progress) if embeddings is None else embeddings
        surface = (surface_features(reviews) - self.feature_mean) / self.feature_scale
        return np.hstack([emb.astype(np.float64), surface])

    def predict_proba(
        self, reviews: Sequence[Review], *, embeddings: np.ndarray | None = None, progress: bool = False
    ) -> np.ndarray:
        """Probability of each intent (columns in :attr:`intents` order) for each review."""
        if not reviews:
            return np.zeros((0, len(self.intents)))
        x = self.features(reviews, embeddings=embeddings, progress=progress)
        return _sigmoid(x @ self.weights.T + self.bias)

    def predict(self, reviews: Sequence[Review], **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """(0/1 labels, probabilities), each ``(reviews, intents)``; a label is 1 where the probability reaches
        the intent's threshold."""
        proba = self.predict_proba(reviews, **kwargs)
        cut = np.array([self.thresholds[i] for i in self.intents])
        return (proba >= cut).astype(np.int8), proba

    def save(self, folder: str | Path) -> None:
        from towersearch import __version__

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "towersearch": __version__,
            "encoder": "all-MiniLM-L6-v2",
            "max_seq_length": self.max_seq_length,
            "intents": list(self.intents),
            "surface_features": list(SURFACE_FEATURES),
            "feature_mean": self.feature_mean.tolist(),
            "feature_scale": self.feature_scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias.tolist(),
            "thresholds": self.thresholds,
            "summary": self.summary,
        }
        write_json(folder / MODEL_FILE, data)

    @classmethod
    def load(cls, folder: str | Path) -> IntentClassifier:
        path = Path(folder) / MODEL_FILE
        if not path.is_file():
            raise ArtifactError(f"{folder} is not a review intent model (no {MODEL_FILE}); train one with "
                                "'towersearch reviews train'")  # fmt: skip
        import json

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path} is not valid JSON: {exc}") from None
        if data.get("format") != FORMAT:
            raise ArtifactError(f"{path} has format {data.get('format')!r}, expected {FORMAT!r}")
        if tuple(data["surface_features"]) != SURFACE_FEATURES:
            raise ArtifactError(f"{path} was trained with other surface features; train it again")
        return cls(
            intents=tuple(data["intents"]),
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=np.asarray(data["bias"], dtype=np.float64),
            thresholds={k: float(v) for k, v in data["thresholds"].items()},
            feature_mean=np.asarray(data["feature_mean"], dtype=np.float64),
            feature_scale=np.asarray(data["feature_scale"], dtype=np.float64),
            max_seq_length=int(data.get("max_seq_length", 128)),
            summary=data.get("summary", {}),
        )


def _best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The cut on ``p`` that maximises F1 against ``y`` (ties: the one nearest 0.5)."""
    best, best_key = 0.5, (-1.0, 0.0)
    for cut in np.round(np.linspace(0.05, 0.95, 91), 2):
        pred = p >= cut
        tp = float((pred & (y == 1)).sum())
        denom = float(pred.sum() + (y == 1).sum())
        f1 = 2 * tp / denom if denom else 0.0
        key = (round(f1, 9), -abs(cut - 0.5))
        if key > best_key:
            best, best_key = float(cut), key
    return best


def _fit_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Logistic regression (L2, lbfgs); a single-class target gives a constant head at its smoothed prior."""
    if len(np.unique(y)) < 2:
        prior = (y.sum() + 0.5) / (len(y) + 1.0)
        return np.zeros(x.shape[1]), float(np.log(prior / (1 - prior)))
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=3000)
    clf.fit(x, y, sample_weight=w)
    return clf.coef_[0].astype(np.float64), float(clf.intercept_[0])


def _out_of_fold(x, y, w, c, rows: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Probabilities for ``rows`` from heads trained without them (``folds`` folds over ``rows``)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(rows)
    out = np.zeros(len(x))
    for k in range(min(folds, len(rows))):
        held = order[k::folds]
        keep = np.ones(len(x), dtype=bool)
        keep[held] = False
        coef, bias = _fit_head(x[keep], y[keep], w[keep], c)
        out[held] = _sigmoid(x[held] @ coef + bias)
    return out[rows]


def train_classifier(
    reviews: Sequence[Review],
    *,
    labels: Mapping[str, Mapping[str, int]] | None = None,
    config: ReviewTrainConfig | None = None,
    embeddings: np.ndarray | None = None,
    encoder: ReviewEncoder | None = None,
    progress: bool = True,
) -> IntentClassifier:
    """Train the intent heads on weak labels and, where given, hand labels (review_id → {intent: 0/1}).

    ``embeddings`` may pass the reviews' embeddings when the caller has them (the benchmark reuses them across
    runs); ``encoder`` a loaded :class:`ReviewEncoder`.

    Raises:
        DataError: a labelled review_id is not among the reviews, or there are no reviews.
        ConfigError: nothing to learn from (weak labels off and no hand labels).
    """
    config = config or ReviewTrainConfig()
    if not reviews:
        raise DataError("no reviews to train on")
    labels = labels or {}
    index = {r.review_id: i for i, r in enumerate(reviews)}
    missing = [rid for rid in labels if rid not in index]
    if missing:
        raise DataError(
            f"{len(missing)} labelled review_id(s) are not among the reviews, e.g. {', '.join(missing[:3])}",
            field="review_id",
        )
    if not labels and not config.use_weak_labels:
        raise ConfigError("nothing to train on: give --labels or keep the weak labels")
    classifier_encoder = encoder or ReviewEncoder(config.max_seq_length)
    weak = weak_labels(reviews)
    rows = list(reviews)
    if embeddings is None:
        embeddings = classifier_encoder.encode(rows, config.batch_size, progress=progress)
    gold_rows = {index[rid]: dict(lab) for rid, lab in labels.items()}
    augmented = 0
    if config.augment and gold_rows:
        augment = load_augmenter(config.augment)
        extra: list[Review] = []
        extra_labels = []
        for i, lab in gold_rows.items():
            for text in augment(reviews[i]) or ():
                if text and text.strip() and text.strip() != reviews[i].text:
                    extra.append(replace(reviews[i], text=text.strip(), title=""))
                    extra_labels.append(lab)
        if extra:
            embeddings = np.vstack([embeddings, classifier_encoder.encode(extra, config.batch_size)])
            gold_rows.update({len(reviews) + k: lab for k, lab in enumerate(extra_labels)})
            rows.extend(extra)
            augmented = len(extra)
    raw = surface_features(rows)
    mean, scale = raw[: len(reviews)].mean(axis=0), raw[: len(reviews)].std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    x = np.hstack([embeddings.astype(np.float64), (raw - mean) / scale])
    n_rows = len(rows)
    weights = np.zeros((len(INTENTS), x.shape[1]))
    bias = np.zeros(len(INTENTS))
    thresholds: dict[str, float] = {}
    per_intent: dict[str, dict[str, Any]] = {}
    for t, intent in enumerate(INTENTS):
        y = np.full(n_rows, ABSTAIN, dtype=np.int64)
        w = np.ones(n_rows)
        if config.use_weak_labels:
            y[: len(reviews)] = weak.labels[:, t]
        gold_here = [i for i, lab in gold_rows.items() if intent in lab]
        for i in gold_here:
            y[i] = int(gold_rows[i][intent])
            w[i] = config.gold_weight
        train_rows = np.flatnonzero(y != ABSTAIN)
        if len(train_rows) == 0:
            raise ConfigError(f"no labels of any kind for intent {intent!r}")
        xt, yt, wt = x[train_rows], y[train_rows], w[train_rows]
        weights[t], bias[t] = _fit_head(xt, yt, wt, config.regularization)
        position = {r: k for k, r in enumerate(train_rows)}
        gold_real = np.array([position[i] for i in gold_here if i < len(reviews)], dtype=np.int64)
        gold_y = yt[gold_real] if len(gold_real) else np.zeros(0)
        if len(gold_real) and min(gold_y.sum(), len(gold_y) - gold_y.sum()) >= 2:
            source, check = "labels", gold_real
        else:
            source, check = "weak labels", np.arange(len(train_rows))
        if len(np.unique(yt[check])) < 2:
            thresholds[intent] = 0.5
        else:
            oof = _out_of_fold(xt, yt, wt, config.regularization, check, config.folds, config.seed)
            thresholds[intent] = _best_threshold(yt[check], oof)
        per_intent[intent] = {
            "training_rows": int(len(train_rows)),
            "positives": int((yt == 1).sum()),
            "hand_labels": len(gold_here),
            "threshold": thresholds[intent],
            "threshold_from": source,
        }
    summary = {
        "reviews": len(reviews),
        "hand_labelled": len(labels),
        "augmented": augmented,
        "weak_label_coverage": {
            i: round(float((weak.labels[:, t] != ABSTAIN).mean()), 4) for t, i in enumerate(INTENTS)
        },
        "intents": per_intent,
        "config": asdict(config),
    }
    return IntentClassifier(
        intents=INTENTS,
        weights=weights,
        bias=bias,
        thresholds=thresholds,
        feature_mean=mean,
        feature_scale=scale,
        max_seq_length=config.max_seq_length,
        summary=summary,
        _encoder=classifier_encoder,
    )

"""The learned ranking stage: LightGBM LambdaMART re-ranks the hybrid retriever's top candidates.

A ranker is stored in the model folder, beside the towers, as ``ranker/``: LightGBM's own text model of each of its
boosters (``model.txt``, then ``model_1.txt``, ... when it averages several, listed in ``ranker.json``),
``ranker.json`` (the feature list, the candidate depth, versions, training summary) and the
:class:`~towersearch.search.features.RankingContext` it reads engagement from. ``towersearch train`` makes it;
``evaluate``, ``index``, ``search`` and the service load it with the towers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from towersearch.data.io import atomic_path
from towersearch.errors import ArtifactError
from towersearch.search.features import FEATURES, FeatureExtractor, RankingContext
from towersearch.search.forest import CompiledForest
from towersearch.search.hybrid import Candidates, HybridRetriever
from towersearch.search.retriever import Hit

RANKER_DIR = "ranker"

logger = logging.getLogger(__name__)


def _lightgbm():
    try:
        import lightgbm
    except ImportError:  # pragma: no cover - a core dependency
        raise ArtifactError("LightGBM is missing: pip install lightgbm") from None
    return lightgbm


def _model_file(i: int) -> str:
    """The file of the ``i``-th booster: ``model.txt`` for the first (a one-booster ranker's only file)."""
    return "model.txt" if i == 0 else f"model_{i}.txt"


@dataclass
class Ranker:
    """A trained LightGBM ranker with the features it reads and the context they come from.

    Args:
        boosters: LightGBM boosters (objective ``lambdarank``); the ranker's score is the mean of theirs.
        features: Feature names, in column order (a subset of :data:`~towersearch.search.features.FEATURES`).
        candidates: How many fused candidates it re-ranks.
        context: Engagement from the training log.
        meta: Training summary and versions (``ranker.json``).
    """

    boosters: list[Any]
    features: list[str]
    candidates: int
    context: RankingContext
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ArtifactError(f"ranker uses unknown features {unknown}; this towersearch knows {list(FEATURES)}")
        self.columns = np.array([list(FEATURES).index(f) for f in self.features], dtype=np.int64)
        self._forest: CompiledForest | None = None
        self._forest_failed = False
        self._forest_lock = threading.Lock()

    @classmethod
    def placeholder(cls, context: RankingContext, candidates: int) -> Ranker:
        """A ranker without a model, for composing the retrievers a ranker is then trained on."""
        return cls([], list(FEATURES), candidates, context, {})

    @property
    def default(self) -> bool:
        """Whether search should use it by default (it beat hybrid on the held-out log queries when trained)."""
        return bool(self.meta.get("default", True))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Scores of rows of a full feature matrix (all :data:`FEATURES` columns): the mean of the boosters' scores,
        computed by their :class:`~towersearch.search.forest.CompiledForest` (the same scores, sooner), or by
        LightGBM where the boosters cannot be compiled."""
        if len(matrix) == 0:
            return np.zeros(0)
        x = matrix[:, self.columns]
        forest = self.forest()
        if forest is not None:
            return forest.predict(x)
        return self.predict_lightgbm(x)

    def predict_lightgbm(self, x: np.ndarray) -> np.ndarray:
        """The mean of the boosters' scores by LightGBM, for rows of the ranker's own feature columns."""
        return np.mean([booster.predict(x, num_threads=1) for booster in self.boosters], axis=0)

    def forest(self) -> CompiledForest | None:
        """The boosters compiled into one ONNX tree ensemble (on first use), or None where they cannot be."""
        if self._forest is None and not self._forest_failed and self.boosters:
            with self._forest_lock:
                if self._forest is None and not self._forest_failed:
                    try:
                        self._forest = CompiledForest(self.boosters)
                    except Exception as exc:  # an ONNX Runtime without TreeEnsemble v5, an unusual tree: LightGBM
                        self._forest_failed = True
                        logger.warning("ranker scored by LightGBM (its boosters do not compile: %s)", exc)
        return self._forest

    def save(self, model_dir: str | Path) -> None:
        """Write ``ranker/`` into a model folder (each file atomically)."""
        import lightgbm

        folder = Path(model_dir) / RANKER_DIR
        folder.mkdir(parents=True, exist_ok=True)
        files = [_model_file(i) for i in range(len(self.boosters))]
        for booster, name in zip(self.boosters, files, strict=True):
            with atomic_path(folder / name) as tmp:
                booster.save_model(str(tmp))
        meta = {
            **self.meta,
            "models": files,
            "features": self.features,
            "candidates": self.candidates,
            "lightgbm_version": lightgbm.__version__,
        }
        with atomic_path(folder / "ranker.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        self.context.save(folder)

    @classmethod
    def load(cls, model_dir: str | Path) -> Ranker | None:
        """The ranker of a model folder, or None when it has none.

        Raises:
            ArtifactError: a ranker folder that cannot be read.
        """
        folder = Path(model_dir) / RANKER_DIR
        if not (folder / "ranker.json").is_file():
            return None
        lightgbm = _lightgbm()
        try:
            meta = json.loads((folder / "ranker.json").read_text(encoding="utf-8"))
            boosters = [lightgbm.Booster(model_file=str(folder / name)) for name in meta.get("models", ["model.txt"])]
        except (OSError, ValueError, lightgbm.basic.LightGBMError) as exc:
            raise ArtifactError(f"ranker in {folder} cannot be read: {exc}") from None
        return cls(boosters, list(meta["features"]), int(meta["candidates"]), RankingContext.load(folder), meta)


class RankedRetriever:
    """Hybrid retrieval, then the ranker re-orders the top ``ranker.candidates`` fused products.

    Products below the candidate depth keep their fused order after the re-ranked ones.

    Args:
        hybrid: The hybrid retriever whose fused lists are re-ranked.
        ranker: The trained ranker.
        extractor: Computes the ranker's features; or a function that builds it, called once, on first use (its
            name-only BM25 and token sets take seconds per 100,000 products, wasted where ``ranked`` is not used).
    """

    name = "ranked"

    def __init__(
        self, hybrid: HybridRetriever, ranker: Ranker, extractor: FeatureExtractor | Callable[[], FeatureExtractor]
    ) -> None:
        self.hybrid = hybrid
        self.ranker = ranker
        self._extractor = extractor if isinstance(extractor, FeatureExtractor) else None
        self._build = None if self._extractor is not None else extractor
        self._lock = threading.Lock()

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            with self._lock:
                if self._extractor is None:
                    self._extractor = self._build()
        return self._extractor

    def candidates(self, queries: Sequence[str], depth: int | None = None) -> tuple[np.ndarray, list[Candidates]]:
        """For each query: its vector and the fused candidates (what the features read)."""
        depth = depth or self.ranker.candidates
        vectors = self.hybrid.dense.encoder.encode(queries)
        return vectors, self.hybrid.fused_candidates(queries, depth, vectors)

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        if not queries:
            return []
        depth = max(k, self.ranker.candidates)
        vectors, lists = self.candidates(queries, depth)
        ids = self.hybrid.product_ids
        out = []
        for query, vector, fused in zip(queries, vectors, lists, strict=True):
            head = fused.take(slice(0, self.ranker.candidates))
            matrix = self.extractor.features(query, vector, head, self.ranker.candidates)
            scores = self.ranker.predict(matrix)
            order = np.lexsort((np.arange(len(head)), -scores))[:k]  # best first, ties in fused order
            best = head.take(order)
            ranked = [
                Hit(ids[r], s, {**kept, "ranked": s})
                for r, s, kept in zip(best.rows.tolist(), scores[order].tolist(), best.scores(), strict=True)
            ]
            if k > len(head):  # below the re-ranked depth, the fused order, scored below every re-ranked product
                floor = float(scores.min()) if len(head) else 0.0
                tail = fused.take(slice(len(head), k))
                ranked += [Hit(h.product_id, floor - 1 - j, h.scores) for j, h in enumerate(tail.hits(ids))]
            out.append(ranked[:k])
        return out

"""The retriever interface every retrieval method (lexical, dense, hybrid, ranked) implements, and its helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved product with its score (higher is better).

    ``scores`` holds the score each contributing retriever gave it (``bm25``, ``dense``, ``fused``, ``ranked``), so
    a fused or re-ranked list can show where its order came from.
    """

    product_id: str
    score: float
    scores: dict[str, float] = field(default_factory=dict, compare=False)


RowScores = tuple[np.ndarray, np.ndarray]
"""A ranked list as arrays, best first: catalogue rows (int64) and their scores (float64).

Lexical and dense retrieval hand these to fusion and the ranking stage, so a search builds :class:`Hit` objects only
for the products it returns."""

NO_ROWS: RowScores = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


def hits_from_rows(product_ids: Sequence[str], rows: np.ndarray, scores: np.ndarray, source: str) -> list[Hit]:
    """Hits of a row list, each carrying its score under ``source`` (``bm25``, ``dense``)."""
    return [Hit(product_ids[r], s, {source: s}) for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]


@runtime_checkable
class Retriever(Protocol):
    """Anything that turns queries into ranked product lists."""

    name: str

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """The top ``k`` products for each query, best first."""
        ...


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest of a 1-d ``scores``, best first; ties go to the lower index.

    The one top-k of the package: BM25, exact dense search and the ANN reference all rank with it, so equal scores
    come out in the same order everywhere.
    """
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(n)
    return part[np.lexsort((part, -scores[part]))]


def find_sorted(sorted_values: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``wanted``, its position in the non-empty ascending ``sorted_values`` and whether it is there
    (a binary search each: posting lists and small lookup tables read at a hundred candidates)."""
    pos = np.minimum(np.searchsorted(sorted_values, wanted), len(sorted_values) - 1)
    return pos, sorted_values[pos] == wanted

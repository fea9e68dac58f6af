"""The retriever interface every retrieval method (lexical, dense, hybrid) implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved product with its score (higher is better)."""

    product_id: str
    score: float


@runtime_checkable
class Retriever(Protocol):
    """Anything that turns queries into ranked product lists."""

    name: str

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """The top ``k`` products for each query, best first."""
        ...

"""Response bodies of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel


class SearchResult(BaseModel):
    product_id: str
    name: str
    brand: str
    category: str
    department: str
    size: str
    score: float
    scores: dict[str, float]
    rank: int


class SearchResponse(BaseModel):
    query: str
    mode: str
    results: list[SearchResult]


class Product(BaseModel):
    product_id: str
    name: str
    brand: str
    category: str
    department: str
    size: str
    description: str
    attributes: dict[str, str]


class Health(BaseModel):
    """Liveness and what is served; names and fingerprints only, never a server path."""

    status: str
    products: int
    index: str
    generation: str | None = None
    built: str
    model: str
    model_fingerprint: str | None = None
    model_untrained: bool | None = None


class Reloaded(BaseModel):
    reloaded: bool
    products: int
    generation: str | None = None
    built: str


class ErrorBody(BaseModel):
    detail: str


class Suggestion(BaseModel):
    text: str
    score: float
    match: str
    folded: list[str]


class SuggestResponse(BaseModel):
    prefix: str
    suggestions: list[Suggestion]

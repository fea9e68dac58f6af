"""Response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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
    spelling: dict[str, str] = Field(
        default_factory=dict,
        description="Query words the lexical retriever read as other catalogue words (typed → read), e.g. "
        '{"toliet": "toilet"}: a page shows "showing results for". Empty when none, and in dense mode.',
    )
    search_id: str | None = Field(
        default=None, description="Send it back with the shopper's events (POST /events); null when not recorded."
    )


class MostUsefulReview(BaseModel):
    """The review of a product most likely to be highly useful."""

    review_id: str
    title: str = Field(description="Its headline; empty when it has none.")
    text: str = Field(description="Its text, cut at a word to at most 600 characters (ending in '…' when cut).")
    rating: float | None = Field(default=None, description="Its star rating, 1 to 5; null when the review has none.")
    p_highly_useful: float = Field(description="The classifier's probability that it is highly useful.")


class ReviewInsights(BaseModel):
    """What a product's reviews say, from the review-intent classifier (``towersearch index --reviews``)."""

    count: int = Field(description="Reviews of the product that were classified.")
    intent_share: dict[str, float] = Field(
        description="Share of those reviews with each intent (highly_useful, passionate, obnoxious, balanced), "
        "0 to 1, rounded to 4 places; a review may have several intents or none."
    )
    most_useful: MostUsefulReview = Field(
        description="The review with the highest p_highly_useful (ties: more helpful votes, then the smaller id)."
    )


class Product(BaseModel):
    product_id: str
    name: str
    brand: str
    category: str
    department: str
    size: str
    description: str
    attributes: dict[str, str]
    reviews: ReviewInsights | None = Field(
        default=None, description="Review insights; null when the product has no reviews or the index none."
    )


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
    search_id: str | None = Field(default=None, description="As for /search.")


class EventsBody(BaseModel):
    """A batch of shoppers' events; each item: ``search_id``, ``product_id``, ``event`` (click, add_to_cart or
    purchase), and optionally ``position`` (1-based), ``session_id``, ``timestamp`` (ISO-8601)."""

    events: list[dict[str, Any]]


class EventsStored(BaseModel):
    stored: int


class EventErrorBody(BaseModel):
    detail: str
    index: int | None = Field(default=None, description="The item of the batch at fault, counted from 0.")
    field: str | None = Field(default=None, description="Its field at fault.")


class ProductsBody(BaseModel):
    """New and changed products, each an object with the catalogue's columns: ``product_id`` and ``name``
    (required), ``brand``, ``category``, ``size``, ``description``, ``attributes`` (``key=value;…`` or an object),
    ``created_at``; any other key is kept as an attribute."""

    products: list[dict[str, Any]]


class ProductsUpdated(BaseModel):
    """What a catalogue update did; answered once the new generation is on disk and served."""

    generation: str | None = Field(description="The generation now served.")
    previous: str | None = Field(default=None, description="The generation the update was applied to.")
    changed_anything: bool = Field(description="False when every upsert equalled the stored product.")
    upserted: int
    added: int
    changed: int
    unchanged: int
    deleted: int
    products: int
    encoded: int = Field(description="Products run through the product tower.")
    ann: dict[str, Any]
    suggest: dict[str, Any]
    seconds: dict[str, float]


class ProductErrorBody(BaseModel):
    detail: str
    index: int | None = Field(default=None, description="The product of the batch at fault, counted from 0.")
    field: str | None = Field(default=None, description="Its field at fault.")

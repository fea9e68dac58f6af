"""Service settings, read from the environment (prefix ``TOWERSEARCH_``) or given directly."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """What the HTTP service needs; ``TOWERSEARCH_INDEX_DIR=… towersearch serve`` works as well as flags."""

    model_config = SettingsConfigDict(env_prefix="TOWERSEARCH_")

    index_dir: Path = Field(description="Index folder built by `towersearch index`.")
    admin_token: str | None = Field(default=None, description="Token for /admin/reload; unset disables it.")
    cache_size: int = Field(default=10_000, ge=0, description="Query vectors kept in the LRU cache.")
    max_query_length: int = Field(default=256, ge=1, description="Longest accepted query, in characters.")
    max_k: int = Field(default=100, ge=1, description="Most results one request may ask for.")
    quantize_queries: bool = Field(
        default=False, description="Encode live queries with int8 towers (about 2x faster, about 1% NDCG@10)."
    )

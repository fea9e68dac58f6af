"""Service settings, read from the environment (prefix ``TOWERSEARCH_``) or given directly.

Every field is an environment variable: ``index_dir`` is ``TOWERSEARCH_INDEX_DIR``, ``max_k`` is
``TOWERSEARCH_MAX_K``, and so on. The admin token comes from ``TOWERSEARCH_ADMIN_TOKEN`` or from the file named by
``TOWERSEARCH_ADMIN_TOKEN_FILE`` (a secrets mount, say), never from a command-line flag, where it would show in the
process list and the shell history.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """What the HTTP service needs; ``TOWERSEARCH_INDEX_DIR=… towersearch serve`` works as well as flags."""

    model_config = SettingsConfigDict(env_prefix="TOWERSEARCH_")

    index_dir: Path = Field(description="Index folder built by `towersearch index`.")
    admin_token: SecretStr | None = Field(
        default=None, description="Token for POST /admin/reload (header X-Admin-Token); unset disables reloads."
    )
    admin_token_file: Path | None = Field(
        default=None, description="A file holding the admin token (trailing newline stripped), instead of the token."
    )
    cache_size: int = Field(default=10_000, ge=0, description="Query vectors kept in the LRU cache.")
    max_query_length: int = Field(default=256, ge=1, description="Longest accepted query, in characters.")
    max_k: int = Field(default=100, ge=1, description="Most results one request may ask for.")
    quantize_queries: bool = Field(
        default=False, description="Encode live queries with int8 towers (about 2x faster, about 1% NDCG@10)."
    )
    record_events: bool = Field(
        default=True, description="Record searches, suggestions and shoppers' events (POST /events) in the event store."
    )
    events_path: Path | None = Field(
        default=None, description="The event store (SQLite); default: events.db in the index folder."
    )
    events_retention_days: int | None = Field(
        default=90, ge=1, description="Searches older than this are purged at start-up; unset keeps everything."
    )
    max_event_batch: int = Field(default=1000, ge=1, description="Most events one POST /events may carry.")

    @model_validator(mode="after")
    def _read_admin_token_file(self) -> Settings:
        if self.admin_token_file is None:
            return self
        if self.admin_token is not None:
            raise ValueError("set TOWERSEARCH_ADMIN_TOKEN or TOWERSEARCH_ADMIN_TOKEN_FILE, not both")
        try:
            token = self.admin_token_file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the admin token file {self.admin_token_file}: {exc}") from None
        if not token:
            raise ValueError(f"the admin token file {self.admin_token_file} is empty")
        self.admin_token = SecretStr(token)
        return self

    @property
    def events_file(self) -> Path:
        """Where events are recorded: ``events_path``, else ``events.db`` in the index folder."""
        return self.events_path or Path(self.index_dir) / "events.db"

    @property
    def reload_enabled(self) -> bool:
        """Whether ``POST /admin/reload`` is on: only with a non-empty admin token."""
        return self.admin_token is not None and bool(self.admin_token.get_secret_value())

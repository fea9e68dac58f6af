"""Domain exceptions.

Every error a user can cause derives from :class:`TowersearchError`, so the CLI can print it as one clear line and
exit non-zero, and the service can map it to an HTTP status without catching programming errors by accident.
"""

from __future__ import annotations

from pathlib import Path


class TowersearchError(Exception):
    """Base class of every error towersearch raises on purpose."""


class DataError(TowersearchError):
    """A data file is malformed.

    Args:
        message: What is wrong and, where useful, what is allowed.
        path: The file, if the error comes from one.
        line: The 1-based line (CSV, JSON Lines) or row (Parquet) number.
        field: The column the error is about.
        reason: A short machine-readable key (``"missing_column"``, ``"unknown_event"``, …) used to count
            skipped rows.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        reason: str = "invalid",
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.reason = reason
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ArtifactError(TowersearchError):
    """A pipeline folder (model, index) is missing, incomplete or does not match what it is loaded with."""


class ConfigError(TowersearchError):
    """An option or setting has a value that is not allowed."""


class ServiceError(TowersearchError):
    """A running towersearch service could not be reached, or answered a request with an error."""

"""towersearch: two-tower semantic product search and autocomplete for online stores."""

__version__ = "0.1.0"

from towersearch.errors import ArtifactError, ConfigError, DataError, TowersearchError  # noqa: E402

__all__ = ["ArtifactError", "ConfigError", "DataError", "TowersearchError", "__version__"]

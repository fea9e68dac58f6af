"""The two towers: one shared (Siamese) encoder, or distinct query and product encoders behind a ``Router``.

Both kinds save and load as plain sentence-transformers folders. ``model.encode_query`` goes through the query
tower and ``model.encode_document`` through the product tower; with a shared encoder both are the same network.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

from towersearch.errors import ConfigError
from towersearch.model import load_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

TOWERS = ("shared", "distinct")
QUERY_ROUTE = "query"
PRODUCT_ROUTE = "document"


def check_towers(towers: str) -> str:
    """Raise a clear error for an unknown towers mode."""
    if towers not in TOWERS:
        raise ConfigError(f"unknown towers mode {towers!r}; allowed: {', '.join(TOWERS)}")
    return towers


def is_distinct(model: SentenceTransformer) -> bool:
    """Whether the model routes queries and products through different sub-networks."""
    from sentence_transformers.base.modules import Router

    return any(isinstance(m, Router) for m in model.children())


def shared_encoder(
    path: str | Path | None = None, *, max_seq_length: int = 64, device: str = "cpu"
) -> SentenceTransformer:
    """One encoder for queries and products (the base model when ``path`` is None)."""
    model = load_model(path, device=device)
    model.max_seq_length = max_seq_length
    return model


def untie(model: SentenceTransformer) -> SentenceTransformer:
    """Distinct towers initialised from one shared encoder: the query tower is a deep copy of it.

    A model that already has distinct towers is returned unchanged.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router

    if is_distinct(model):
        return model
    modules = list(model.children())
    router = Router.for_query_document(
        query_modules=copy.deepcopy(modules), document_modules=modules, default_route=PRODUCT_ROUTE
    )
    distinct = SentenceTransformer(modules=[router], device=str(model.device))
    distinct.max_seq_length = model.max_seq_length
    return distinct


def tower_parameters(model: SentenceTransformer) -> tuple[list, list]:
    """The query tower's and the product tower's parameters (the same list twice for a shared encoder)."""
    if not is_distinct(model):
        params = list(model.parameters())
        return params, params
    router = next(iter(model.children()))
    return list(router.sub_modules[QUERY_ROUTE].parameters()), list(router.sub_modules[PRODUCT_ROUTE].parameters())


def _towers(model: SentenceTransformer) -> list:
    """The query and product sub-networks of distinct towers, or the one shared encoder."""
    if not is_distinct(model):
        return [model]
    router = next(iter(model.children()))
    return [router.sub_modules[QUERY_ROUTE], router.sub_modules[PRODUCT_ROUTE]]


def interpolate(model: SentenceTransformer, base: SentenceTransformer, weight: float) -> SentenceTransformer:
    """Each tower's weights moved back towards the base model's: ``base + weight × (trained − base)`` (WiSE-FT).

    ``weight`` 1 is ``model`` itself and 0 the base model. ``base`` is one shared encoder (both towers of a distinct
    model move towards it) or distinct towers like ``model`` (each tower towards its own, as after a warm start);
    ``model`` is changed in place and returned.

    Raises:
        ConfigError: ``weight`` outside [0, 1], or the two models' weights do not line up.
    """
    import torch

    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"interpolation weight must be between 0 and 1, got {weight}")
    towers, starts = _towers(model), _towers(base)
    if len(starts) == 1:
        starts = starts * len(towers)
    if len(starts) != len(towers):
        raise ConfigError("a shared encoder cannot be merged with distinct towers")
    with torch.no_grad():
        for tower, start_tower in zip(towers, starts, strict=True):
            state, start = tower.state_dict(), start_tower.state_dict()
            if state.keys() != start.keys():
                differ = sorted(set(state) ^ set(start))[:3]
                raise ConfigError(f"the towers and the base model have different weights (e.g. {differ})")
            for name, value in state.items():
                if value.is_floating_point():
                    value.copy_(torch.lerp(start[name].to(value), value, weight))
    return model

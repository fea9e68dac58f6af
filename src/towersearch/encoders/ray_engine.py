"""Batch encoding on Ray Data: the product tower (or the query tower) over many texts in a pool of actors.

``towersearch index ... --engine ray [--ray-address ADDR]`` encodes the catalogue and the autocomplete candidates
this way; everything else about the build is the same. The texts (the product text the single-process path makes,
or the query text of each suggestion) are written as a Parquet file, read as Ray Data blocks (repartitioned: one
small file is one block), encoded by actors that each load the towers once (``map_batches`` with an
``ActorPoolStrategy``; one actor per ``threads`` CPUs, or per GPU with ``gpus_per_actor``), and written back as
Parquet embedding shards (``row``: int64, ``vector``: fixed-size list of float32) that the build reads and puts in
row order. The actors run the same encoder as the single-process path (ONNX Runtime or PyTorch, same batch size),
so the vectors agree with it to float rounding (1e-5; tested).

Without ``address`` Ray starts on this machine; with one it joins that cluster, and then the model folder and
``work_dir`` must be on storage every node sees. Each actor runs ``threads`` intra-op threads (PyTorch and ONNX
Runtime). Gotchas handled: the input is repartitioned; Ray's dashboard is not started; a local Ray gets one logical
CPU more than the cores, so its read and write tasks run beside an actor pool that takes every core (a pool holding
every CPU waits forever for its input); on a cluster the pool starts with one actor and grows.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from towersearch.errors import ArtifactError, ConfigError

INSTALL_HINT = "the Ray Data engine needs ray[data]: pip install 'towersearch[scale]'"
TOWERS = ("document", "query")


@dataclass(frozen=True)
class RayConfig:
    """Options of encoding on Ray Data (``towersearch index --engine ray``)."""

    address: str | None = field(default=None, metadata={"help": "Ray cluster address (default: Ray on this machine)."})
    actors: int | None = field(
        default=None, metadata={"help": "Most encoder actors (default: the cluster's CPUs / threads, or its GPUs)."}
    )
    threads: int = field(default=1, metadata={"help": "CPUs (intra-op threads) per actor."})
    gpus_per_actor: float = field(default=0.0, metadata={"help": "GPUs per actor (0: encode on CPUs)."})
    batch_size: int | None = field(
        default=None, metadata={"help": "Texts per encoding batch (default: the encoder's own, as without Ray)."}
    )
    blocks: int | None = field(default=None, metadata={"help": "Input blocks (default: 4 per actor)."})
    work_dir: Path | None = field(
        default=None, metadata={"help": "Where the texts and embedding shards go (default: a temporary folder)."}
    )

    def __post_init__(self) -> None:
        if self.threads < 1 or (self.actors is not None and self.actors < 1):
            raise ConfigError("ray threads and actors must be >= 1")
        if self.gpus_per_actor < 0 or (self.blocks is not None and self.blocks < 1):
            raise ConfigError("ray gpus_per_actor must be >= 0 and blocks >= 1")


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def start(config: RayConfig, *, progress: bool = False):
    """Ray, initialised (locally with every CPU, or joined to ``config.address``) unless it already is.

    Without ``progress``, Ray Data's INFO lines (each dataset's execution and write) and its hint that progress bars
    are off stay out of stderr; its warnings and errors still show."""
    ray = _ray()
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if config.address:
            options["address"] = config.address
        else:  # one logical CPU more than the cores: the read and write tasks run beside a pool that takes them all
            options["num_cpus"] = (os.cpu_count() or 1) + 1
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ArtifactError(f"cannot start or join Ray ({config.address or 'local'}): {exc}") from None
    logging.getLogger("ray.data").setLevel(logging.INFO if progress else logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.INFO if progress else logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.print_on_execution_start = progress
    return ray


def _pool_size(ray, config: RayConfig) -> int:
    if config.actors is not None:
        return config.actors
    resources = ray.cluster_resources()
    if config.gpus_per_actor > 0:
        return max(1, int(resources.get("GPU", 0) / config.gpus_per_actor))
    cpus = (os.cpu_count() or 1) if not config.address else resources.get("CPU", 1)
    return max(1, int(cpus // config.threads))


class TowerActor:
    """One encoder per actor: the towers of ``model_dir`` loaded once, then called on batches of texts."""

    def __init__(self, model_dir: str, backend: str, fingerprint: str | None, tower: str, threads: int, device: str):
        import torch

        from towersearch.encoders import load_encoder
        from towersearch.model import load_model

        torch.set_num_threads(threads)
        os.environ["TOWERSEARCH_ONNX_THREADS"] = str(threads)  # ONNX Runtime's intra-op threads, likewise
        if device == "cpu":
            self.model = load_encoder(model_dir, backend=backend, fingerprint=fingerprint)
        else:  # a GPU: the PyTorch towers on it
            self.model = load_model(model_dir, device=device)
        self.encode = self.model.encode_document if tower == "document" else self.model.encode_query
        self.batch_size = getattr(self.model, "default_batch_size", 128)

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        vectors = self.encode(
            batch["text"].tolist(),
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
        return pa.table({"row": pa.array(batch["row"], type=pa.int64()), "vector": column})


def encode_on_ray(
    model_dir: str | Path,
    texts: Sequence[str],
    *,
    tower: str,
    backend: str = "torch",
    fingerprint: str | None = None,
    config: RayConfig | None = None,
    progress: bool = False,
) -> np.ndarray:
    """L2-normalised float32 vectors of ``texts`` (already made into product or query text) through ``tower``
    (``document``: the product tower, ``query``: the query tower), in row order.

    Raises:
        ConfigError: Ray is not installed, or an unknown tower.
        ArtifactError: Ray cannot start, or the shards do not hold every row once.
    """
    if tower not in TOWERS:
        raise ConfigError(f"tower must be one of {', '.join(TOWERS)}, got {tower!r}")
    config = config or RayConfig()
    if not texts:
        raise ConfigError("nothing to encode")
    import pyarrow as pa
    import pyarrow.parquet as pq

    ray = start(config, progress=progress)
    actors = _pool_size(ray, config)
    if config.work_dir is not None:
        Path(config.work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="towersearch-ray-", dir=config.work_dir))
    try:
        source = work / "texts.parquet"
        pq.write_table(pa.table({"row": np.arange(len(texts), dtype=np.int64), "text": list(texts)}), source)
        blocks = min(len(texts), config.blocks or 4 * actors)
        device = "cuda" if config.gpus_per_actor > 0 else "cpu"
        dataset = ray.data.read_parquet(str(source)).repartition(blocks)
        dataset = dataset.map_batches(
            TowerActor,
            fn_constructor_kwargs={
                "model_dir": str(Path(model_dir).resolve()),
                "backend": backend,
                "fingerprint": fingerprint,
                "tower": tower,
                "threads": config.threads,
                "device": device,
            },
            compute=ray.data.ActorPoolStrategy(min_size=1 if config.address else actors, max_size=actors),
            num_cpus=config.threads,
            num_gpus=config.gpus_per_actor or None,
            batch_size=config.batch_size or max(1, -(-len(texts) // blocks)),
        )
        shards = work / "shards"
        dataset.write_parquet(str(shards))
        table = pq.read_table(shards)
        rows = table.column("row").to_numpy()
        if len(rows) != len(texts) or not np.array_equal(np.sort(rows), np.arange(len(texts))):
            raise ArtifactError(f"Ray encoding returned {len(rows)} rows for {len(texts)} texts")
        flat = table.column("vector").combine_chunks()
        vectors = flat.values.to_numpy(zero_copy_only=False).reshape(len(rows), flat.type.list_size)
        out = np.empty_like(vectors, dtype=np.float32)
        out[rows] = vectors
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)

"""Training on several devices: ``towersearch train`` under ``torchrun`` or ``accelerate launch`` (DDP).

Launched as, for example, ``torchrun --nproc_per_node 4 -- $(which towersearch) train ...`` (one process per GPU; on
CPU the same runs with the ``gloo`` backend), every process runs :func:`~towersearch.training.train.train`: the
sentence-transformers trainer wraps the towers in DDP, each process takes its share of every batch, and the loss
gathers the in-batch negatives of every device (``gather_across_devices``), so a global batch of
``batch_size × world size`` pairs gives each query that many negatives. The learning rates are scaled linearly with
the world size (the global batch grows by that factor; warm-up stays a share of the steps). The steps around
training (mining hard negatives, evaluation, fusion calibration, the ranking stage, saving) run in the first process
only; the others wait for it where a later step reads what it wrote (the work folder, the mined negatives). The
transformer's pooler, which mean pooling never reads, is frozen: DDP expects a gradient for every trainable weight.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def world_size() -> int:
    """Processes training together (``WORLD_SIZE`` set by ``torchrun`` / ``accelerate launch``; 1 alone)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def rank() -> int:
    """This process's rank (0 alone)."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's device index on its machine."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Whether this process writes (the model, the work folder, the summary)."""
    return rank() == 0


def setup(device: str) -> str:
    """Join the process group when launched for several devices and return this process's device (``cuda:<local
    rank>`` on GPUs); alone, ``device`` as it is."""
    if world_size() == 1:
        return device
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        atexit.register(teardown)  # ours to close: before the interpreter goes, not during its finalisation
    return f"cuda:{local_rank()}" if device.startswith("cuda") else device


def teardown() -> None:
    """Leave the process group (nothing outside one). A process that exits with the group open can abort while the
    interpreter shuts down (gloo's threads still hold tensors: "terminate called without an active exception"), so
    :func:`setup` registers this to run at exit in every process; calling it earlier is harmless."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def leave(code: int = 0) -> None:
    """End this process of a training group: collect what the trainer left (DDP's reducer holds the group's work),
    leave the group, flush the output and exit without the interpreter's finalisation. :func:`teardown` at exit
    alone was not enough: under load a process could still abort with "terminate called without an active
    exception" while C++ objects of the group were destroyed during finalisation, failing the whole launch."""
    import gc
    import logging

    gc.collect()
    teardown()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def barrier() -> None:
    """Wait for every process (nothing alone)."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def computed_by_first(path: Path, compute: Callable[[], list[Any]]) -> list[Any]:
    """``compute()`` in the first process; with several, the others wait and read its result from ``path`` (JSON),
    so every process trains on the same rows. Alone, nothing is written."""
    result: list[Any] = []
    if is_main():
        result = compute()
        if world_size() > 1:
            path.write_text(json.dumps(result), encoding="utf-8")
    barrier()
    if not is_main():
        result = json.loads(path.read_text(encoding="utf-8"))
    return result

"""``towersearch train`` under torchrun: two processes (gloo on CPU) train one model, the first saves it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from towersearch.model import load_model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_train_under_torchrun_on_two_processes(tiny_store, tiny_model_dir, tmp_path):
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "model"
    command = [
        str(bin_dir / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()), "--",
        str(bin_dir / "towersearch"), "train", "--catalog", str(tiny_store["catalog"]), "--log", str(tiny_store["log"]),
        "--out", str(out), "--base-model", str(tiny_model_dir), "--max-steps", "4", "--batch-size", "2",
        "--no-onnx", "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "terminate called" not in done.stderr, "every process leaves the group before it exits"
    summary = json.loads(done.stdout)  # one JSON document: only the first process reports
    assert summary["world_size"] == 2 and summary["towers"] == "distinct"
    stage1, stage2 = summary["stages"]
    assert stage1["learning_rate"] == 2 * 5e-5 and stage2["learning_rate"] == 2 * 2e-5, "scaled with the world"
    vectors = load_model(out).encode_query(["milk"], normalize_embeddings=True)
    assert vectors.shape == (1, 32)
    assert not (tmp_path / ".model.work").exists()


def test_teardown_leaves_the_process_group():
    import torch.distributed as dist

    from towersearch.training import distributed

    distributed.teardown()  # outside a group: nothing to do
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    assert dist.is_initialized()
    distributed.teardown()
    assert not dist.is_initialized()
    distributed.teardown()  # twice (as at exit after an explicit call): harmless


def test_leave_exits_after_leaving_the_group_and_flushing(tmp_path):
    script = (
        "import sys, torch.distributed as dist\n"
        "from towersearch.training import distributed\n"
        f"dist.init_process_group('gloo', init_method='tcp://127.0.0.1:{free_port()}', rank=0, world_size=1)\n"
        "import atexit; atexit.register(lambda: print('finalised'))\n"
        "sys.stdout.write('result')  # unflushed: leave() flushes it\n"
        "distributed.leave(3)\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout == "result", "flushed, and nothing ran after leave(): no atexit, no finalisation"

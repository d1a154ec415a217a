"""A training process killed with SIGKILL resumes to the same final weights; 2-process gloo training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch


def _tensors(path: Path):
    from safetensors.torch import load_file

    return load_file(str(path))


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _last_state(out: Path):
    info = json.loads((out / "train_state" / "state.json").read_text())
    t = _tensors(out / "train_state" / info["weights"])
    return {k: v for k, v in t.items() if k.startswith(("model.", "opt."))}


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNTHCLONE_QUIET": "1"}
    cmd = [sys.executable, "-m", "synthclone", "train", "--data", "real:k=40", "--epochs", "6", "--batch-size", "40",
           "--val-limit", "50", "--threads", "1", "--seed", "1"]
    subprocess.run(cmd + ["--out", str(tmp_path / "full")], check=True, env=env, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(killed)], env=env)
    state = killed / "train_state" / "state.json"
    deadline = time.time() + 240
    while True:
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.time() < deadline
        try:
            if json.loads(state.read_text())["epochs_done"] >= 1:
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    done = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done < 6
    subprocess.run(cmd + ["--out", str(killed)], check=True, env=env, timeout=300)
    assert json.loads(state.read_text())["epochs_done"] == 6
    assert _same(_last_state(killed), _last_state(tmp_path / "full"))
    assert _same(_tensors(killed / "model.safetensors"), _tensors(tmp_path / "full" / "model.safetensors"))


def _worker(rank: int, world: int, port: int, out: str, results: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _train(out, results, rank)
    finally:
        dist.destroy_process_group()


def _train(out: str, results: str, rank: int) -> None:
    import synthclone.training.regimes as regimes
    from synthclone.data import load_dataset
    from synthclone.data.mixing import from_sets
    from synthclone.training.engine import Settings, fit

    real = load_dataset("fashion-mnist", "train").per_class(60, seed=0)
    val = load_dataset("fashion-mnist", "val").per_class(30, seed=0)
    data = from_sets([real])
    torch.manual_seed(0)
    model = regimes.load_any_model("resnet8", classes=real.classes, in_chans=1, input_size=(28, 28))
    ctx = regimes.Context("supervised", data, val, "resnet8", Path(out), Settings(epochs=3, batch_size=60, lr=0.05))
    task = regimes._supervised_task(ctx, model, "supervised")
    seen = []
    inner = task.loss

    def recording_loss(batch):  # observe which samples this rank trains on
        seen.append(batch.index.tolist())
        return inner(batch)

    task.loss = recording_loss
    result = fit(task, data, val, out, ctx.settings)
    Path(f"{results}.{rank}").write_text(json.dumps({"seen": seen, "val": result.val_accuracy,
                                                      "steps_per_epoch": len(seen) // 3}))


@pytest.mark.slow
def test_two_gloo_processes_see_each_sample_once_and_match_one_process(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path / "ddp"), str(tmp_path / "res")), nprocs=2, join=True)
    ranks = [json.loads(Path(f"{tmp_path / 'res'}.{r}").read_text()) for r in range(2)]
    steps = ranks[0]["steps_per_epoch"]
    assert ranks[1]["steps_per_epoch"] == steps
    for epoch in range(3):
        ids = [i for r in ranks for b in r["seen"][epoch * steps:(epoch + 1) * steps] for i in b]
        assert sorted(ids) == list(range(600))  # every sample once per epoch, no overlap
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train(str(tmp_path / "single"), str(tmp_path / "single-res"), 0)
    finally:
        torch.set_num_threads(n)
    single = json.loads(Path(f"{tmp_path / 'single-res'}.0").read_text())
    assert ranks[0]["val"] == ranks[1]["val"]
    assert abs(ranks[0]["val"] - single["val"]) < 0.06, (ranks[0]["val"], single["val"])


@pytest.mark.slow
def test_ray_train_workers_match_torchrun_semantics(tmp_path):
    """--ray runs the same loop on 2 Ray Train workers (gloo); the batches and so the result match
    2 processes of any launcher: the history equals a 2-process torch.multiprocessing run's."""
    pytest.importorskip("ray")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNTHCLONE_QUIET": "1"}
    cmd = [sys.executable, "-m", "synthclone", "train", "--data", "real:k=20", "--epochs", "2", "--batch-size", "40",
           "--val-limit", "100", "--threads", "1"]
    subprocess.run(cmd + ["--out", str(tmp_path / "ray"), "--ray", "local", "--workers", "2"], check=True, env=env, timeout=600)
    state = json.loads((tmp_path / "ray" / "train_state" / "state.json").read_text())
    hardware = json.loads((tmp_path / "ray" / "meta.json").read_text())["training"]["hardware"]
    assert hardware["processes"] == 2 and state["epochs_done"] == 2
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "synthclone"] + cmd[3:]
    subprocess.run(torchrun + ["--out", str(tmp_path / "tr")], check=True, env=env, timeout=600)
    assert _same(_tensors(tmp_path / "ray" / "model.safetensors"), _tensors(tmp_path / "tr" / "model.safetensors"))

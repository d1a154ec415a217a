"""Data-parallel training with torch DDP over gloo: contrastive losses see every rank's negatives,
N processes train what one process trains, and a run resumes under another number of processes."""

from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp

import _ddp_workers as workers
from synthclone.data import load_dataset
from synthclone.training import train_model


def _spawn(fn, world_size: int, tmp_path, *args) -> None:
    init = tmp_path / f"pg-{fn.__name__}-{len(list(tmp_path.iterdir()))}"
    mp.start_processes(fn, args=(world_size, str(init), *args), nprocs=world_size, start_method="spawn", join=True)


def test_gathered_contrastive_losses_equal_one_process_on_the_global_batch(tmp_path):
    out = tmp_path / "two.pt"
    _spawn(workers.loss_worker, 2, tmp_path, str(out))
    two = torch.load(out)
    ssl, clip, grad_w, grad_s = workers.losses(None, gather=False)
    assert two["ssl"] == pytest.approx(ssl, rel=1e-5)
    assert two["clip"] == pytest.approx(clip, rel=1e-5)
    torch.testing.assert_close(two["grad_w"], grad_w, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(two["grad_scale"], grad_s, rtol=1e-4, atol=1e-6)


def test_without_gathering_the_losses_differ():
    # the check above can fail: each rank alone sees fewer negatives and a different loss
    a = workers.losses(slice(0, 6), gather=False)
    b = workers.losses(slice(6, 10), gather=False)
    full = workers.losses(None, gather=False)
    assert abs(a[0] + b[0] - full[0]) > 1e-3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    train = load_dataset("fashion-mnist", "train").per_class(10, seed=0)  # 100 images
    val = load_dataset("fashion-mnist", "val").per_class(5, seed=0)
    path = tmp_path_factory.mktemp("ddp") / "data.pt"
    torch.save((train, val), path)
    return train, val, path


# a linear probe on a frozen random backbone, no augmentation: nothing depends on the rank, so two
# processes must reach one process's weights (batch 30 over 100 images: a short last batch of 10)
PROBE = {"regime": "linear-probe", "model": "resnet8", "batch_size": 30, "seed": 0, "lr": 0.2, "precision": "fp32"}


def _head(path):
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path / "model.safetensors")).items() if k.startswith("head.")}


def test_two_gloo_processes_train_what_one_trains(tiny, tmp_path):
    train, val, data = tiny
    one = tmp_path / "one"
    train_model(train_data=train, val_data=val, out_dir=one, epochs=2, **PROBE)
    two = tmp_path / "two"
    _spawn(workers.train_worker, 2, tmp_path, str(data), str(two), json.dumps({**PROBE, "epochs": 2}))
    a, b = _head(one), _head(two)
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    meta = json.loads((two / "meta.json").read_text())["training"]
    assert meta["hardware"]["processes"] == 2 and meta["hardware"]["device"] == "cpu"


def test_a_two_process_run_resumes_in_one_process(tiny, tmp_path):
    train, val, data = tiny
    out = tmp_path / "resumed"
    _spawn(workers.train_worker, 2, tmp_path, str(data), str(out),
           json.dumps({**PROBE, "epochs": 2, "kill_after_epochs": 1}))
    assert json.loads((out / "train_state" / "state.json").read_text())["epochs_done"] == 1
    result = train_model(train_data=train, val_data=val, out_dir=out, epochs=2, **PROBE)
    assert len(result.history) == 2
    straight = tmp_path / "straight"
    train_model(train_data=train, val_data=val, out_dir=straight, epochs=2, **PROBE)
    a, b = _head(out), _head(straight)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)

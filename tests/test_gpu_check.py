"""benchmarks/gpu_check.py: it says so and exits 0 without CUDA, its device log can fail, and (slow)
the same tiny study runs end to end with every forward on the chosen device."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_and_exits_0(gpu_check, capsys):
    assert gpu_check.main([]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out


def test_the_device_log_catches_a_forward_off_the_device(gpu_check):
    with gpu_check.DeviceLog("cpu") as log:
        torch.nn.Linear(2, 2)(torch.zeros(1, 2))
        torch.nn.Linear(2, 2, device="meta")(torch.zeros(1, 2, device="meta"))
    assert log.seen["Linear"] == 2 and log.off == {"Linear": 1}


def test_the_shapes_folder_is_a_dataset(gpu_check, tmp_path):
    from synthclone.data import load_dataset

    root = gpu_check.make_shapes(tmp_path / "shapes", per_class=12, size=24)
    train = load_dataset(str(root), "train")
    assert train.classes == sorted(gpu_check.SHAPES) and train.shape == (3, 24, 24)


@pytest.mark.slow
def test_the_tiny_study_runs_on_the_cpu_with_every_forward_there(gpu_check, tmp_path, capsys):
    assert gpu_check.main(["--device", "cpu", "--no-throughput", "--out", str(tmp_path)]) == 0
    assert "every model and batch lived on cpu" in capsys.readouterr().out

"""``device: auto | cpu | cuda | cuda:N``: resolved once, CUDA without a GPU is one line and exit 2 for
every subcommand (nothing written), and the device is recorded in what training writes."""

from __future__ import annotations

import json

import pytest
import torch

from synthclone.cli import main
from synthclone.device import check_device_spec, resolve_device
from synthclone.errors import UserError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def test_spellings():
    assert check_device_spec("CUDA:1") == "cuda:1"
    for bad in ("gpu", "cuda:", "cuda:x", "mps0", ""):
        with pytest.raises(UserError, match="not a device setting"):
            check_device_spec(bad)


@no_cuda
def test_auto_is_the_cpu_here_and_cuda_is_an_error():
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(UserError, match="has none") as err:
            resolve_device(spec)
        assert "\n" not in str(err.value)


@no_cuda
@pytest.mark.parametrize("argv", [
    ["run", "configs/quickstart.yaml", "--out", "{out}"],
    ["generate", "--out", "{out}", "--generator-weights", "tiny", "--per-class", "1", "--filter", "none"],
    ["train", "--out", "{out}", "--epochs", "1"],
    ["bench", "--model", "resnet8", "--out", "{out}"],
    ["pretrain", "generator", "--out", "{out}", "--steps", "1"],
    ["pretrain", "clip", "--out", "{out}", "--epochs", "1"],
])
def test_every_subcommand_refuses_cuda_without_a_gpu(argv, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([a.replace("{out}", str(out)) for a in argv] + ["--device", "cuda"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("synthclone: error: device 'cuda'") and "\n" not in err
    assert not out.exists()  # nothing written


@no_cuda
def test_a_dry_run_notes_the_missing_gpu(capsys):
    # a dry run validates a GPU recipe on any machine (it runs nothing): the device is a note
    assert main(["run", "configs/imagenet100-sd.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "note: device 'cuda' asks for a CUDA GPU" in out


@no_cuda
def test_report_refuses_cuda_without_a_gpu(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("name: x\n")
    assert main(["report", str(tmp_path), "--device", "cuda"]) == 2
    assert "device 'cuda'" in capsys.readouterr().err


@no_cuda
def test_run_config_device_cuda_is_refused(tmp_path, capsys):
    assert main(["run", "configs/quickstart.yaml", "--out", str(tmp_path / "r"), "--set", "device=cuda:1"]) == 2
    assert "device 'cuda:1'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@no_cuda
def test_fp16_is_for_gpus(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "t"), "--precision", "fp16", "--epochs", "1",
                 "--data", "real:limit=64", "--val-limit", "20"])
    assert code == 2 and "fp16 runs on CUDA GPUs only" in capsys.readouterr().err


def test_training_records_its_device(tmp_path):
    from synthclone.data import load_dataset
    from synthclone.training import train_model

    real = load_dataset("fashion-mnist", "train").per_class(6, seed=0)
    val = load_dataset("fashion-mnist", "val").per_class(3, seed=0)
    train_model("supervised", real, val, "resnet8", tmp_path / "m", epochs=1, batch_size=30, device="auto",
                precision="fp32")
    hw = json.loads((tmp_path / "m" / "meta.json").read_text())["training"]["hardware"]
    assert hw["device"] == resolve_device("auto") and hw["processes"] == 1 and hw["precision"] == "fp32"


def test_ray_train_asks_for_gpus_only_where_the_device_and_the_cluster_say_so():
    from synthclone.training.launch import _ray_use_gpu

    assert _ray_use_gpu("cpu", 8) is False
    assert _ray_use_gpu("auto", 0) is False and _ray_use_gpu("auto", 2) is True
    assert _ray_use_gpu("cuda", 4) is True
    with pytest.raises(UserError, match="Ray cluster has none"):
        _ray_use_gpu("cuda", 0)
    with pytest.raises(UserError, match="use device: cuda"):
        _ray_use_gpu("cuda:1", 4)


def test_channels_last_trains_on_the_cpu_to_the_same_model(tmp_path):
    # channels-last is a memory layout: the same training, up to float rounding of the conv kernels
    from safetensors.torch import load_file

    from synthclone.data import load_dataset
    from synthclone.training import train_model

    real = load_dataset("fashion-mnist", "train").per_class(6, seed=0)
    for name, cl in (("a", False), ("b", True)):
        train_model("supervised", real, None, "resnet8", tmp_path / name, epochs=1, batch_size=30, precision="fp32",
                    channels_last=cl)
    a, b = (load_file(str(tmp_path / n / "model.safetensors")) for n in "ab")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path):
    from safetensors.torch import load_file

    from synthclone.data import load_dataset
    from synthclone.training import train_model

    real = load_dataset("fashion-mnist", "train").per_class(6, seed=0)
    for name, compiled in (("eager", False), ("compiled", True)):
        train_model("supervised", real, None, "resnet8", tmp_path / name, epochs=1, batch_size=30, precision="fp32",
                    compile=compiled)
    a, b = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("eager", "compiled"))
    assert a.keys() == b.keys()  # compiling does not rename the saved weights
    for k in a:  # inductor fuses kernels: the same training up to float rounding (measured: at most 5e-4)
        torch.testing.assert_close(a[k], b[k], rtol=1e-2, atol=2e-3)

"""``synthclone bench`` end to end on a saved checkpoint, and its one-line errors (exit 2)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from synthclone.models import create_model
from synthclone.models.checkpoint import save_checkpoint
from synthclone.data.fashion_mnist import CLASSES


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=CLASSES)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "r8")


def test_bench_writes_rows_summary_and_table(run_cli, ckpt, tmp_path):
    out = tmp_path / "bench"
    code, stdout, stderr = run_cli("bench", "--model", ckpt, "--probes", "clean,calibration,corruptions", "--out", out,
                                   "--limit", "120", "--option", 'corruptions=["contrast"]', "--option", "severities=[2,4]",
                                   "--baseline", ckpt)
    assert code == 0, stderr
    rows = pd.read_parquet(out / "rows.parquet")
    assert set(rows["probe"]) == {"clean", "calibration", "corruptions"}
    assert len(rows[rows["probe"] == "clean"]) == 120
    summary = json.loads((out / "summary.json").read_text())
    m = summary["models"]["r8"]
    assert 0 <= m["clean_acc"] <= 1 and m["ece"] is not None
    assert m["corruption_mce"] == pytest.approx(1.0)  # the baseline is the model itself
    assert summary["evaluation_images"] == 120
    assert (out / "plots" / "reliability_r8.png").is_file()
    assert "clean_acc" in stdout and "r8" in stdout


@pytest.mark.parametrize("case", ["unknown_probe", "empty_folder", "no_meta", "label_mismatch", "bad_option"])
def test_bad_input_is_one_line_exit_2(run_cli, ckpt, tmp_path, case):
    from PIL import Image

    args = ["bench", "--model", str(ckpt), "--out", str(tmp_path / "o"), "--limit", "20", "--probes", "clean"]
    if case == "unknown_probe":
        args[args.index("clean")] = "clean,telepathy"
    elif case == "empty_folder":
        (tmp_path / "empty" / "cat").mkdir(parents=True)
        args += ["--data", str(tmp_path / "empty")]
    elif case == "no_meta":
        (tmp_path / "fake").mkdir()
        (tmp_path / "fake" / "model.safetensors").write_bytes(b"")
        args[args.index(str(ckpt))] = str(tmp_path / "fake")
    elif case == "label_mismatch":
        for cls in ("cat", "dog"):
            (tmp_path / "pets" / cls).mkdir(parents=True)
            Image.new("L", (28, 28), 128).save(tmp_path / "pets" / cls / "a.png")
        args += ["--data", str(tmp_path / "pets")]
    elif case == "bad_option":
        args += ["--option", "warp_speed=9"]
    code, _, err = run_cli(*args)
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("synthclone: error:"), err


@pytest.mark.slow
def test_bench_all_on_tiny_timm_model(run_cli, tmp_path):
    out = tmp_path / "timm"
    code, stdout, err = run_cli("bench", "--model", "timm:test_resnet", "--random-weights", "--probes", "all", "--out", out,
                                "--limit", "64",
                                "--option", 'corruptions=["fog"]', "--option", "pgd_steps=2")
    assert code == 0, err
    doc = json.loads((out / "summary.json").read_text())
    assert "timm:test_resnet" in doc["models"] and doc["random_weights"] == ["timm:test_resnet"]
    assert "timm:test_resnet [random weights]" in stdout  # the printed table marks them


@pytest.mark.slow
def test_bench_all_on_tiny_open_clip_model(run_cli, tmp_path):
    import open_clip
    from safetensors.torch import save_file

    cfg = {"embed_dim": 32,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    torch.manual_seed(0)
    net = open_clip.CLIP(**cfg)
    d = tmp_path / "oc"
    d.mkdir()
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.25] * 3}}))
    save_file({k: v.contiguous().clone() for k, v in net.state_dict().items()}, str(d / "open_clip_model.safetensors"))
    out = tmp_path / "bench"
    code, stdout, err = run_cli("bench", "--model", f"open_clip:local-dir:{d}", "--probes", "all", "--out", out,
                                "--limit", "64", "--option", 'corruptions=["fog"]', "--option", "pgd_steps=2")
    assert code == 0, err
    rows = pd.read_parquet(out / "rows.parquet")
    assert set(rows["probe"]) == {"clean", "calibration", "corruptions", "adversarial", "shape-bias", "background", "ood"}

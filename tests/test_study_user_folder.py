"""A study on a user's own ImageFolder, end to end: scikit-learn's real digits written as RGB PNG
folders (a flat folder, so train / val / test are carved by path hash), a tiny Stable Diffusion
pipeline built locally as the generator (real diffusers code, random weights), every arm trained and
benchmarked on that data. Nothing here may touch Fashion-MNIST."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

pytest.importorskip("diffusers")

from test_generators_diffusers import tiny_pipeline  # noqa: E402,F401  (the module-scoped fixture)

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _digits_folder(root):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for name in NAMES:
        (root / name).mkdir(parents=True)
    for i, (img, y) in enumerate(zip(bunch.images, bunch.target)):
        if i >= 600:
            break
        a = (img / 16.0 * 255).astype(np.uint8)
        rgb = np.stack([a, np.roll(a, 1, axis=1), 255 - a], axis=-1)  # colour, so the folder is really RGB
        Image.fromarray(rgb, "RGB").resize((16, 16), Image.BILINEAR).save(root / NAMES[y] / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def user_run(tmp_path_factory, tiny_pipeline):  # noqa: F811
    from synthclone.cli import main

    root = tmp_path_factory.mktemp("user-study")
    data = _digits_folder(root / "digits")
    cfg = {
        "name": "digits-folder",
        "data": {"dataset": str(data), "val_limit": 60},
        "generate": {"generator": "diffusers", "model": str(tiny_pipeline), "filter": ["clip"],
                     "prompts": ["template"], "per_class": 4, "steps": 3, "guidance": 2.0, "scheduler": "ddim",
                     "batch_size": 8, "shard_size": 8},
        "clip": {"model": "small_clip:tiny"},
        "train": {"epochs": 1, "batch_size": 32},
        # ssl_prompts: template (one prompt per class) is allowed when named; the default needs per-image prompts
        "study": {"few_shot_k": 2, "few_shot_epochs": 1, "ssl_epochs": 1, "ssl_prompts": "template",
                  "ssl_images_per_prompt": 2, "ssl_group_size": 2, "clip_epochs": 1, "clip_batch_size": 16,
                  "clip_real_batch_size": 4},
        "bench": {"limit": 30, "severities": [1], "epsilons": [0.00784313725490196],
                  "options": {"pgd_steps": 1, "attacks": ["fgsm"], "corruptions": ["gaussian_noise"],
                              "ood_limit": 20, "shape_limit": 20, "background_limit": 20, "corruption_limit": 20,
                              "adversarial_limit": 20}},
        "report": {"guidance_grid": [1.0]},
    }
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_dir = root / "run"
    assert main(["-q", "run", str(path), "--out", str(run_dir)]) == 0
    return data, run_dir


def test_every_arm_trains_and_is_benchmarked_on_the_users_data(user_run):
    data, run_dir = user_run
    rows = pd.read_parquet(run_dir / "report" / "rows.parquet")
    arms = {m.split(":")[0].split("/")[0] for m in rows["model"]}
    assert arms == {"real", "synthetic", "unfiltered", "mixed", "zero-shot", "classifier-tuning", "ssl", "clip",
                    "few-shot-real", "few-shot-guided", "pretrain-finetune", "few-shot-clip", "few-shot-clip-guided"}
    clean = rows[(rows["probe"] == "clean") & (rows["condition"] == "clean")]
    # the test split is the folder's carved test split: its files, none of Fashion-MNIST's
    ids = set(clean["sample_id"])
    assert ids and all((data / i).is_file() for i in ids)
    from synthclone.data import load_dataset

    train_ids = set(load_dataset(str(data), "train").ids) | set(load_dataset(str(data), "val").ids)
    assert not ids & train_ids
    assert set(clean["label"]) <= set(range(10))


def test_models_and_stores_are_rgb_at_the_folders_size(user_run):
    _, run_dir = user_run
    from synthclone.data.store import load_store
    from synthclone.models.checkpoint import read_meta

    real = next(run_dir.glob("train-real*"))
    meta = read_meta(real / "checkpoint")
    assert meta["spec"]["in_chans"] == 3 and list(meta["spec"]["input_size"]) == [16, 16]
    assert meta["spec"]["classes"] == sorted(NAMES)
    store = load_store(next(run_dir.glob("generate-template*")) / "store")
    assert store.shape == (3, 16, 16) and store.classes == sorted(NAMES)
    summary = json.loads((next(run_dir.glob("data-*")) / "summary.json").read_text())
    assert set(summary) >= {"train", "val", "test"} and "generator" not in summary
    assert "hash" in summary["test"]["how"]
    assert (run_dir / "report" / "figures" / "guidance-1.png").is_file()  # grids from the study's own generator


def test_the_shipped_small_clip_refuses_the_digit_classes(user_run, tmp_path, run_cli):
    data, _ = user_run
    code, _, err = run_cli("run", "--set", f"data.dataset={data}", "--set", "generate.generator=embedded",
                           "--out", str(tmp_path / "x"))
    assert code == 2
    assert "does not know" in err and "diffusers" in err

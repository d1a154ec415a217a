"""Full-scale folder inputs on tiny stand-ins: cue-conflict (16 classes), ImageNet-9 variants, 1000 -> K maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from synthclone.data import load_dataset
from synthclone.models import create_model
from synthclone.robustness import BenchSettings, ModelAdapter, run_probes, summarize
from synthclone.robustness.label_maps import IMAGENET9, IMAGENET16, groups_for


def _png(path, seed, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def settings():
    test = load_dataset("fashion-mnist", split="test").subset(range(32))
    return dict(data=test, limit=32)


def test_cue_conflict_folder_with_an_imagenet_model(tmp_path, settings):
    root = tmp_path / "cue-conflict"
    stimuli = [("cat", "cat1-dog2"), ("cat", "cat2-cat1"), ("knife", "knife1-clock3"), ("dog", "dog3-knife1")]
    for i, (folder, stem) in enumerate(stimuli):
        _png(root / folder / f"{stem}.png", i)
    for j, c in enumerate(IMAGENET16):  # every category has a folder in the real set (empty ones are refused)
        if c not in {f for f, _ in stimuli}:
            _png(root / c / f"{c}1-cat1.png", 100 + j)
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=1000, in_chans=3, input_size=(32, 32)).eval()
    rows = run_probes(model, "in1k", ["shape-bias"], BenchSettings(cue_conflict_folder=str(root), **settings))
    assert len(rows) == 4 + 13
    ex = {r.sample_id: json.loads(r.extra) for r in rows.itertuples()}
    classes = sorted(IMAGENET16)
    assert ex["cat/cat1-dog2.png"] == {"shape": classes.index("cat"), "texture": classes.index("dog")}
    m = summarize(rows)["in1k"]
    assert m["stimuli"] == len(rows) - 1  # cat2-cat1 agrees: excluded


def test_imagenet9_variants_and_bg_gap(tmp_path, settings):
    root = tmp_path / "bg_challenge"
    names = list(IMAGENET9)
    for v in ("original", "mixed_same", "mixed_rand", "only_fg", "no_fg"):
        for k, name in enumerate(names):
            folder = root / v / "val" / f"{k:02d}_{name.replace(' ', '_')}"
            for j in range(2):
                _png(folder / f"{j}.png", k * 10 + j)
    model = create_model("resnet8", num_classes=9, in_chans=3, input_size=(32, 32), classes=names).eval()
    rows = run_probes(model, "in9", ["background"], BenchSettings(imagenet9_root=str(root), **settings))
    assert set(rows["condition"]) == {"original", "mixed_same", "mixed_rand", "only_fg", "no_fg"}
    assert len(rows) == 5 * 18
    assert sorted(set(rows["label"])) == list(range(9))
    m = summarize(rows)["in9"]
    assert m["bg_gap"] == pytest.approx(m["bg_acc_mixed_same"] - m["bg_acc_mixed_rand"])


def test_group_adapter_averages_probabilities():
    class Fixed(torch.nn.Module):
        spec = None

        def forward(self, x):
            return torch.log(torch.tensor([[0.5, 0.1, 0.1, 0.3]])).expand(len(x), 4)

    a = ModelAdapter(Fixed(), ["a", "b"], groups=[[0, 1], [2, 3]])
    p = a(torch.zeros(1, 1, 4, 4)).softmax(1)
    # mean probabilities 0.3 and 0.2, renormalised
    assert p[0].tolist() == pytest.approx([0.6, 0.4])


def test_groups_for_matches_names_and_rejects_strangers():
    g = groups_for("imagenet9", ["Dog", "wheeled_vehicle"])
    assert len(g) == 2 and 407 in g[1]  # ambulance is a wheeled vehicle
    with pytest.raises(Exception, match="not one of"):
        groups_for("imagenet16", ["spaceship"])


def test_shifted_extra_set_uses_the_class_subset_and_calibration_without_val(tmp_path, settings):
    test = settings["data"]
    root = tmp_path / "fmnist-r"
    for i in range(12):
        cls = test.classes[int(test.labels[i])]
        if "/" in cls:
            continue
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(test.images[i, 0].numpy()).save(root / cls / f"{i}.png")
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=test.classes).eval()
    rows = run_probes(model, "r8", ["clean", "calibration"], BenchSettings(extra_sets=[str(root)], **settings))
    shifted = rows[rows["condition"] == "shifted:fmnist-r"]
    n_images = sum(1 for _ in root.rglob("*.png"))
    assert len(shifted) == n_images
    # predictions index the folder's own (subset) classes
    assert shifted["prediction"].max() < len([p for p in root.iterdir() if p.is_dir()])
    m = summarize(rows)["r8"]
    assert "shifted_fmnist-r_acc" in m
    cal = rows[rows["probe"] == "calibration"]
    assert len(cal) == 2 * (32 - 32 // 5)  # a fifth of the evaluation set fitted T when no val split is given
    assert "no val split" in json.loads(cal["extra"].iloc[0])["fit_on"]


def test_ood_folder_is_scored_against_the_test_set(tmp_path, settings):
    for k in range(2):
        for j in range(5):
            _png(tmp_path / "ood" / f"c{k}" / f"{j}.png", 300 + 10 * k + j, size=28)
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=settings["data"].classes).eval()
    rows = run_probes(model, "r8", ["ood"], BenchSettings(ood_sets=[], ood_folders=[str(tmp_path / "ood")], **settings))
    assert set(rows["condition"].str.split(":").str[-1]) == {"msp", "max_logit", "energy", "entropy"}  # no val: no Mahalanobis
    detail = summarize(rows)["r8"]["ood_detail"]
    assert set(detail) == {"folder:ood"}
    assert 0.0 <= detail["folder:ood"]["msp"]["auroc"] <= 1.0

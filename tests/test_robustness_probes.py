"""Probes on a small trained ResNet-8: schema, per-cell corruption results, attacks, stimuli, OOD."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from synthclone.data import load_dataset
from synthclone.errors import UserError
from synthclone.models import create_model
from synthclone.robustness import COLUMNS, PROBES, BenchSettings, ModelAdapter, run_probes, summarize
from synthclone.robustness.adversarial import fgsm, pgd
from synthclone.robustness.core import take


@pytest.fixture(scope="module")
def fmnist():
    train = load_dataset("fashion-mnist", split="train")
    test = load_dataset("fashion-mnist", split="test")
    val = load_dataset("fashion-mnist", split="val")
    return train, val, test


@pytest.fixture(scope="module")
def trained(fmnist):
    """A ResNet-8 trained 2 epochs on 3,000 real images (~74% test accuracy; a few seconds on 2 idle cores)."""
    train = fmnist[0]
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=train.classes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = train.float()[:3000], train.labels[:3000]
    model.train()
    for _ in range(2):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _settings(fmnist, **kw):
    train, val, test = fmnist
    base = dict(data=test, val=take(val, 1000, torch.Generator().manual_seed(0)), train=take(train, 2000, torch.Generator().manual_seed(0)),
                limit=400, corruption_limit=64, adversarial_limit=64, shape_limit=200, background_limit=200,
                ood_limit=200, corruptions=["gaussian_noise", "contrast"], severities=[1, 3, 5],
                epsilons=[2 / 255, 8 / 255], l2_epsilons=[0.5], pgd_steps=5)
    base.update(kw)
    return BenchSettings(**base)


@pytest.fixture(scope="module")
def all_rows(fmnist, trained):
    return run_probes(trained, "r8", "all", _settings(fmnist))


def test_rows_follow_the_schema(all_rows):
    rows = all_rows
    assert list(rows.columns) == COLUMNS
    assert set(rows["probe"]) == {"clean", "calibration", "corruptions", "adversarial", "shape-bias", "background", "ood"}
    assert rows["severity"].dtype == np.int64 and rows["correct"].dtype == bool
    assert all(isinstance(json.loads(e), dict) for e in rows["extra"].head(50))
    assert (rows["confidence"].between(0, 1)).all()
    corr = rows[rows["probe"] == "corruptions"]
    assert sorted(corr.groupby(["condition", "severity"]).size().to_dict().items()) == [
        (("contrast", 1), 64), (("contrast", 3), 64), (("contrast", 5), 64),
        (("gaussian_noise", 1), 64), (("gaussian_noise", 3), 64), (("gaussian_noise", 5), 64)]
    assert set(rows.attrs["seconds"]) == set(rows["probe"])


def test_summary_headlines(all_rows):
    s = summarize(all_rows)["r8"]
    assert s["clean_acc"] > 0.6
    for key in ("ece", "mce", "nll", "brier", "adaptive_ece", "classwise_ece", "ts_ece", "ts_nll", "temperature",
                "corruption_acc", "mce_unnormalized", "fgsm_acc@2/255", "pgd_linf_acc@8/255", "pgd_l2_acc@0.5",
                "shape_bias", "shape_fraction_correct", "clutter_gap", "pgd_paper_acc@1/255", "ood_auroc", "ood_fpr95",
                "ood_aupr_in"):
        assert s[key] is not None, key
    assert s["temperature"] > 0
    assert set(s["per_class_acc"]) == {str(c) for c in range(10)}  # JSON keys
    assert s["ood_positive_class"] == "in-distribution"
    assert set(s["ood_detail"]) == {"digits", "textures", "uniform_noise", "gaussian_noise"}
    assert "mahalanobis" in s["ood_detail"]["digits"]
    # contrast at severity 5 hurts more than at severity 1
    cells = s["corruption_cells"]["contrast"]
    assert cells["5"] < cells["1"]
    assert s["mce_unnormalized"] == pytest.approx(1 - s["corruption_acc"])
    # built variants (objects on black): a clutter gap, never a BG-gap (no real backgrounds to rely on)
    assert "bg_gap" not in s
    assert s["clutter_gap"] == pytest.approx(s["bg_acc_clutter_same"] - s["bg_acc_clutter_rand"])


def test_each_corruption_cell_is_computed_on_its_own(fmnist, trained, all_rows):
    alone = run_probes(trained, "r8", ["corruptions"],
                       _settings(fmnist, corruptions=["contrast"], severities=[5]))
    full = all_rows[(all_rows["condition"] == "contrast") & (all_rows["severity"] == 5)]
    assert alone["prediction"].tolist() == full["prediction"].tolist()
    assert alone["sample_id"].tolist() == full["sample_id"].tolist()


def test_mce_normalised_by_a_baseline(all_rows):
    base = all_rows.copy()
    base["model"] = "base"
    both = pd.concat([all_rows, base], ignore_index=True)
    s = summarize(both, baseline="base")
    assert s["r8"]["corruption_mce"] == pytest.approx(1.0)
    assert set(s["r8"]["corruption_ce"]) == {"contrast", "gaussian_noise"}
    with pytest.raises(UserError, match="baseline"):
        summarize(all_rows, baseline="nope")


def test_pgd_stays_in_the_ball_and_beats_fgsm(fmnist, trained):
    test = fmnist[2]
    x = test.float()[:64]
    y = test.labels[:64]
    g = torch.Generator().manual_seed(0)
    eps = 8 / 255
    adv = pgd(trained, x, y, eps, "linf", steps=10, generator=g)
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    adv2 = pgd(trained, x, y, 1.0, "l2", steps=10, restarts=2, generator=g)
    assert float((adv2 - x).flatten(1).norm(dim=1).max()) <= 1.0 + 1e-5
    assert float(adv2.min()) >= 0 and float(adv2.max()) <= 1
    with torch.no_grad():
        acc_clean = (trained(x).argmax(1) == y).float().mean()
        acc_fgsm = (trained(fgsm(trained, x, y, eps)).argmax(1) == y).float().mean()
        acc_pgd = (trained(adv).argmax(1) == y).float().mean()
    assert acc_pgd <= acc_fgsm < acc_clean


def test_pgd_result_does_not_depend_on_chunking(fmnist, trained):
    test = fmnist[2]
    x = test.float()[:40]
    y = test.labels[:40]
    for norm, eps, restarts in (("linf", 4 / 255, 1), ("l2", 0.5, 2)):
        whole = pgd(trained, x, y, eps, norm, steps=3, restarts=restarts, generator=torch.Generator().manual_seed(1),
                    chunk=len(x))
        pieces = pgd(trained, x, y, eps, norm, steps=3, restarts=restarts, generator=torch.Generator().manual_seed(1),
                     chunk=7)
        assert torch.allclose(whole, pieces, atol=1e-6)
        assert float((whole - x).abs().max()) > 0


def test_calibration_temperature_fitted_on_val_and_plots(all_rows, tmp_path):
    from synthclone.robustness.calibration import plot_reliability, reliability

    cal = all_rows[all_rows["probe"] == "calibration"]
    extra = json.loads(cal["extra"].iloc[0])
    assert extra["fit_on"].startswith("val:")
    scaled = cal[cal["condition"] == "temperature_scaled"]
    plain = cal[cal["condition"] == "uncalibrated"]
    assert (scaled["prediction"].to_numpy() == plain["prediction"].to_numpy()).all()  # T never changes the argmax
    diag = reliability(all_rows)
    assert sum(diag["uncalibrated"]["count"]) == len(plain)
    paths = plot_reliability(all_rows, tmp_path)
    assert paths and paths[0].stat().st_size > 1000


def test_cue_conflict_stimuli(fmnist):
    from synthclone.robustness.shape_bias import build_cue_conflict
    from synthclone.robustness.stimuli import foreground_mask

    test = fmnist[2].subset(range(300))
    images, shape, texture, ids = build_cue_conflict(test, 50, torch.Generator().manual_seed(0))
    assert images.dtype == torch.uint8 and images.shape == (50, 1, 28, 28)
    assert (shape != texture).all()
    # the silhouette is the shape image's: nothing outside its mask
    shape_idx = [test.ids.index(i.split("|")[0]) for i in ids]
    mask = foreground_mask(test.float()[shape_idx])
    assert float((images.float() / 255 * (1 - mask)).max()) == 0.0


def test_label_space_mismatch_is_a_user_error(fmnist, trained):
    digits = load_dataset("digits")
    adapter = ModelAdapter(trained, digits.classes)
    with pytest.raises(UserError, match="label mapping"):
        adapter(torch.rand(2, 1, 28, 28))
    # a subset of the model's classes is fine: only those logits are kept
    sub = ModelAdapter(trained, ["Bag", "Trouser"])
    assert sub(torch.rand(3, 1, 28, 28)).shape == (3, 2)


def test_unknown_probe_lists_valid_ones(fmnist, trained):
    with pytest.raises(UserError, match="valid probes"):
        run_probes(trained, "r8", ["clean", "telepathy"], _settings(fmnist))
    assert {"clean", "calibration", "corruptions", "adversarial", "shape-bias", "background", "ood"} <= set(PROBES.names())


def test_precomputed_corruption_folder(fmnist, trained, tmp_path):
    from PIL import Image

    test = fmnist[2]
    picks = [i for i in range(40) if "/" not in test.classes[int(test.labels[i])]][:6]
    for sev in (1, 2):
        for i in picks:
            cls = test.classes[int(test.labels[i])]
            d = tmp_path / "gaussian_noise" / str(sev) / cls
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(test.images[i, 0].numpy()).save(d / f"{i}.png")
    rows = run_probes(trained, "r8", ["corruptions"], _settings(fmnist, corruption_folder=str(tmp_path)))
    assert set(zip(rows["condition"], rows["severity"])) == {("gaussian_noise", 1), ("gaussian_noise", 2)}
    assert len(rows) == 12


def test_imagenet_label_maps_from_wordnet():
    from synthclone.robustness.label_maps import imagenet_groups

    g16 = imagenet_groups("imagenet16")
    assert len(g16) == 16
    assert 281 in g16["cat"] and 285 in g16["cat"]        # tabby, Egyptian cat
    assert 404 in g16["airplane"]                          # airliner
    assert all(151 <= i <= 268 for i in g16["dog"])      # the dog breeds
    g9 = imagenet_groups("imagenet9")
    assert not set(g9["dog"]) & set(g9["carnivore"])       # the more specific category wins
    flat = [i for v in g9.values() for i in v]
    assert len(flat) == len(set(flat))


def test_context_probe_on_a_focus_style_folder(fmnist, trained, tmp_path):
    from PIL import Image

    test = fmnist[2]
    lines = ["path,class,uncommon_night,uncommon_snow"]
    for i in range(12):
        cls = test.classes[int(test.labels[i])]
        rel = f"img{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).save(tmp_path / rel)
        lines.append(f"{rel},{cls},{i % 2},{int(i % 3 == 0)}")
    (tmp_path / "annotations.csv").write_text("\n".join(lines) + "\n")
    rows = run_probes(trained, "r8", ["context"], _settings(fmnist, focus_folder=str(tmp_path)))
    assert len(rows) == 12
    assert set(rows["condition"]) == {"uncommon=0", "uncommon=1", "uncommon=2"}
    s = summarize(rows)["r8"]
    assert set(s["context_acc_by_uncommon"]) == {"0", "1", "2"}
    with pytest.raises(UserError, match="FOCUS"):
        run_probes(trained, "r8", ["context"], _settings(fmnist))


def test_autoattack_is_an_optional_extra(fmnist, trained):
    import importlib.util

    from synthclone.errors import MissingExtraError

    if importlib.util.find_spec("autoattack") is not None:
        pytest.skip("autoattack is installed here")
    with pytest.raises(MissingExtraError, match="auto-attack"):
        run_probes(trained, "r8", ["adversarial"], _settings(fmnist, attacks=["fgsm"], autoattack=True, limit=16))

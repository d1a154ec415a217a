"""Paired subsets: every variant of a probe (ImageNet-9 variants, ImageNet-C cells, generated corruption
severities, built backgrounds) is scored on the same images, matched by sample id."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from synthclone.data import load_dataset
from synthclone.data.folder import load_folder
from synthclone.errors import UserError
from synthclone.models import create_model
from synthclone.robustness import BenchSettings, run_probes
from synthclone.robustness.label_maps import IMAGENET9

IN9 = ("original", "mixed_same", "mixed_rand", "only_fg", "no_fg")
CELLS = [("gaussian_noise", 1), ("gaussian_noise", 3), ("contrast", 1), ("contrast", 5)]


def _png(path, seed, size=16):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _ids_by(rows, *keys):
    by = keys[0] if len(keys) == 1 else list(keys)
    return {k: sorted(g["sample_id"]) for k, g in rows.groupby(by)}


@pytest.fixture(scope="module")
def fmnist():
    return load_dataset("fashion-mnist", split="test").subset(range(40))


@pytest.fixture
def in9(tmp_path):
    """ImageNet-9 style: the same 5 file names per class in every variant, different pixels in each."""
    root = tmp_path / "bg_challenge"
    for vi, v in enumerate(IN9):
        for k, name in enumerate(IMAGENET9):
            for j in range(5):
                _png(root / v / "val" / f"{k:02d}_{name.replace(' ', '_')}" / f"n{k:02d}_{j}.png", 1000 * vi + 10 * k + j)
    return root


@pytest.fixture
def in9_model():
    torch.manual_seed(0)
    return create_model("resnet8", num_classes=9, in_chans=3, input_size=(16, 16), classes=list(IMAGENET9)).eval()


@pytest.fixture
def cfolder(tmp_path):
    """ImageNet-C style ``<root>/<corruption>/<severity>/<class>/<image>`` (the same names in every
    cell) and a clean ImageFolder of the same classes as the evaluation set."""
    root = tmp_path / "imagenet-c"
    for ci, (name, sev) in enumerate(CELLS):
        for k, cls in enumerate("abc"):
            for j in range(6):
                _png(root / name / str(sev) / cls / f"{cls}{j}.png", 1000 * ci + 10 * k + j)
    for k, cls in enumerate("abc"):
        for j in range(6):
            _png(tmp_path / "clean" / cls / f"{cls}{j}.png", 10 * k + j)
    return root, load_folder(tmp_path / "clean")


def _c_model():
    torch.manual_seed(0)
    return create_model("resnet8", num_classes=3, in_chans=3, input_size=(16, 16), classes=list("abc")).eval()


def test_imagenet9_variants_share_one_subset(in9, in9_model, fmnist):
    rows = run_probes(in9_model, "in9", ["background"],
                      BenchSettings(data=fmnist, imagenet9_root=str(in9), background_limit=12, seed=3))
    ids = _ids_by(rows, "condition")
    assert set(ids) == set(IN9)
    first = ids["original"]
    assert len(first) == 12 and len(set(first)) == 12  # fewer than the folder's 45
    assert all(v == first for v in ids.values())
    assert all("/" in s for s in first)  # <class>/<file>: the identity that matches across variants
    # the per-image paired difference mixed_same - mixed_rand is defined for every image
    wide = rows.pivot(index="sample_id", columns="condition", values="correct")
    assert not wide.isna().any().any() and len(wide) == 12
    again = run_probes(in9_model, "in9", ["background"],
                       BenchSettings(data=fmnist, imagenet9_root=str(in9), background_limit=12, seed=3))
    assert _ids_by(again, "condition") == ids  # seeded by the bench seed
    other = run_probes(in9_model, "in9", ["background"],
                       BenchSettings(data=fmnist, imagenet9_root=str(in9), background_limit=12, seed=4))
    assert _ids_by(other, "condition")["original"] != first


def test_imagenet9_variant_missing_a_file_is_a_one_line_error(in9, in9_model, fmnist):
    (in9 / "mixed_rand" / "val" / "08_fish" / "n08_2.png").unlink()
    with pytest.raises(UserError, match=r"ImageNet-9 variant mixed_rand lacks 08_fish/n08_2\.png") as e:
        run_probes(in9_model, "in9", ["background"],
                   BenchSettings(data=fmnist, imagenet9_root=str(in9), background_limit=12))
    assert "\n" not in str(e.value)


def test_imagenet9_extra_file_in_a_later_variant_names_the_one_lacking_it(in9, in9_model, fmnist):
    _png(in9 / "no_fg" / "val" / "00_dog" / "n00_9.png", 7)
    with pytest.raises(UserError, match=r"ImageNet-9 variant original lacks 00_dog/n00_9\.png"):
        run_probes(in9_model, "in9", ["background"], BenchSettings(data=fmnist, imagenet9_root=str(in9)))


def test_imagenet_c_cells_share_one_subset(cfolder):
    root, clean = cfolder
    rows = run_probes(_c_model(), "c", ["corruptions"],
                      BenchSettings(data=clean, corruption_folder=str(root), corruption_limit=7, seed=1))
    ids = _ids_by(rows, "condition", "severity")
    assert set(ids) == set(CELLS)
    first = ids[CELLS[0]]
    assert len(first) == 7 and len(set(first)) == 7  # fewer than the cells' 18
    assert all(v == first for v in ids.values())
    assert set(first) <= set(clean.ids)  # <class>/<file>, as the clean set names them
    uncapped = run_probes(_c_model(), "c", ["corruptions"],
                          BenchSettings(data=clean, corruption_folder=str(root), corruption_limit=None))
    assert all(v == sorted(clean.ids) for v in _ids_by(uncapped, "condition", "severity").values())


def test_imagenet_c_cell_missing_a_file_is_a_one_line_error(cfolder):
    root, clean = cfolder
    (root / "contrast" / "5" / "b" / "b4.png").unlink()
    with pytest.raises(UserError, match=r"ImageNet-C cell contrast/5 lacks b/b4\.png") as e:
        run_probes(_c_model(), "c", ["corruptions"],
                   BenchSettings(data=clean, corruption_folder=str(root), corruption_limit=7))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("limit", [24, None])
def test_generated_corruption_severities_share_one_subset(fmnist, limit):
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=fmnist.classes).eval()
    rows = run_probes(model, "r8", ["corruptions"],
                      BenchSettings(data=fmnist, corruption_limit=limit, corruptions=["gaussian_noise", "contrast"],
                                    severities=[1, 3, 5], batch_size=16))
    ids = _ids_by(rows, "condition", "severity")
    assert len(ids) == 6
    first = next(iter(ids.values()))
    assert len(first) == (limit or len(fmnist))
    assert all(v == first for v in ids.values())


def test_built_backgrounds_share_one_subset(fmnist):
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=fmnist.classes).eval()
    rows = run_probes(model, "r8", ["background"], BenchSettings(data=fmnist, background_limit=16))
    ids = _ids_by(rows, "condition")
    first = ids["original"]
    assert len(first) == 16
    assert all(v == first for v in ids.values())

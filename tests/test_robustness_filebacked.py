"""Every probe on a file-backed RGB ImageFolder gives the rows it gives on the same folder held in memory.

The folder is small (3 classes x 20 PNGs of 32x32), so ``load_folder`` caches it by default; with
``cache_bytes=0`` it stays file-backed, and then any probe that touched ``.images`` would raise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from synthclone.data.folder import load_folder
from synthclone.errors import UserError
from synthclone.models import create_model
from synthclone.robustness import BenchSettings, run_probes
from synthclone.robustness.ood import ood_sets

CLASSES = ["checks", "hstripes", "vstripes"]
COLOURS = [(230, 60, 40), (40, 200, 70), (60, 90, 240)]


def _pattern(k: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """An object of class ``k`` (its colour and pattern) on a black background, placed and shaded at random."""
    yy, xx = np.mgrid[:size, :size]
    period = int(rng.integers(3, 6))
    stripes = [(yy // period + xx // period) % 2, (yy // period) % 2, (xx // period) % 2][k]
    shade = 0.55 + 0.45 * stripes + rng.normal(0, 0.05, (size, size))
    img = np.clip(shade[..., None] * np.array(COLOURS[k]), 0, 255)
    y0, x0 = rng.integers(2, 8, 2)
    y1, x1 = rng.integers(size - 8, size - 2, 2)
    mask = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
    return (img * mask[..., None]).astype(np.uint8)


def _write_folder(root, per_class: int = 20) -> None:
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(_pattern(k, rng)).save(root / name / f"{i:02d}.png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgb")
    _write_folder(root)
    ood = tmp_path_factory.mktemp("ood")  # grayscale, another size: the probe conforms it to 3 x 32 x 32
    rng = np.random.default_rng(1)
    for k in range(2):
        (ood / f"c{k}").mkdir()
        for j in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 24), dtype=np.uint8)).save(ood / f"c{k}" / f"{j}.png")
    return root, ood


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("resnet8", num_classes=3, in_chans=3, input_size=(32, 32), classes=CLASSES).eval()


def _settings(data, ood, **kw) -> BenchSettings:
    # batch 32 is cut into forward passes of 21 images at 3 x 32 x 32, so batches and passes disagree
    base = dict(data=data, val=data, train=data, batch_size=32, corruptions=["gaussian_noise", "contrast"],
                severities=[1, 3], epsilons=[4 / 255], l2_epsilons=[0.5], pgd_steps=2,
                ood_folders=[str(ood)])
    base.update(kw)
    return BenchSettings(**base)


CAPPED = dict(corruption_limit=24, adversarial_limit=16, shape_limit=24, background_limit=24, ood_limit=24)
UNCAPPED = dict(corruption_limit=None, adversarial_limit=None, shape_limit=None, background_limit=None, ood_limit=None)


@pytest.mark.parametrize("limits", [CAPPED, UNCAPPED], ids=["capped", "uncapped"])
def test_file_backed_rows_equal_in_memory_rows(folder, model, limits):
    root, ood = folder
    on_disk = load_folder(root, cache_bytes=0)
    in_memory = load_folder(root)
    assert not on_disk.in_memory and in_memory.in_memory
    with pytest.raises(RuntimeError, match="file-backed"):
        on_disk.images  # noqa: B018 - the guard the run below relies on
    streamed = run_probes(model, "r8", "all", _settings(on_disk, ood, **limits))
    held = run_probes(model, "r8", "all", _settings(in_memory, ood, **limits))
    assert set(streamed["probe"]) == {"clean", "calibration", "corruptions", "adversarial", "shape-bias", "background", "ood"}
    pd.testing.assert_frame_equal(streamed, held, check_exact=True)
    assert len(streamed[streamed["probe"] == "clean"]) == 60
    expected_ood = 24 if limits["ood_limit"] else 60
    assert (streamed[streamed["condition"] == "digits:msp"].shape[0], streamed[streamed["condition"] == "folder:"
            + ood.name + ":msp"].shape[0]) == (expected_ood, 8)


def test_ood_sets_take_the_evaluation_data_shape(folder):
    root, ood = folder
    data = load_folder(root, cache_bytes=0)
    sets = ood_sets(data, _settings(data, ood, ood_limit=5))
    assert set(sets) == {"digits", "textures", "uniform_noise", "gaussian_noise", f"folder:{ood.name}"}
    for name, s in sets.items():
        images = s.images if hasattr(s, "images") else torch.cat([x for x, _ in s])
        assert tuple(images.shape) == (len(s), 3, 32, 32), name
        assert images.dtype == torch.uint8


def test_an_unreadable_file_is_a_user_error_naming_it(tmp_path, model):
    root = tmp_path / "rgb"
    _write_folder(root)
    (root / "hstripes" / "zz_broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="zz_broken.png"):
        load_folder(root)  # cached: decoding fails at load
    on_disk = load_folder(root, cache_bytes=0)
    with pytest.raises(UserError, match="zz_broken.png"):
        run_probes(model, "r8", ["clean"], BenchSettings(data=on_disk))
    # told to skip unreadable files, the probes score the readable ones and say which samples those were
    skipping = load_folder(root, cache_bytes=0, skip_unreadable=True)
    rows = run_probes(model, "r8", ["clean", "calibration"], BenchSettings(data=skipping, val=skipping))
    clean = rows[rows["probe"] == "clean"]
    assert len(clean) == 60 and "hstripes/zz_broken.png" not in set(clean["sample_id"])
    assert clean["sample_id"].tolist() == [i for i in skipping.ids if i != "hstripes/zz_broken.png"]

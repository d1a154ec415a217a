"""The 19 corruptions: shape, range, severity monotone in effect, determinism through the generator."""

from __future__ import annotations

import pytest
import torch

from synthclone.data import load_dataset
from synthclone.robustness.corruption_ops import ALL, CORRUPTIONS, EXTRA, IMAGENET_C, corrupt, corruption_names


@pytest.fixture(scope="module")
def images():
    x = load_dataset("fashion-mnist", split="test").float()[:96]
    gray = x[:32]
    # a natural-looking RGB image: grey plus a moderately saturated tint from three different products
    rgb = 0.7 * gray + 0.3 * torch.cat([x[:32], x[32:64], x[64:96]], 1)
    return {"gray": gray, "rgb": rgb}


def test_the_lists_are_imagenet_c_and_the_extras():
    assert len(IMAGENET_C) == 15 and len(EXTRA) == 4 and len(set(ALL)) == 19
    assert sorted(CORRUPTIONS.names()) == sorted(ALL)  # the registry ('synthclone list corruptions') holds these and no helper
    assert corruption_names("extra") == ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
    with pytest.raises(Exception, match="unknown corruption"):
        corruption_names(["gaussian_noise", "rain"])


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("kind", ["gray", "rgb"])
def test_range_shape_and_monotone_severity(images, name, kind):
    x = images[kind]
    diffs = []
    for s in range(1, 6):
        y = corrupt(x, name, s, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and y.dtype == torch.float32
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        diffs.append(float((y - x).abs().mean()))
    assert diffs[0] > 0, f"{name} severity 1 leaves the image unchanged"
    if name == "pixelate":
        # CIFAR-10-C's published row (0.95, 0.9, 0.85, 0.75, 0.65) keeps 26, 25, 23, 21, 18 of 28 pixels:
        # the resolution falls strictly, but nearest upsampling at those non-integer ratios aliases, so
        # mean |x' - x| is not monotone between neighbouring severities; only the ends are ordered
        assert diffs[-1] > diffs[0], f"pixelate ({kind}): severity 5 no stronger than 1: {diffs}"
        return
    assert all(b > a for a, b in zip(diffs, diffs[1:])), f"{name} ({kind}) not monotone: {diffs}"


def test_pixelate_uses_the_published_rows():
    from synthclone.robustness.corruption_ops import pixelate

    for size, row in ((28, (0.95, 0.9, 0.85, 0.75, 0.65)), (224, (0.6, 0.5, 0.4, 0.3, 0.25))):
        x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
        for severity, c in enumerate(row, 1):
            kept = max(1, int(size * c))
            y = pixelate(x, severity, torch.Generator())
            # exactly `kept` distinct blocks per row: the image was reduced to kept x kept pixels
            assert len(torch.unique(y[0, 0, size // 2])) <= kept
            assert len(torch.unique(y[0, 0, size // 2])) >= kept - 1


@pytest.mark.parametrize("name", ALL)
def test_same_generator_same_output(images, name):
    x = images["rgb"][:8]
    a = corrupt(x, name, 3, torch.Generator().manual_seed(7))
    b = corrupt(x, name, 3, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_different_seeds_differ_for_random_corruptions(images):
    x = images["gray"][:8]
    for name in ["gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost",
                 "fog", "elastic_transform", "spatter", "speckle_noise"]:
        a = corrupt(x, name, 3, torch.Generator().manual_seed(1))
        b = corrupt(x, name, 3, torch.Generator().manual_seed(2))
        assert not torch.equal(a, b), name


def test_large_images_use_the_imagenet_table():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 112, 112, generator=g)
    for name in ALL:
        y = corrupt(x, name, 5, torch.Generator().manual_seed(0))
        assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    small = corrupt(torch.full((1, 1, 28, 28), 0.5), "gaussian_noise", 5, torch.Generator().manual_seed(0))
    large = corrupt(torch.full((1, 1, 224, 224), 0.5), "gaussian_noise", 5, torch.Generator().manual_seed(0))
    # CIFAR-10-C sigma 0.10 for small images vs ImageNet-C sigma 0.38
    assert small.std().item() == pytest.approx(0.10, rel=0.15)
    assert large.std().item() == pytest.approx(0.38 * 0.84, rel=0.2)  # clipping at 0 and 1 shrinks it


def test_blur_scales_with_resolution():
    # the same relative blur on a 2x larger image: an edge spreads over twice as many pixels
    def spread(size):
        x = torch.zeros(1, 1, size, size)
        x[..., size // 2:] = 1.0
        y = corrupt(x, "gaussian_blur", 5, torch.Generator().manual_seed(0))
        row = y[0, 0, size // 2]
        return int(((row > 0.02) & (row < 0.98)).sum())

    assert spread(56) >= 2 * spread(28) - 1


def test_corruption_cache_gives_the_same_images_as_a_fresh_run():
    from synthclone.robustness import corruptions as C
    from synthclone.robustness.core import BenchSettings

    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    ids = [f"x{i}" for i in range(8)]
    settings = BenchSettings(seed=3)
    C._CACHE.clear()
    first = C.cached_corrupt_set(images, ids, "gaussian_noise", 3, settings)
    assert len(C._CACHE) == 1
    again = C.cached_corrupt_set(images, ids, "gaussian_noise", 3, settings)
    assert again is first  # served from the cache
    fresh = C.corrupt_set(images, "gaussian_noise", 3, settings.generator("corruption", "gaussian_noise", 3))
    assert torch.equal(first, fresh)
    other = C.cached_corrupt_set(images, ids, "gaussian_noise", 3, BenchSettings(seed=4))
    assert not torch.equal(first, other)  # the seed is part of the key


def test_corruption_cache_keeps_what_a_scan_will_ask_for_again(monkeypatch):
    from synthclone.robustness import corruptions as C
    from synthclone.robustness.core import BenchSettings

    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    ids = [f"x{i}" for i in range(8)]
    cell = 8 * 28 * 28 * 4
    monkeypatch.setattr(C, "_CACHE_LIMIT", int(2.5 * cell))
    C._CACHE.clear()
    settings = BenchSettings(seed=0)
    scan = [("gaussian_noise", 1), ("gaussian_noise", 2), ("gaussian_noise", 3)]
    first = [C.cached_corrupt_set(images, ids, n, s, settings) for n, s in scan]
    again = [C.cached_corrupt_set(images, ids, n, s, settings) for n, s in scan]
    # the cells that fitted are still there for the second model; the one that did not is recomputed
    assert [a is f for a, f in zip(again, first)] == [True, True, False]
    assert torch.equal(again[2], first[2])
    # another image set's cell evicts this set's least recently used cell to get in
    C.cached_corrupt_set(images, [f"y{i}" for i in range(8)], "contrast", 1, settings)
    assert [(k[1], k[2]) for k in C._CACHE] == [("gaussian_noise", 2), ("contrast", 1)]
    C._CACHE.clear()


def test_spatter_drop_shading_steps_are_opencvs():
    # the water drops above 64 px redo the reference's OpenCV steps; each step against OpenCV (and the
    # distance against scipy's exact transform) on the same cut liquid layer
    cv2 = pytest.importorskip("cv2")
    import numpy as np
    from scipy.ndimage import distance_transform_edt

    from synthclone.robustness.corruption_ops import _blur_replicated, _drop_edges, _edge_distance, _equalize

    noise = torch.randn(2, 1, 96, 128, generator=torch.Generator().manual_seed(0)) * 0.3 + 0.65
    layer = _blur_replicated(noise, 3.0)
    u = (layer * (layer >= 0.68)).mul(255).floor()
    edges = _drop_edges(u)
    dist = _edge_distance(edges, 20)
    levels = torch.randint(3, 19, (2, 1, 96, 128), generator=torch.Generator().manual_seed(1)).float()
    equalized = _equalize(levels, 21)
    for i in range(2):
        ref_edges = cv2.Canny(u[i, 0].numpy().astype(np.uint8), 50, 150) > 0
        assert ref_edges.sum() > 100
        assert (edges[i, 0].numpy() != ref_edges).sum() <= 0.002 * ref_edges.sum()
        chamfer = np.minimum(cv2.distanceTransform((~edges[i, 0].numpy()).astype(np.uint8), cv2.DIST_L2, 5), 20)
        assert np.allclose(dist[i, 0].numpy(), chamfer, atol=1e-5)  # the reference's 5x5 mask
        exact = np.minimum(distance_transform_edt(~edges[i, 0].numpy()), 20)
        assert 0 < np.abs(dist[i, 0].numpy() - exact).max() < 0.05 * 20  # about 2% from the Euclidean
        ref_eq = cv2.equalizeHist(levels[i, 0].numpy().astype(np.uint8))
        assert np.array_equal(equalized[i, 0].numpy(), ref_eq.astype(np.float32))

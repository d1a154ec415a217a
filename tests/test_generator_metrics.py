"""Issue 18 item 2 (first part): precision / recall / density / coverage behave as defined on hand-built
point clouds, and agree with the authors' reference implementation (the ``prdc`` package) on the same
features where it is installed."""

import math

import pytest
import torch

from synthclone.generators.metrics import diversity, frechet_distance, knn_radii, prdc


def _cloud(n, d=8, seed=0, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_identical_sets_are_perfect():
    x = _cloud(300)
    m = prdc(x, x.clone(), k=5)
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0
    # each point lies in its own ball and in the balls of the reals it is one of the k nearest of
    # (strictly closer than their k-th neighbour): on average (k - 1 + 1) / k = 1 when ties are absent
    assert m["density"] == pytest.approx(1.0, abs=1e-9)


def test_disjoint_sets_score_zero():
    m = prdc(_cloud(200), _cloud(200, seed=1, shift=100.0), k=5)
    assert m == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_a_subset_has_full_precision_and_partial_recall_and_coverage():
    real = _cloud(400)
    fake = real[:100]  # a generator that reproduces a quarter of the real distribution
    m = prdc(real, fake, k=5)
    assert m["precision"] == 1.0
    # a real image is covered when its own ball holds a generated one: the quarter itself, and neighbours
    assert 0.25 <= m["coverage"] < 0.9 and m["recall"] < 1.0


def test_mode_collapse_keeps_precision_and_loses_recall():
    real = _cloud(500)
    collapsed = _cloud(500, seed=3) * 0.05  # all images near the real mean: plausible, not diverse
    m = prdc(real, collapsed, k=5)
    assert m["precision"] > 0.9 and m["recall"] < 0.05 and m["coverage"] < 0.2
    assert diversity(collapsed) < 0.1 * diversity(real)


def test_radii_and_diversity_by_hand():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    assert knn_radii(x, 1).tolist() == [1.0, 1.0, 2.0]
    assert diversity(x) == pytest.approx((1 + 3 + 2) * 2 / 6)
    assert math.isnan(diversity(x[:1]))


def test_frechet_distance_of_shifted_gaussians():
    a, b = _cloud(4000, d=4), _cloud(4000, d=4, seed=1, shift=2.0)
    assert frechet_distance(a, b) == pytest.approx(4 * 4.0, rel=0.05)  # |mu| difference squared, same covariance


def test_agrees_with_the_reference_prdc_package():
    ref = pytest.importorskip("prdc")
    real, fake = _cloud(300), _cloud(250, seed=2, shift=0.3) * 1.2
    ours = prdc(real, fake, k=5)
    theirs = ref.compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-9), key


def test_frechet_distance_agrees_with_torchmetrics():
    fid = pytest.importorskip("torchmetrics.image.fid")
    compute = getattr(fid, "_compute_fid", None)
    if compute is None:
        pytest.skip("torchmetrics has no _compute_fid in this version")
    a, b = _cloud(2000, d=6), _cloud(1500, d=6, seed=4, shift=0.5) * 1.3
    mu1, mu2 = a.double().mean(0), b.double().mean(0)
    s1, s2 = torch.cov(a.double().T), torch.cov(b.double().T)
    assert frechet_distance(a, b) == pytest.approx(float(compute(mu1, s1, mu2, s2)), rel=1e-6)

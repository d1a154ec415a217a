"""Every corruption at 224 px against the released ``imagecorruptions`` package, on a small sample.

The judge is benchmarks/bench_corruptions.py's (same functions, same shims for the reference on
current numpy / scikit-image / setuptools) and the images of its --quick run (8 colourised
Fashion-MNIST test images at 224 px), every severity: deterministic corruptions must reach PSNR >=
30 dB against the reference on every image; noise corruptions must match the mean of ``x' - x``
within 0.005 and its standard deviation within 5% (over 1.2 million values, so the sample is no
excuse); for the other random ones the ratios synthclone / reference of the mean and of the spread
of the per-image mean |x' - x| must not be shown outside 1 +- 10% by their 99% jackknife intervals
over images (8 images x 2 seeds; glass_blur, whose reference is a Python loop over pixels, 3 images
x 1 seed). That is the tolerance this sample allows; the benchmark's 10% on point estimates needs
its larger sample. Corruptions that do not agree yet are strict xfails carrying the measured
ratios, so the test tells when they are fixed. Skipped where the reference package is not installed.
"""

import numpy as np
import pytest
import torch

from conftest import load_benchmark
from synthclone.robustness.corruption_ops import corruption_names

bench = load_benchmark("bench_corruptions")
with bench.pkg_resources_stub():
    pytest.importorskip("imagecorruptions")

SEVERITIES = (1, 2, 3, 4, 5)
SEEDS = (0, 1)
LEVEL = 0.99
IMAGES = 8
SLOW_IMAGES = 3  # bench.SLOW (glass_blur): ~0.7 s per image and severity in the reference

# corruption -> the gap measured with this test's sample (an xfail, strict: a fix shows up as an XPASS to
# remove the entry); none at present: glass_blur (0.48-0.70x) and saturate (severity 5) were fixed 2026-12-02
KNOWN_GAPS: dict = {}


def _case(name):
    if name in KNOWN_GAPS:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=KNOWN_GAPS[name]))
    return name


@pytest.fixture(scope="module")
def reference():
    ref, _ = bench.load_reference()
    return ref


@pytest.fixture(scope="module")
def images():
    return bench.test_images(IMAGES, 224)


def _kind(name):
    return "deterministic" if name in bench.DETERMINISTIC else "noise" if name in bench.NOISE else "random"


def test_reference_runs_every_corruption_with_the_shims(reference):
    assert bench.reference_status(reference, corruption_names("all")) == {n: None for n in corruption_names("all")}


@pytest.mark.parametrize("name", [_case(n) for n in corruption_names("all")])
def test_perturbation_agrees_with_the_reference(name, reference, images):
    kind = _kind(name)
    n = SLOW_IMAGES if name in bench.SLOW else IMAGES
    seeds = SEEDS[:1] if name in bench.SLOW else SEEDS
    off = []
    for severity in (1, 3, 5) if name in bench.SLOW else SEVERITIES:  # the benchmark runs glass_blur at all five
        row = bench.agreement_cell(reference, name, images[:n], severity, seeds, level=LEVEL)
        if kind == "deterministic" and row["agree"] != "yes":
            off.append(f"severity {severity}: PSNR {row['worst image PSNR dB']:.1f} dB on the worst image")
        elif kind == "noise" and row["agree"] != "yes":
            off.append(f"severity {severity}: mean / std {row['synthclone']} vs {row['reference']}")
        elif kind == "random" and row["excluded"]:
            (m_lo, m_hi), (s_lo, s_hi) = row["ratio of means CI"], row["ratio of sds CI"]
            off.append(f"severity {severity}: ratio of means {row['ratio of means']:.2f} ({m_lo:.2f}-{m_hi:.2f}), "
                       f"of sds {row['ratio of sds']:.2f} ({s_lo:.2f}-{s_hi:.2f})")
    assert not off, f"{name} differs from the reference at 224 px: " + "; ".join(off)


def test_the_judge_flags_a_doubled_perturbation(reference, images):
    """Each kind's comparison passes on a real perturbation and fails on one scaled by 2."""
    # random: synthclone's per-image |x' - x| (elastic_transform agrees), then twice it
    ours, theirs = bench.perturbation_samples(reference, "elastic_transform", images, 3, SEEDS)
    assert not bench.ratio_agreement(ours, theirs, level=LEVEL)["excluded"]
    doubled = bench.ratio_agreement(2 * ours, theirs, level=LEVEL)
    assert doubled["excluded"] and doubled["agree"] == "NO"

    # deterministic and noise: the reference against a second run of itself, then with that run's
    # perturbation doubled
    hwc = images[:4].permute(0, 2, 3, 1).numpy()
    base = hwc.astype(np.float64)
    for name, agree in (("contrast", lambda o, t: bench.deterministic_agreement(o, t)["agree"]),
                        ("gaussian_noise", lambda o, t: bench.noise_agreement(o, t, base)["agree"])):
        np.random.seed(0)
        theirs = np.stack([bench.run_reference(reference, name, img, 3) for img in hwc])
        np.random.seed(1)
        again = np.stack([bench.run_reference(reference, name, img, 3) for img in hwc])
        assert agree(again, theirs) == "yes", name
        assert agree(np.clip(base + 2 * (again - base), 0, 255), theirs) == "NO", name


def test_accuracy_judge_flags_a_systematic_difference():
    """The accuracy cells' rule: equal predictions agree; 6 of 200 images flipped one way do not
    (3 points, paired bound 2.4), 6 flipped each way do (no net difference)."""
    right = torch.zeros(200, dtype=torch.bool)
    right[:150] = True
    assert bench.paired_accuracy(right, right)["agree"] == "yes"
    worse = right.clone()
    worse[:6] = False
    cell = bench.paired_accuracy(worse, right)
    assert cell["diff (points)"] == pytest.approx(-3.0) and cell["agree"] == "NO"
    swapped = worse.clone()
    swapped[150:156] = True
    assert bench.paired_accuracy(swapped, right)["agree"] == "yes"


def test_speed_floors_name_real_corruptions_and_measure_every_kind():
    """The throughput table's floors: a write of a fresh batch, and a draw per value for the named noises."""
    floors = bench.speed_floors(torch.rand(8, 3, 64, 64))
    assert set(floors) == {"write", *bench.DRAW_PER_VALUE.values()} and all(v > 0 for v in floors.values())
    assert set(bench.DRAW_PER_VALUE) <= set(corruption_names("all"))

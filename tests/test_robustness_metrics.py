"""Calibration / OOD metrics against independent implementations, and the shape-bias formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthclone.robustness import metrics as M
from synthclone.robustness.shape_bias import shape_bias_metrics


def _random_logits(seed, n=3000, k=10, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = torch.tensor(rng.normal(size=(n, k)) * scale, dtype=torch.float32)
    labels = torch.tensor(rng.integers(0, k, n))
    return logits, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bins", [15, 7])
def test_ece_and_mce_match_torchmetrics(seed, bins):
    from torchmetrics.classification import MulticlassCalibrationError

    logits, labels = _random_logits(seed)
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    ref_l1 = MulticlassCalibrationError(num_classes=10, n_bins=bins, norm="l1")(probs, labels).item()
    ref_max = MulticlassCalibrationError(num_classes=10, n_bins=bins, norm="max")(probs, labels).item()
    assert M.ece(conf, pred == labels, bins) == pytest.approx(ref_l1, abs=1e-6)
    assert M.mce(conf, pred == labels, bins) == pytest.approx(ref_max, abs=1e-6)


def test_nll_and_brier_match_sklearn_and_torch():
    from sklearn.metrics import log_loss

    logits, labels = _random_logits(3)
    probs = logits.double().softmax(1)
    p_true = probs[torch.arange(len(labels)), labels]
    assert M.nll(p_true) == pytest.approx(log_loss(labels.numpy(), probs.numpy(), labels=list(range(10))), abs=1e-6)
    assert M.nll(p_true) == pytest.approx(torch.nn.functional.cross_entropy(logits.double(), labels).item(), abs=1e-6)
    onehot = np.eye(10)[labels.numpy()]
    assert M.brier(probs, labels) == pytest.approx(((probs.numpy() - onehot) ** 2).sum(1).mean(), abs=1e-9)


def test_adaptive_and_classwise_ece_by_definition():
    # two equal-mass bins: {0.2, 0.4} with one hit, {0.6, 0.8} with two hits
    conf = np.array([0.8, 0.2, 0.6, 0.4])
    correct = np.array([1, 0, 1, 1])
    assert M.adaptive_ece(conf, correct, 2) == pytest.approx(abs(0.5 - 0.3) * 0.5 + abs(1.0 - 0.7) * 0.5)
    logits, labels = _random_logits(4, n=500, k=4)
    probs = logits.softmax(1).numpy()
    expected = []
    for c in range(4):
        pc, hit = probs[:, c], (labels.numpy() == c)
        idx = np.clip(np.ceil(pc * 15).astype(int) - 1, 0, 14)
        expected.append(sum(abs(hit[idx == b].sum() - pc[idx == b].sum()) for b in range(15)) / len(pc))
    assert M.classwise_ece(probs, labels, 15) == pytest.approx(np.mean(expected), abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_detection_metrics_match_sklearn(seed):
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    rng = np.random.default_rng(seed)
    s_in = rng.normal(1.0, 1.0, 800).round(1)  # rounding makes ties on purpose
    s_out = rng.normal(0.0, 1.0, 600).round(1)
    scores = np.r_[s_in, s_out]
    y = np.r_[np.ones(800), np.zeros(600)]
    got = M.detection_metrics(s_in, s_out)
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
    assert got["positive"] == "in-distribution"
    assert got["auroc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-6)
    assert got["aupr_in"] == pytest.approx(average_precision_score(y, scores), abs=1e-6)
    assert got["aupr_out"] == pytest.approx(average_precision_score(1 - y, -scores), abs=1e-6)
    assert got["fpr95"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-6)


def test_auroc_against_torchmetrics():
    from torchmetrics.functional.classification import binary_auroc

    rng = np.random.default_rng(5)
    s = rng.normal(size=2000)
    y = rng.integers(0, 2, 2000)
    assert M.auroc(s, y) == pytest.approx(binary_auroc(torch.tensor(s), torch.tensor(y)).item(), abs=1e-6)


def test_temperature_scaling_recovers_the_true_temperature():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 10, generator=g) * 2
    labels = torch.multinomial(z.softmax(1), 1, generator=g).flatten()  # labels drawn from softmax(z)
    t = M.fit_temperature(z * 3.0, labels)  # logits 3x too sharp -> T near 3
    assert 2.6 < t < 3.4


def test_shape_bias_formula_on_hand_built_cases():
    # shape, texture, prediction
    shape = [0, 1, 2, 3, 4, 5]
    texture = [1, 2, 3, 4, 5, 5]  # the last stimulus agrees: excluded
    pred = [0, 2, 2, 9, 5, 5]     # shape hit, texture hit, shape hit, neither, texture hit, (excluded)
    m = shape_bias_metrics(pred, shape, texture)
    assert m["stimuli"] == 5
    assert m["shape_bias"] == pytest.approx(2 / 4)
    assert m["shape_fraction_correct"] == pytest.approx(2 / 5)
    assert m["texture_fraction_correct"] == pytest.approx(2 / 5)
    only_shape = shape_bias_metrics([0, 1], [0, 1], [1, 0])
    assert only_shape["shape_bias"] == 1.0
    neither = shape_bias_metrics([7, 7], [0, 1], [1, 0])
    assert np.isnan(neither["shape_bias"]) and neither["shape_fraction_correct"] == 0.0

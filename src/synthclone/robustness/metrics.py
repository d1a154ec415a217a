"""Calibration and OOD-detection metrics, written out so every number is checkable.

Conventions:

* Calibration bins are equal-width over (0, 1], upper edge inclusive (Guo et al. 2017): bin ``b``
  holds confidences in ((b-1)/B, b/B]; the first bin also takes exact zeros.
* ECE is the L1 gap weighted by bin mass: ``sum_b |acc_b - conf_b| * n_b / N``; MCE the largest gap
  over non-empty bins. Adaptive ECE uses equal-mass bins (confidence-sorted, split as evenly as
  possible); class-wise ECE averages over classes the ECE of each one-vs-rest probability.
* OOD detection: the **positive class is in-distribution** and a higher score means "more
  in-distribution" (Hendrycks & Gimpel 2017). AUPR-in scores in-distribution as positive; AUPR-out
  flips both labels and scores. FPR@95%TPR is the share of OOD samples accepted at the highest
  threshold that keeps 95% of in-distribution samples.
* Temperature scaling fits one scalar ``T > 0`` on held-out logits by minimising NLL over ``log T``.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

POSITIVE_CLASS = "in-distribution"


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    return np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def calibration_bins(confidence, correct, n_bins: int = 15) -> Dict[str, np.ndarray]:
    """Per-bin counts, accuracy and mean confidence (equal-width, upper-inclusive bins).

    Args:
        confidence: (N,) floats in [0, 1] (max softmax probability).
        correct: (N,) bools.
    Returns:
        dict of (n_bins,) arrays ``count``, ``accuracy``, ``confidence`` (NaN for empty bins) and
        the (n_bins + 1,) ``edges``.
    """
    conf = _np(confidence).astype(np.float64)
    corr = _np(correct).astype(np.float64)
    idx = _bin_index(conf, n_bins)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(idx, weights=corr, minlength=n_bins) / count
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
    return {"count": count, "accuracy": acc, "confidence": mean_conf, "edges": np.linspace(0, 1, n_bins + 1)}


def ece(confidence, correct, n_bins: int = 15) -> float:
    """Expected calibration error (L1, equal-width bins), in [0, 1]."""
    b = calibration_bins(confidence, correct, n_bins)
    n = b["count"].sum()
    if n == 0:
        return float("nan")
    m = b["count"] > 0
    return float(np.sum(np.abs(b["accuracy"][m] - b["confidence"][m]) * b["count"][m]) / n)


def mce(confidence, correct, n_bins: int = 15) -> float:
    """Maximum calibration error: the largest |accuracy - confidence| over non-empty bins."""
    b = calibration_bins(confidence, correct, n_bins)
    m = b["count"] > 0
    return float(np.max(np.abs(b["accuracy"][m] - b["confidence"][m]))) if m.any() else float("nan")


def adaptive_ece(confidence, correct, n_bins: int = 15) -> float:
    """ECE over equal-mass bins (Nguyen & O'Connor 2015; "adaptive ECE" of Mukhoti et al. 2020)."""
    conf = _np(confidence).astype(np.float64)
    corr = _np(correct).astype(np.float64)
    n = len(conf)
    if n == 0:
        return float("nan")
    order = np.argsort(conf, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(n_bins, n)):
        total += abs(corr[chunk].mean() - conf[chunk].mean()) * len(chunk)
    return float(total / n)


def classwise_ece(probs, labels, n_bins: int = 15) -> float:
    """Mean over classes of the ECE of p_k against the indicator [label == k] (Kull et al. 2019).

    Args:
        probs: (N, K) probabilities; labels: (N,) ints in [0, K).
    """
    p = _np(probs).astype(np.float64)
    y = _np(labels).astype(np.int64)
    k = p.shape[1]
    out = []
    for c in range(k):
        pc = p[:, c]
        hit = (y == c).astype(np.float64)
        idx = _bin_index(pc, n_bins)
        gap = np.abs(np.bincount(idx, weights=hit, minlength=n_bins) - np.bincount(idx, weights=pc, minlength=n_bins))
        out.append(gap.sum() / max(len(pc), 1))
    return float(np.mean(out))


def nll(prob_true, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood from the probability given to the true class, (N,) in [0, 1]."""
    p = np.clip(_np(prob_true).astype(np.float64), eps, 1.0)
    return float(-np.log(p).mean())


def brier_per_sample(probs, labels) -> np.ndarray:
    """Multi-class Brier score of each sample: sum_k (p_k - [y == k])^2, in [0, 2]."""
    p = _np(probs).astype(np.float64)
    y = _np(labels).astype(np.int64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return ((p - onehot) ** 2).sum(1)


def brier(probs, labels) -> float:
    """Mean multi-class Brier score, in [0, 2]."""
    return float(brier_per_sample(probs, labels).mean())


# ------------------------------------------------------------------------------ detection


def _binary(scores_pos, scores_neg) -> Tuple[np.ndarray, np.ndarray]:
    s = np.concatenate([_np(scores_pos), _np(scores_neg)]).astype(np.float64)
    y = np.concatenate([np.ones(len(scores_pos)), np.zeros(len(scores_neg))])
    return s, y


def roc_points(scores, is_positive) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FPR, TPR and thresholds at every distinct score, thresholds descending (no point dropped)."""
    s = _np(scores).astype(np.float64)
    y = _np(is_positive).astype(np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each run of equal scores
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    return fps / max(fps[-1], 1), tps / max(tps[-1], 1), s[last]


def auroc(scores, is_positive) -> float:
    """Area under the ROC curve (ties count one half), in [0, 1]."""
    from scipy.stats import rankdata

    s = _np(scores).astype(np.float64)
    y = _np(is_positive).astype(bool)
    n_pos, n_neg = y.sum(), (~y).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores, is_positive) -> float:
    """Area under the precision-recall curve as a step sum: sum_n (R_n - R_{n-1}) P_n."""
    s = _np(scores).astype(np.float64)
    y = _np(is_positive).astype(np.float64)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_tpr(scores, is_positive, tpr: float = 0.95) -> float:
    """False-positive rate at the first threshold (descending) whose TPR reaches ``tpr``."""
    fpr, tprs, _ = roc_points(scores, is_positive)
    hit = np.nonzero(tprs >= tpr - 1e-12)[0]
    return float(fpr[hit[0]]) if len(hit) else float("nan")


def detection_metrics(score_in, score_out) -> Dict[str, float]:
    """AUROC, AUPR-in, AUPR-out and FPR@95%TPR of in- vs out-of-distribution scores.

    Higher scores must mean "more in-distribution"; in-distribution is the positive class.
    """
    s, y = _binary(score_in, score_out)
    return {
        "auroc": auroc(s, y),
        "aupr_in": average_precision(s, y),
        "aupr_out": average_precision(-s, 1 - y),
        "fpr95": fpr_at_tpr(s, y, 0.95),
        "positive": POSITIVE_CLASS,
    }


# ---------------------------------------------------------------------- temperature scaling


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature T > 0 minimising NLL of ``softmax(logits / T)``, fitted over log T with LBFGS.

    Args:
        logits: (N, K) float held-out logits (validation split, never the test set).
        labels: (N,) int64.
    """
    logits = logits.detach().double()
    labels = labels.long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.exp().item())
    if not np.isfinite(t):
        return 1.0
    return t

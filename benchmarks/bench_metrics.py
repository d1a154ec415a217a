"""Metric agreement: synthclone's ECE / MCE / NLL / AUROC / AUPR / FPR95 vs torchmetrics and scikit-learn.

    python benchmarks/bench_metrics.py            # 5 seeds x sizes 10..20,000 x 2/10/100 classes
    python benchmarks/bench_metrics.py --quick    # 2 seeds, small sizes

The same predictions go to synthclone.robustness.metrics, torchmetrics (float64 inputs) and
scikit-learn; the table gives the largest absolute difference over all cases (random seeds, sizes,
class counts, and tied variants: logits/scores rounded so many values coincide). Target: <= 1e-6.
torchmetrics computes in float32 inside (its calibration update casts to float32, its curves return
float32): its public ECE/MCE function drifts up to ~1e-5 from any float64 computation at 20,000
samples, so ECE/MCE are judged against torchmetrics' own binning core (``_ce_compute``) fed float64
confidences, and the public function's difference is shown beside it. AUROC/AUPR/FPR95 through
torchmetrics sit near 1e-7 (float32 outputs); scikit-learn works in float64 (differences near 1e-16).

One convention case is reported apart, not counted as a failure: torchmetrics bins confidences as
[lo, hi) and gives confidence == 1.0 a bin of its own, while synthclone (like Guo et al. 2017) uses
(lo, hi] bins with 1.0 in the last one. The two differ only when a confidence sits exactly on a bin
edge (saturated softmax outputs of 1.0 do happen in float32); the row shows by how much, next to an
independent from-the-definition computation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table  # noqa: E402

TOL = 1e-6
# (column, counts towards the target): torchmetrics' public calibration function casts to float32
# before binning, so it is shown but judged through its float64 core (_ce_compute) instead
PEERS = [("torchmetrics", True), ("torchmetrics public fn (float32 inside)", False), ("sklearn", True),
         ("torch nll_loss", True)]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _classification_case(rng: np.random.Generator, n: int, k: int, ties: bool):
    scale = rng.uniform(0.5, 4.0)
    logits = rng.normal(size=(n, k)) * scale
    if ties:  # few distinct logits and duplicated rows: many identical confidences
        logits = np.round(logits, 1)
        logits = np.repeat(logits[: max(1, n // 4)], 4, axis=0)[:n]
        n = len(logits)
    probs = _softmax(logits)
    # labels drawn from a tempered softmax: a partly (mis)calibrated classifier, as real ones are
    labels = np.array([rng.choice(k, p=p) for p in _softmax(logits * rng.uniform(0.5, 1.5))])
    return probs, labels


def _detection_case(rng: np.random.Generator, n_in: int, n_out: int, ties: str):
    s_in = rng.normal(1.0, 1.0, n_in)
    s_out = rng.normal(0.0, 1.2, n_out)
    if ties == "rounded":
        s_in, s_out = np.round(s_in, 1), np.round(s_out, 1)
    elif ties == "coarse":  # only a handful of distinct scores, most of them shared by both sets
        s_in, s_out = np.clip(np.round(s_in), -1, 3), np.clip(np.round(s_out), -1, 3)
    return s_in, s_out


def classification_rows(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> List[Dict[str, float]]:
    """ECE, MCE and NLL of one case from synthclone, torchmetrics and scikit-learn."""
    from sklearn.metrics import log_loss
    from torchmetrics.functional.classification import multiclass_calibration_error
    from torchmetrics.functional.classification.calibration_error import _ce_compute

    from synthclone.robustness import metrics as M

    k = probs.shape[1]
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    p_t = torch.from_numpy(probs)  # float64 end to end: torchmetrics computes in the input dtype
    y_t = torch.from_numpy(labels).long()
    # torchmetrics' binning core on float64 confidences (its public function casts to float32 first)
    c64, a64 = torch.from_numpy(conf), torch.from_numpy(correct.astype(np.float64))
    rows = [
        {"metric": "ECE (15 bins, L1)", "synthclone": M.ece(conf, correct, n_bins),
         "torchmetrics": float(_ce_compute(c64, a64, n_bins, norm="l1")),
         "torchmetrics public fn (float32 inside)":
             float(multiclass_calibration_error(p_t, y_t, num_classes=k, n_bins=n_bins, norm="l1"))},
        {"metric": "MCE (15 bins, max)", "synthclone": M.mce(conf, correct, n_bins),
         "torchmetrics": float(_ce_compute(c64, a64, n_bins, norm="max")),
         "torchmetrics public fn (float32 inside)":
             float(multiclass_calibration_error(p_t, y_t, num_classes=k, n_bins=n_bins, norm="max"))},
        {"metric": "NLL", "synthclone": M.nll(probs[np.arange(len(labels)), labels]),
         "torch nll_loss": float(torch.nn.functional.nll_loss(p_t.log(), y_t)),
         "sklearn": float(log_loss(labels, probs, labels=list(range(k))))},
    ]
    return rows


def detection_rows(s_in: np.ndarray, s_out: np.ndarray) -> List[Dict[str, float]]:
    """AUROC, AUPR-in, AUPR-out and FPR@95%TPR of one case (in-distribution = positive)."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
    from torchmetrics.functional.classification import (binary_auroc, binary_average_precision,
                                                        binary_specificity_at_sensitivity)

    from synthclone.robustness import metrics as M

    d = M.detection_metrics(s_in, s_out)
    s = np.concatenate([s_in, s_out])
    y = np.concatenate([np.ones(len(s_in)), np.zeros(len(s_out))]).astype(int)
    # torchmetrics applies a float32 sigmoid to scores outside [0, 1], which merges near-equal large
    # scores into ties; dense ranks scaled into (0, 1] keep the order and every tie, and stay distinct
    # in float32, so torchmetrics sees the same ranking as the others
    from scipy.stats import rankdata

    dense = rankdata(s, method="dense")
    st, yt = torch.from_numpy(dense / dense.max()), torch.from_numpy(y)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    spec, _ = binary_specificity_at_sensitivity(st, yt, min_sensitivity=0.95)
    return [
        {"metric": "AUROC", "synthclone": d["auroc"], "torchmetrics": float(binary_auroc(st, yt)),
         "sklearn": float(roc_auc_score(y, s))},
        {"metric": "AUPR-in", "synthclone": d["aupr_in"], "torchmetrics": float(binary_average_precision(st, yt)),
         "sklearn": float(average_precision_score(y, s))},
        {"metric": "AUPR-out", "synthclone": d["aupr_out"],
         "torchmetrics": float(binary_average_precision(1.0 - st, 1 - yt)),
         "sklearn": float(average_precision_score(1 - y, -s))},
        {"metric": "FPR@95%TPR", "synthclone": d["fpr95"], "torchmetrics": 1.0 - float(spec),
         "sklearn": float(fpr[np.argmax(tpr >= 0.95)])},
    ]


def agreement(seeds: Sequence[int] = (0, 1), sizes: Sequence[int] = (10, 200), classes: Sequence[int] = (2, 10)):
    """Every case's rows: dicts with case, metric and the value from each library.

    Cases: each seed x size x class count (classification) or seed x size x tie pattern (detection).
    """
    out: List[Dict[str, object]] = []
    for seed in seeds:
        for n in sizes:
            for k in classes:
                for ties in (False, True):
                    rng = np.random.default_rng([seed, n, k, int(ties)])
                    probs, labels = _classification_case(rng, n, k, ties)
                    case = f"seed={seed} n={len(labels)} k={k}{' ties' if ties else ''}"
                    out += [{"case": case, **r} for r in classification_rows(probs, labels)]
            for ties in ("none", "rounded", "coarse"):
                rng = np.random.default_rng([seed, n, 7, len(ties)])
                n_out = max(2, int(n * rng.uniform(0.5, 2.0)))
                s_in, s_out = _detection_case(rng, max(2, n), n_out, ties)
                case = f"seed={seed} in={len(s_in)} out={len(s_out)} ties={ties}"
                out += [{"case": case, **r} for r in detection_rows(s_in, s_out)]
    return out


def summarize(rows: List[Dict[str, object]]) -> List[Dict[str, object]]:
    """Per metric: number of cases and the largest |synthclone - peer| for each peer (column "vs peer")."""
    table = []
    for metric in dict.fromkeys(r["metric"] for r in rows):
        rs = [r for r in rows if r["metric"] == metric]
        entry: Dict[str, object] = {"metric": metric, "cases": len(rs)}
        worst = 0.0
        for peer, judged in PEERS:
            diffs = [abs(r["synthclone"] - r[peer]) for r in rs if peer in r]
            if diffs:
                entry[f"vs {peer}"] = float(max(diffs))
                if judged:
                    worst = max(worst, max(diffs))
            else:
                entry[f"vs {peer}"] = "-"
        entry[f"<= {TOL:g}"] = "yes" if worst <= TOL else "NO"
        table.append(entry)
    return table


def boundary_case() -> Dict[str, object]:
    """Confidences exactly on bin edges (including 1.0): the binning-convention difference."""
    from torchmetrics.functional.classification import binary_calibration_error

    from synthclone.robustness import metrics as M

    conf = np.array([1.0, 1.0, 1.0, 1.0, 0.96, 0.92, 0.8, 0.6, 0.6, 0.4])  # 0.6 = 9/15 and 1.0 are bin edges
    correct = np.array([1, 1, 1, 0, 1, 1, 0, 1, 0, 0], dtype=bool)
    # from the definition (Guo et al.): bins ((b-1)/15, b/15], computed with exact rationals
    from fractions import Fraction

    bins: Dict[int, List[int]] = {}
    for i, c in enumerate(conf):
        fc = Fraction(c).limit_denominator(1000)
        b = max(1, -(-fc * 15 // 1))  # ceil(15 c), zeros go to bin 1
        bins.setdefault(int(b), []).append(i)
    ref = sum(abs(correct[ix].mean() - conf[ix].mean()) * len(ix) for ix in bins.values()) / len(conf)
    # binary task with predictions of the positive class: confidence = p, "correct" = label
    tm = float(binary_calibration_error(torch.from_numpy(conf), torch.from_numpy(correct.astype(np.int64)),
                                        n_bins=15, norm="l1"))
    return {"case": "confidences on bin edges (1.0, 9/15)", "synthclone": M.ece(conf, correct, 15),
            "from the definition ((lo, hi] bins)": float(ref), "torchmetrics ([lo, hi) bins)": tm}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 seeds, small sizes (seconds)")
    args = p.parse_args(argv)
    if args.quick:
        seeds, sizes, classes = (0, 1), (10, 500), (2, 10)
    else:
        seeds, sizes, classes = (0, 1, 2, 3, 4), (10, 100, 1000, 20000), (2, 10, 100)
    rows = agreement(seeds, sizes, classes)
    print("## Metrics: synthclone vs torchmetrics and scikit-learn\n")
    print(f"machine: {machine_line()}\n")
    print(f"seeds {list(seeds)}, sizes {list(sizes)}, classes {list(classes)}, with and without ties; "
          f"{len({r['case'] for r in rows})} cases; each cell is the largest |synthclone - peer| over the cases\n")
    print(markdown_table(summarize(rows)))
    print("\nBinning convention (not counted above):\n")
    print(markdown_table([boundary_case()]))
    bad = [r for r in summarize(rows) if r[f"<= {TOL:g}"] != "yes"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

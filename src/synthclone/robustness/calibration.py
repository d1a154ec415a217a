"""``calibration``: ECE, MCE, NLL, Brier, adaptive and class-wise ECE, before and after temperature scaling.

The temperature is fitted on the validation split (``settings.val``). Without one (a folder given as
data), a seeded 20% of the evaluation set fits it and only the other 80% is scored; ``extra`` says so.
Rows: condition ``uncalibrated`` and ``temperature_scaled``; ``score`` = probability of the true
class (so NLL = mean of -log score); ``extra`` = {T, brier, probs (when K <= 100), fit_on}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict


import numpy as np
import pandas as pd
import torch

from . import PROBES
from .core import BenchSettings, extra_of, predict, rows_from_logits
from .metrics import brier_per_sample, calibration_bins, fit_temperature

MAX_CLASSES_WITH_PROBS = 100


@PROBES.register("calibration")
def calibration_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """ECE/MCE/NLL/Brier/adaptive/class-wise ECE before and after temperature scaling (fit on val).

    The evaluation and validation sets are streamed; only their logits (N, K) are held."""
    p = predict(model, data, settings.batch_size, settings.device)
    logits, labels, ids = p.logits, p.labels(data), p.ids(data)
    if settings.val is not None:
        v = predict(model, settings.val, settings.batch_size, settings.device)
        val_logits, val_labels, fit_on = v.logits, v.labels(settings.val), f"val:{settings.val.name}"
    else:
        perm = torch.randperm(len(ids), generator=settings.generator("calibration-split"))
        n_fit = max(1, len(ids) // 5)
        fit, keep = perm[:n_fit], perm[n_fit:].sort().values
        val_logits, val_labels, fit_on = logits[fit], labels[fit], "20% of the evaluation set (no val split)"
        logits, labels, ids = logits[keep], labels[keep], [ids[i] for i in keep.tolist()]
    t = fit_temperature(val_logits, val_labels)
    frames = []
    for condition, lg in (("uncalibrated", logits), ("temperature_scaled", logits / t)):
        probs = lg.float().softmax(1)
        p_true = probs[torch.arange(len(labels)), labels].double().numpy()
        b = brier_per_sample(probs, labels)
        keep_probs = probs.shape[1] <= MAX_CLASSES_WITH_PROBS
        extra = [{"T": t if condition != "uncalibrated" else 1.0, "fitted_T": t, "brier": float(bi), "fit_on": fit_on,
                  **({"probs": [round(float(v), 7) for v in pr]} if keep_probs else {})}
                 for bi, pr in zip(b, probs.tolist() if keep_probs else [None] * len(b))]
        frames.append(rows_from_logits(settings.model_name, "calibration", condition, 0, ids, labels, lg,
                                       score=p_true, extra=extra))
    return pd.concat(frames, ignore_index=True)


def reliability(rows: pd.DataFrame, n_bins: int = 15) -> Dict[str, dict]:
    """Reliability-diagram data per condition: bin edges, counts, accuracy, mean confidence."""
    out = {}
    cal = rows[rows["probe"] == "calibration"]
    for condition, part in cal.groupby("condition"):
        b = calibration_bins(part["confidence"].to_numpy(), part["correct"].to_numpy(), n_bins)
        out[condition] = {k: [None if not np.isfinite(v) else float(v) for v in arr] for k, arr in b.items()}
    return out


def plot_reliability(rows: pd.DataFrame, out_dir, n_bins: int = 15) -> list:
    """Reliability diagrams (one PNG per model: before | after temperature scaling) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for model_name, part in rows[rows["probe"] == "calibration"].groupby("model"):
        data = reliability(part, n_bins)
        conds = [c for c in ("uncalibrated", "temperature_scaled") if c in data]
        fig, axes = plt.subplots(1, len(conds), figsize=(4 * len(conds), 4), squeeze=False)
        for ax, cond in zip(axes[0], conds):
            d = data[cond]
            edges = np.array(d["edges"])
            acc = np.array([np.nan if v is None else v for v in d["accuracy"]])
            centers = (edges[:-1] + edges[1:]) / 2
            ax.bar(centers, np.nan_to_num(acc), width=1 / n_bins, edgecolor="black", label="accuracy")
            ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
            t = extra_of(part[part["condition"] == cond].head(1))["T"].iloc[0]
            ax.set(title=f"{cond} (T={t:.2f})", xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
            ax.legend(loc="upper left")
        fig.suptitle(str(model_name))
        fig.tight_layout()
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(model_name))
        path = out_dir / f"reliability_{safe}.png"
        from ..paths import atomic_write

        atomic_write(path, lambda p: fig.savefig(p, dpi=100))
        plt.close(fig)
        written.append(path)
    return written

"""Headline numbers per model, computed from probe rows alone.

All accuracies and errors are fractions in [0, 1]. Corruption metrics (Hendrycks & Dietterich 2019):
``E[c, s]`` is the error of cell (corruption c, severity s);
``mce_unnormalized`` = mean over corruptions of the mean error over severities;
``CE_c = sum_s E[c, s] / sum_s E_baseline[c, s]`` and ``corruption_mce`` = mean CE_c (1.0 = as
robust as the baseline); ``relative_mce`` uses ``E[c, s] - E_clean`` in both sums.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Optional, Union

import numpy as np
import pandas as pd

from .core import extra_of
from .metrics import (POSITIVE_CLASS, adaptive_ece, classwise_ece, detection_metrics, ece, mce, nll)
from .shape_bias import shape_bias_metrics


def eps_label(eps: float, norm: str) -> str:
    """``2/255`` for L-inf radii that are whole multiples of 1/255, else ``0.5``."""
    if norm == "linf" and abs(eps * 255 - round(eps * 255)) < 1e-6 and eps > 0:
        return f"{int(round(eps * 255))}/255"
    return f"{eps:g}"


def _f(v) -> Optional[float]:
    v = float(v)
    return None if math.isnan(v) else v


def _clean(rows: pd.DataFrame) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    part = rows[rows["probe"] == "clean"]
    for cond, p in part.groupby("condition"):
        key = "clean" if cond == "clean" else cond.replace(":", "_")
        out[f"{key}_acc"] = _f(p["correct"].mean())
        out[f"{key}_top5"] = _f(extra_of(p)["top5"].mean()) if len(p) else None
        if cond == "clean":
            out["per_class_acc"] = {int(k): _f(v) for k, v in p.groupby("label")["correct"].mean().items()}
    return out


def _calibration(rows: pd.DataFrame, n_bins: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    part = rows[rows["probe"] == "calibration"]
    for cond, p in part.groupby("condition"):
        prefix = "" if cond == "uncalibrated" else "ts_"
        ex = extra_of(p)
        conf, corr = p["confidence"].to_numpy(), p["correct"].to_numpy()
        out[f"{prefix}ece"] = _f(ece(conf, corr, n_bins))
        out[f"{prefix}mce"] = _f(mce(conf, corr, n_bins))
        out[f"{prefix}adaptive_ece"] = _f(adaptive_ece(conf, corr, n_bins))
        out[f"{prefix}nll"] = _f(nll(p["score"].to_numpy()))
        out[f"{prefix}brier"] = _f(ex["brier"].mean())
        if "probs" in ex:
            out[f"{prefix}classwise_ece"] = _f(classwise_ece(np.stack(ex["probs"].to_numpy()), p["label"].to_numpy(), n_bins))
        if cond != "uncalibrated":
            out["temperature"] = _f(ex["T"].iloc[0])
    return out


def _errors(rows: pd.DataFrame) -> pd.Series:
    part = rows[rows["probe"] == "corruptions"]
    return 1.0 - part.groupby(["condition", "severity"])["correct"].mean()


def _corruptions(rows: pd.DataFrame, baseline: Optional[pd.DataFrame]) -> Dict[str, Any]:
    err = _errors(rows)
    if err.empty:
        return {}
    out: Dict[str, Any] = {
        "corruption_acc": _f(1.0 - err.mean()),
        "mce_unnormalized": _f(err.groupby(level=0).mean().mean()),
        "corruption_cells": {c: {int(s): _f(1 - e) for (cc, s), e in err.items() if cc == c}
                             for c in err.index.get_level_values(0).unique()},
    }
    if baseline is not None and len(baseline):
        base = _errors(baseline)
        common = err.index.intersection(base.index)
        if len(common):
            ce = {c: _f(err.loc[c].sum() / max(base.loc[c].sum(), 1e-12))
                  for c in common.get_level_values(0).unique()}
            out["corruption_ce"] = ce
            out["corruption_mce"] = _f(np.mean(list(ce.values())))
            clean = rows[(rows["probe"] == "clean") & (rows["condition"] == "clean")]
            bclean = baseline[(baseline["probe"] == "clean") & (baseline["condition"] == "clean")]
            if len(clean) and len(bclean):
                e0, b0 = 1 - clean["correct"].mean(), 1 - bclean["correct"].mean()
                rel = [(err.loc[c] - e0).sum() / max((base.loc[c] - b0).sum(), 1e-12) for c in ce]
                out["relative_mce"] = _f(np.mean(rel))
    return out


def _adversarial(rows: pd.DataFrame) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    part = rows[rows["probe"] == "adversarial"]
    for (attack, sev), p in part.groupby(["condition", "severity"]):
        ex = extra_of(p.head(1)).iloc[0]
        out[f"{attack}_acc@{eps_label(float(ex['eps']), ex['norm'])}"] = _f(p["correct"].mean())
    return out


def _shape(rows: pd.DataFrame) -> Dict[str, Any]:
    part = rows[rows["probe"] == "shape-bias"]
    if part.empty:
        return {}
    ex = extra_of(part)
    m = shape_bias_metrics(part["prediction"].to_numpy(), ex["shape"].to_numpy(), ex["texture"].to_numpy())
    return {k: (_f(v) if k != "stimuli" else v) for k, v in m.items()}


def _background(rows: pd.DataFrame) -> Dict[str, Any]:
    part = rows[rows["probe"] == "background"]
    if part.empty:
        return {}
    acc = part.groupby("condition")["correct"].mean()
    out: Dict[str, Any] = {f"bg_acc_{k}": _f(v) for k, v in acc.items()}
    if "mixed_same" in acc and "mixed_rand" in acc:
        out["bg_gap"] = _f(acc["mixed_same"] - acc["mixed_rand"])
    return out


def _ood(rows: pd.DataFrame) -> Dict[str, Any]:
    part = rows[rows["probe"] == "ood"]
    if part.empty:
        return {}
    split = part["condition"].str.rsplit(":", n=1, expand=True)
    part = part.assign(_set=split[0], _method=split[1])
    detail: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for method, pm in part.groupby("_method"):
        inside = pm[pm["_set"] == "id"]["score"].to_numpy()
        for name, ps in pm[pm["_set"] != "id"].groupby("_set"):
            m = detection_metrics(inside, ps["score"].to_numpy())
            detail.setdefault(name, {})[method] = {k: (_f(v) if k != "positive" else v) for k, v in m.items()}
    out: Dict[str, Any] = {"ood_positive_class": POSITIVE_CLASS, "ood_detail": detail}
    for metric in ("auroc", "aupr_in", "aupr_out", "fpr95"):
        vals = [d["msp"][metric] for d in detail.values() if "msp" in d and d["msp"][metric] is not None]
        out[f"ood_{metric}"] = _f(np.mean(vals)) if vals else None
    return out


def _context(rows: pd.DataFrame) -> Dict[str, Any]:
    part = rows[rows["probe"] == "context"]
    if part.empty:
        return {}
    acc = part.groupby("condition")["correct"].mean()
    return {"context_acc_by_uncommon": {c.split("=", 1)[1]: _f(v) for c, v in acc.items()}}


def summarize(rows: pd.DataFrame, baseline: Union[str, pd.DataFrame, None] = None, n_bins: int = 15) -> Dict[str, Dict[str, Any]]:
    """Headline metrics per model: ``{model: {clean_acc, ece, mce, nll, brier, corruption_acc, ...}}``.

    Args:
        rows: probe rows (the schema of :mod:`synthclone.robustness`), any number of models.
        baseline: the model whose corruption errors normalise CE / mCE — its name in ``rows`` or its
            own rows; without one, only the unnormalised corruption error is given.
        n_bins: calibration bins (equal width).
    """
    if isinstance(baseline, str):
        if baseline not in set(rows["model"]):
            from ..errors import UserError

            raise UserError(f"baseline model {baseline!r} has no rows; models present: {sorted(set(rows['model']))}")
        baseline = rows[rows["model"] == baseline]
    out: Dict[str, Dict[str, Any]] = {}
    for model, part in rows.groupby("model", sort=False):
        m: Dict[str, Any] = {}
        m.update(_clean(part))
        m.update(_calibration(part, n_bins))
        m.update(_corruptions(part, baseline))
        m.update(_adversarial(part))
        m.update(_shape(part))
        m.update(_background(part))
        m.update(_ood(part))
        m.update(_context(part))
        out[str(model)] = m
    return json.loads(json.dumps(out, default=lambda o: o.item() if hasattr(o, "item") else str(o)))

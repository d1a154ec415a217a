"""Headline numbers per model, computed from probe rows alone.

All accuracies and errors are fractions in [0, 1]. Corruption metrics (Hendrycks & Dietterich 2019):
``E[c, s]`` is the error of cell (corruption c, severity s); ``corruption_acc`` is the mean accuracy
over every cell the model has (all corruptions).

* ``mce_unnormalized`` = mean over the 15 ImageNet-C corruptions of the mean error over severities;
* ``CE_c = sum_s E[c, s] / sum_s E_baseline[c, s]``, the sums over the severities that both the model
  and the baseline have (shared cells); ``corruption_ce`` holds it for the 15 ImageNet-C corruptions
  and ``corruption_mce`` = their mean (1.0 = as robust as the baseline); ``relative_mce`` uses
  ``E[c, s] - E_clean`` in both sums;
* the extra corruptions (speckle noise, Gaussian blur, spatter, saturate) and any others are reported
  apart: ``extra_ce`` and ``extra_mce_unnormalized``, never mixed into the mCE;
* a denominator that is not positive (a baseline with no error on a corruption) leaves that CE
  undefined: ``None``, with a line in ``corruption_notes``, and the mCE it would enter is ``None`` too.

Background: ``bg_gap`` = mixed_same - mixed_rand accuracy on the ImageNet-9 folders (real
backgrounds); on variants built from objects on black, ``clutter_gap`` = clutter_same - clutter_rand
(distraction by pasted clutter, not background reliance); ``bg_acc_<variant>`` either way.

Shape bias (Geirhos et al. 2019): ``shape_bias`` over all cue-conflict decisions, and per shape class
(model-vs-human's per-category view) ``shape_bias_per_class`` (``None`` for a class with no shape or
texture decision) with ``shape_decisions_per_class``, the weights that average them to ``shape_bias``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Optional, Union

import numpy as np
import pandas as pd

from .core import extra_of
from .corruption_ops import IMAGENET_C
from .metrics import (POSITIVE_CLASS, adaptive_ece, classwise_ece, detection_metrics, ece, mce, nll)
from .shape_bias import shape_bias_metrics, shape_bias_per_class


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


def _mean_over_corruptions(err: pd.Series) -> Optional[float]:
    return _f(err.groupby(level=0).mean().mean()) if len(err) else None


def _corruptions(rows: pd.DataFrame, baseline: Optional[pd.DataFrame]) -> Dict[str, Any]:
    err = _errors(rows)
    if err.empty:
        return {}
    standard = err.index.get_level_values(0).isin(IMAGENET_C)
    out: Dict[str, Any] = {
        "corruption_acc": _f(1.0 - err.mean()),
        "mce_unnormalized": _mean_over_corruptions(err[standard]),
        "corruption_cells": {c: {int(s): _f(1 - e) for (cc, s), e in err.items() if cc == c}
                             for c in err.index.get_level_values(0).unique()},
    }
    if (~standard).any():
        out["extra_mce_unnormalized"] = _mean_over_corruptions(err[~standard])
    if baseline is None or not len(baseline):
        return out
    base = _errors(baseline)
    shared = err.index.intersection(base.index)
    if not len(shared):
        return out
    clean = rows[(rows["probe"] == "clean") & (rows["condition"] == "clean")]
    bclean = baseline[(baseline["probe"] == "clean") & (baseline["condition"] == "clean")]
    e0 = 1 - clean["correct"].mean() if len(clean) and len(bclean) else None
    b0 = 1 - bclean["correct"].mean() if e0 is not None else None
    notes = []

    def ratio(num: float, den: float, what: str) -> Optional[float]:
        if den > 0:
            return _f(num / den)
        notes.append(f"{what} undefined: the baseline's denominator on the shared cells is {den:.4g} (not > 0)")
        return None

    ce: Dict[str, Optional[float]] = {}
    extra_ce: Dict[str, Optional[float]] = {}
    rel: Dict[str, Optional[float]] = {}
    for c in shared.get_level_values(0).unique():
        cells = shared[shared.get_level_values(0) == c]
        e, b = err.loc[cells], base.loc[cells]
        if c in IMAGENET_C:
            ce[c] = ratio(e.sum(), b.sum(), f"CE of {c}")
            if e0 is not None:
                rel[c] = ratio((e - e0).sum(), (b - b0).sum(), f"relative CE of {c}")
        else:
            extra_ce[c] = ratio(e.sum(), b.sum(), f"CE of {c} (extra)")
    if ce:
        out["corruption_ce"] = ce
        out["corruption_mce"] = _f(np.mean(list(ce.values()))) if None not in ce.values() else None
        if 0 < len(ce) < len(IMAGENET_C):
            notes.append(f"mCE over {len(ce)} of the 15 ImageNet-C corruptions (those shared with the baseline)")
    if rel:
        out["relative_mce"] = _f(np.mean(list(rel.values()))) if None not in rel.values() else None
    if extra_ce:
        out["extra_ce"] = extra_ce
    if notes:
        out["corruption_notes"] = notes
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
    pred, shape, texture = part["prediction"].to_numpy(), ex["shape"].to_numpy(), ex["texture"].to_numpy()
    out: Dict[str, Any] = {k: (_f(v) if k != "stimuli" else v) for k, v in shape_bias_metrics(pred, shape, texture).items()}
    per_class = shape_bias_per_class(pred, shape, texture)
    out["shape_bias_per_class"] = {c: v for c, (v, _) in per_class.items()}
    out["shape_decisions_per_class"] = {c: n for c, (_, n) in per_class.items()}
    return out


def _background(rows: pd.DataFrame) -> Dict[str, Any]:
    part = rows[rows["probe"] == "background"]
    if part.empty:
        return {}
    acc = part.groupby("condition")["correct"].mean()
    out: Dict[str, Any] = {f"bg_acc_{k}": _f(v) for k, v in acc.items()}
    if "mixed_same" in acc and "mixed_rand" in acc:   # ImageNet-9: real backgrounds
        out["bg_gap"] = _f(acc["mixed_same"] - acc["mixed_rand"])
    if "clutter_same" in acc and "clutter_rand" in acc:  # built variants: pasted clutter, not backgrounds
        out["clutter_gap"] = _f(acc["clutter_same"] - acc["clutter_rand"])
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

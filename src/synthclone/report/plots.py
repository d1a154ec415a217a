"""The report's plots, each computed from probe rows alone (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path
import re
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from ..paths import atomic_write

    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", metadata={"Software": None}))
    finally:
        _plt().close(fig)


def _colors(n: int):
    cmap = _plt().get_cmap("tab20" if n > 10 else "tab10")
    return [cmap(i % cmap.N) for i in range(n)]


def reliability(rows: pd.DataFrame, models: Sequence[str], path: Path, n_bins: int = 15) -> Optional[Path]:
    """Accuracy vs confidence per equal-width bin, before and after temperature scaling."""
    part = rows[(rows["probe"] == "calibration") & rows["model"].isin(models)]
    if part.empty:
        return None
    plt = _plt()
    conds = [c for c in ("uncalibrated", "temperature_scaled") if c in set(part["condition"])]
    fig, axes = plt.subplots(1, len(conds), figsize=(5 * len(conds), 4.2), squeeze=False)
    edges = np.linspace(0, 1, n_bins + 1)
    for ax, cond in zip(axes[0], conds):
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
        for color, model in zip(_colors(len(models)), models):
            p = part[(part["model"] == model) & (part["condition"] == cond)]
            if p.empty:
                continue
            conf, corr = p["confidence"].to_numpy(), p["correct"].to_numpy().astype(float)
            idx = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
            xs, ys = [], []
            for b in range(n_bins):
                sel = idx == b
                if sel.sum() >= 5:
                    xs.append(conf[sel].mean())
                    ys.append(corr[sel].mean())
            ax.plot(xs, ys, "o-", ms=3, color=color, label=model)
        ax.set_title(cond.replace("_", " "))
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0][-1].legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def recipe_groups(models: Sequence[str]) -> Dict[str, List[str]]:
    """Models grouped by recipe: the name without its ``/sN`` seed suffix (``real/s0``, ``real/s1`` -> ``real``)."""
    groups: Dict[str, List[str]] = {}
    for m in models:
        groups.setdefault(re.sub(r"/s\d+$", "", m), []).append(m)
    return groups


def _plot_band(ax, curves: List[pd.Series], color, label: str, fmt: str = "o-", ms: float = 3, **style) -> None:
    """The mean of per-seed curves (index = x), with error bars of one standard deviation over seeds
    where there are two or more."""
    table = pd.concat(curves, axis=1).sort_index()
    mean = table.mean(axis=1)
    n = table.shape[1]
    if n > 1:
        ax.errorbar(mean.index, mean.values, yerr=table.std(axis=1, ddof=1).values, fmt=fmt, ms=ms, capsize=2,
                    color=color, label=label if label.startswith("_") else f"{label} ({n} seeds)", **style)
    else:
        ax.plot(mean.index, mean.values, fmt, ms=ms, color=color, label=label, **style)


def corruption_severity(rows: pd.DataFrame, models: Sequence[str], path: Path) -> Optional[Path]:
    """Top-1 error vs corruption severity (mean over corruptions), one line per recipe: the mean over its
    seeds, with error bars of one standard deviation over seeds."""
    part = rows[(rows["probe"] == "corruptions") & rows["model"].isin(models)]
    if part.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    clean = rows[(rows["probe"] == "clean") & (rows["condition"] == "clean")]
    groups = recipe_groups(models)
    for color, (label, members) in zip(_colors(len(groups)), groups.items()):
        curves = []
        for model in members:
            p = part[part["model"] == model]
            if p.empty:
                continue
            err = 1 - p.groupby(["condition", "severity"])["correct"].mean().groupby(level=1).mean()
            c = clean[clean["model"] == model]
            if len(c):
                err = pd.concat([pd.Series([1 - c["correct"].mean()], index=[0]), err])
            curves.append(err)
        if curves:
            _plot_band(ax, curves, color, label)
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("top-1 error (mean over corruptions)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _save(fig, path)


def robust_accuracy(rows: pd.DataFrame, models: Sequence[str], path: Path) -> Optional[Path]:
    """Robust accuracy vs epsilon, one panel per attack, one line per recipe (the mean over its seeds, error
    bars of one standard deviation); the findings' attack (``pgd_paper``, Singh et al.'s setting) as a star
    on the PGD L-inf panel (or a panel of its own)."""
    import json

    part = rows[(rows["probe"] == "adversarial") & rows["model"].isin(models)]
    if part.empty:
        return None
    plt = _plt()
    paper = part[part["condition"] == "pgd_paper"]
    attacks = sorted(set(part["condition"]) - {"pgd_paper"}) or ["pgd_paper"]
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.6 * len(attacks), 4), squeeze=False)
    clean = rows[(rows["probe"] == "clean") & (rows["condition"] == "clean")]
    groups = recipe_groups(models)
    colors = _colors(len(groups))
    for ax, attack in zip(axes[0], attacks):
        for color, (label, members) in zip(colors, groups.items()):
            curves = []
            for model in members:
                p = part[(part["model"] == model) & (part["condition"] == attack)]
                if p.empty:
                    continue
                eps = p.groupby("severity")["extra"].first().map(lambda e: json.loads(e)["eps"])
                acc = pd.Series(p.groupby("severity")["correct"].mean().values, index=eps.values)
                c = clean[clean["model"] == model]
                if len(c):
                    acc = pd.concat([pd.Series([c["correct"].mean()], index=[0.0]), acc])
                curves.append(acc)
            if curves:
                _plot_band(ax, curves, color, label)
        if attack in ("pgd_linf", "pgd_paper"):
            for color, (label, members) in zip(colors, groups.items()):
                points = [paper[paper["model"] == m] for m in members]
                points = [q for q in points if len(q)]
                if points:
                    eps = json.loads(points[0]["extra"].iloc[0])["eps"]
                    _plot_band(ax, [pd.Series([q["correct"].mean()], index=[eps]) for q in points], color, "_", "*", ms=11,
                               markeredgecolor="black")
            if len(paper):
                ax.plot([], [], "*", ms=11, color="white", markeredgecolor="black", label="Singh et al.'s PGD (findings)")
        ax.set_title(attack)
        ax.set_xlabel("epsilon")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(0, 1)
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def shape_bias(summary: Dict[str, Dict], models: Sequence[str], path: Path) -> Optional[Path]:
    """Shape bias per model (fraction of shape decisions among shape-or-texture decisions)."""
    vals = [(m, summary.get(m, {}).get("shape_bias")) for m in models]
    vals = [(m, v) for m, v in vals if v is not None]
    if not vals:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(vals) + 1.2))
    names = [m for m, _ in vals]
    ax.barh(range(len(vals)), [v for _, v in vals], color=_colors(len(vals)))
    ax.set_yticks(range(len(vals)), names, fontsize=7)
    ax.axvline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel("shape bias (0 = texture, 1 = shape)")
    ax.invert_yaxis()
    return _save(fig, path)


def class_label(key, class_names: Optional[Sequence[str]] = None) -> str:
    """A class index (int or the string JSON makes of it) as its name when ``class_names`` has it."""
    k = int(key)
    return str(class_names[k]) if class_names is not None and 0 <= k < len(class_names) else str(k)


def shape_bias_classes(summary: Dict[str, Dict], models: Sequence[str]) -> list:
    """The shape classes that any of ``models`` has a per-class shape bias entry for, ascending."""
    keys = {int(k) for m in models for k in (summary.get(m, {}).get("shape_bias_per_class") or {})}
    return sorted(keys)


def shape_bias_per_class(summary: Dict[str, Dict], models: Sequence[str], path: Path,
                         class_names: Optional[Sequence[str]] = None) -> Optional[Path]:
    """Shape bias per shape category, model-vs-human style: categories down the y axis, the fraction
    of shape decisions along x (0 = texture, 1 = shape), one marker series per model, its overall
    shape bias as a dashed line in the same colour. Classes without a decision have no marker."""
    models = [m for m in models if summary.get(m, {}).get("shape_bias_per_class")]
    classes = shape_bias_classes(summary, models)
    if not classes:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(classes) + 1.6))
    pos = {c: i for i, c in enumerate(classes)}
    markers = "osD^v<>ph*"
    for i, (color, model) in enumerate(zip(_colors(len(models)), models)):
        m = summary[model]
        pts = [(v, pos[int(k)]) for k, v in m["shape_bias_per_class"].items() if v is not None]
        ax.scatter([x for x, _ in pts], [y for _, y in pts], color=color, marker=markers[i % len(markers)], s=26,
                   label=model, zorder=3)
        if m.get("shape_bias") is not None:
            ax.axvline(m["shape_bias"], color=color, lw=0.9, ls="--", zorder=2)
    ax.set_yticks(range(len(classes)), [class_label(c, class_names) for c in classes], fontsize=7)
    ax.set_ylim(len(classes) - 0.5, -0.5)
    ax.set_xlim(-0.02, 1.02)
    ax.grid(axis="y", lw=0.4, alpha=0.5)
    ax.set_xlabel("fraction of shape decisions (shape bias)")
    top = ax.secondary_xaxis("top", functions=(lambda x: 1 - x, lambda x: 1 - x))
    top.set_xlabel("fraction of texture decisions")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


def ood_roc(rows: pd.DataFrame, models: Sequence[str], path: Path, method: str = "msp") -> Optional[Path]:
    """ROC curves (in-distribution = positive) of the ``method`` score against each OOD set pooled."""
    from sklearn.metrics import roc_curve

    part = rows[(rows["probe"] == "ood") & rows["model"].isin(models) & rows["condition"].str.endswith(f":{method}")]
    if part.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for color, model in zip(_colors(len(models)), models):
        p = part[part["model"] == model]
        if p.empty:
            continue
        is_id = p["condition"] == f"id:{method}"
        if is_id.all() or not is_id.any():
            continue
        fpr, tpr, _ = roc_curve(is_id.astype(int), p["score"].to_numpy())
        ax.plot(fpr, tpr, color=color, lw=1.2, label=model)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate (OOD accepted)")
    ax.set_ylabel("true positive rate (in-distribution kept)")
    ax.set_title(f"OOD detection ({method}), all OOD sets pooled")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def accuracy_vs_robustness(summary: Dict[str, Dict], models: Sequence[str], arms: Dict[str, str], path: Path,
                           robust_key: str = "corruption_acc") -> Optional[Path]:
    """Clean accuracy (x) against a robustness number (y), coloured by arm."""
    pts = [(m, summary.get(m, {}).get("clean_acc"), summary.get(m, {}).get(robust_key)) for m in models]
    pts = [p for p in pts if p[1] is not None and p[2] is not None]
    if not pts:
        return None
    plt = _plt()
    arm_names = sorted({arms.get(m, m) for m, _, _ in pts})
    colors = dict(zip(arm_names, _colors(len(arm_names))))
    fig, ax = plt.subplots(figsize=(6, 4.6))
    for arm in arm_names:
        sel = [(x, y) for m, x, y in pts if arms.get(m, m) == arm]
        ax.scatter([x for x, _ in sel], [y for _, y in sel], color=colors[arm], label=arm, s=28)
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel(robust_key.replace("_", " "))
    ax.legend(fontsize=7)
    return _save(fig, path)


def generator_scatter(points, metrics: Sequence[str], path: Path) -> Optional[Path]:
    """Clone clean accuracy against each generator metric, one panel per metric, a labelled point per generator
    (``points``: (label, metrics, mean accuracy, its standard deviation over seeds or None))."""
    points = [(label, m, acc, sd) for label, m, acc, sd in points if acc is not None]
    if len(points) < 2:
        return None
    plt = _plt()
    cols = 3
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    for i, metric in enumerate(metrics):
        ax = axes[i // cols][i % cols]
        for color, (label, m, acc, sd) in zip(_colors(len(points)), points):
            ax.errorbar([m[metric]], [acc], yerr=None if sd is None else [sd], color=color, fmt="o", ms=5, capsize=3)
            ax.annotate(label, (m[metric], acc), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(metric)
        if i % cols == 0:
            ax.set_ylabel("clone clean accuracy")
    for j in range(len(metrics), rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.tight_layout()
    return _save(fig, path)

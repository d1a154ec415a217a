"""Build a run's report (``report/index.html`` and ``report.md``) from its per-sample rows.

Nothing in the report is typed by hand: tables and plots are computed from the probe rows of every
model (``rows.parquet``), the findings from the same rows (:mod:`.findings`), the sample grids from
the stores the run generated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from . import plots
from .document import Document, Figure, Heading, Paragraph, Table, write
from .findings import MUCH, Finding, columns, evaluate_claims, generators_of
from .grids import make_grid, save_png, set_grid

MAIN_COLUMNS = [
    ("clean_acc", "clean acc"), ("ece", "ECE"), ("ts_ece", "ECE (T-scaled)"), ("corruption_acc", "corruption acc"),
    ("corruption_mce", "mCE"), ("mce_unnormalized", "mCE (unnorm.)"), ("fgsm", "FGSM acc"), ("pgd_linf", "PGD acc"),
    ("pgd_paper", "PGD acc, Singh et al.'s setting"), ("shape_bias", "shape bias"), ("bg_gap", "BG-gap"),
    ("clutter_gap", "clutter gap"), ("ood_auroc", "OOD AUROC"), ("ood_fpr95", "OOD FPR95"),
]
ATTACK_COLUMNS = ("fgsm", "pgd_linf", "pgd_paper")


def _attack_value(metrics: Dict[str, Any], attack: str, eps_key: Optional[str]) -> Optional[float]:
    """The ``attack``'s accuracy at ``eps_key``, else at the middle of this model's own sweep (by value)."""
    key = f"{attack}_acc@{eps_key}"
    if eps_key and key in metrics:
        return metrics[key]
    own = _middle_eps([k.split("@", 1)[1] for k in metrics if k.startswith(f"{attack}_acc@")])
    return None if own is None else metrics[f"{attack}_acc@{own}"]


def _middle_eps(labels: Sequence[str]) -> Optional[str]:
    """The middle of the epsilon labels ordered by value (``2/255 < 8/255 < 16/255``), not as strings."""
    keys = sorted(set(labels), key=eval_fraction)
    return keys[len(keys) // 2] if keys else None


def _eps_key(summary: Dict[str, Dict], attack: str = "pgd_linf") -> Optional[str]:
    """The epsilon of the ``attack`` column: the middle of the run's sweep by value."""
    return _middle_eps([k.split("@", 1)[1] for m in summary.values() for k in m if k.startswith(f"{attack}_acc@")])


def eval_fraction(text: str) -> float:
    """``"2/255"`` -> 0.00784 (labels written by robustness.summary.eps_label)."""
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def findings_records(findings: Sequence[Finding]) -> List[Dict[str, Any]]:
    """``findings.json``: one record per claim with its p-value, raw verdict and Holm verdict."""
    return [f.record() for f in findings]


def probe_notes(rows: pd.DataFrame) -> List[str]:
    """What each probe behind the findings measures on this run, one line each, read from the rows
    (which background variants and which cue-conflict stimuli it has, the attack settings)."""
    import json as _json

    from ..robustness.adversarial import PAPER_PGD

    if rows is None or rows.empty:
        return []
    probes = set(rows["probe"])
    out = [f"Robustness is the share of clean accuracy a model keeps (accuracy under the corruptions or the attack / "
           f"clean accuracy): every robustness verdict reads it. The absolute accuracy difference stands beside it "
           f"(column 'absolute accuracy'), without a verdict. 'Much more vulnerable' means real models keep at least "
           f"{MUCH} more of their clean accuracy."]
    if "adversarial" in probes:
        adv = rows[rows["probe"] == "adversarial"]
        sweep = adv[adv["condition"] != "pgd_paper"]
        steps = sorted({_json.loads(e).get("steps") for e in sweep.drop_duplicates("condition")["extra"]} - {None, 1})
        out.append(f"Adversarial verdicts read PGD at Singh et al.'s setting: L-inf, eps 1/255, {PAPER_PGD['steps']} steps "
                   f"of 2/255, random start (their evaluation script, run_attack.py; the attack_configs.py table beside "
                   f"it lists L2 8/255 but is never read, and their published accuracies fit L-inf 1/255). The sweep "
                   f"over bench.epsilons ({', '.join(map(str, steps)) or '–'} steps) is in the tables and the plot, "
                   "without verdicts.")
    if "corruptions" in probes:
        corr = rows[rows["probe"] == "corruptions"]
        n = corr["condition"].nunique()
        layers = sorted({_json.loads(e).get("frost_layer") for e in corr[corr["condition"] == "frost"]
                         .drop_duplicates("extra")["extra"]} - {None})
        frost = {"photographs": "frost blends ImageNet-C's frost photographs (the imagecorruptions package data)",
                 "procedural": "frost blends a procedural frost layer (install the frost extra, pip install "
                               "'synthclone[frost]', for ImageNet-C's photographs)"}
        out.append(f"Corruptions: accuracy over {n} corruptions at the run's severities (bench.severities)"
                   + "".join(f"; {frost[k]}" for k in layers if k in frost) + ".")
    if "background" in probes:
        conds = set(rows[rows["probe"] == "background"]["condition"])
        if {"mixed_same", "mixed_rand"} <= conds:
            out.append("Background: BG-gap = accuracy on ImageNet-9 mixed_same minus mixed_rand (the object on a "
                       "background of its own class vs of another class): reliance on the background.")
        else:
            out.append("Background: this run's images are objects on black, so the probe pasted each object on clutter "
                       "(tiled small images of its own class vs another class). The clutter gap measures distraction by "
                       "that clutter, not background reliance: no model here could learn a background cue, so the "
                       "background claim is not tested (give bench.options.imagenet9_root for BG-gap).")
    if "shape-bias" in probes:
        built = rows[rows["probe"] == "shape-bias"]["sample_id"].astype(str).str.contains("|", regex=False).any()
        out.append("Shape bias: shape decisions / (shape + texture decisions) on "
                   + ("stimuli built from the test split: one class's silhouette filled with another class's texture "
                      "(the embedded stand-in for Geirhos et al.'s style-transferred images)." if built
                      else "the cue-conflict stimuli of Geirhos et al. (16 categories; a 1000-class model's decision is "
                           "model-vs-human's: softmax averaged per category)."))
    if "calibration" in probes:
        out.append("Calibration: ECE of the uncalibrated softmax confidence (bench.ece_bins equal-width bins).")
    return out


def findings_section(findings: Sequence[Finding], confidence: float, rows: Optional[pd.DataFrame] = None) -> List[Any]:
    """The findings table, and above it the seed count with the verdicts' scope and how to read the table,
    and below it what each probe measures (nothing when no claims ran)."""
    from .stats import MIN_SEEDS

    if not findings:
        return []
    tested = [f for f in findings if f.p_value is not None]
    alpha = 1 - confidence
    counts = sorted({f.n_seeds for f in tested})
    seeds = " to ".join(str(n) for n in (counts[:1] + counts[-1:] if len(counts) > 1 else counts)) or "0"
    plural = "" if counts == [1] else "s"
    if not counts:
        scope = "No claim could be tested on this run: the arms or probes each claim compares are missing."
    elif counts[-1] < MIN_SEEDS:
        scope = (f"Scope: these models. The compared arms share {seeds} seed{plural}, fewer than {MIN_SEEDS}, so every "
                 "verdict is about these trained models (a paired bootstrap over test samples), not about the data: "
                 f"two models of one recipe differing only in seed can differ too. Paper-level verdicts need at least "
                 f"{MIN_SEEDS} seeds (study.seeds).")
    elif counts[0] >= MIN_SEEDS:
        scope = (f"Scope: the data. The compared arms share {seeds} seeds; every verdict comes from a Student t over the "
                 "per-seed differences, so it is about the recipes (real vs synthetic data), not only these models.")
    else:
        scope = (f"Scope per claim (column 'scope'): claims whose arms share at least {MIN_SEEDS} seeds are about the data "
                 f"(a Student t over the per-seed differences); the others, with {counts[0]} seed{plural} or more but fewer "
                 f"than {MIN_SEEDS}, are about these models (a paired bootstrap over test samples).")
    text = (
        "Each claim of the two papers, tested on this run. A − B is the difference of the metric between the "
        f"groups ({confidence:.0%} two-sided interval). 'greater' claims are supported when the whole interval is on the "
        "claimed side; 'matches or beats' claims are non-inferiority tests: supported when the bound on the metric's "
        "bad side clears the margin (a clearly better clone is supported), contradicted when the whole interval is "
        "worse than the margin. Claims that pick (the best clone, the two most different prompt strategies) repeat "
        "the pick inside every bootstrap draw, or adjust for it (Bonferroni) over seeds, so the pick does not favour "
        "them. p is the two-sided p-value of A − B at that boundary (p < "
        f"{alpha:.2g} exactly when the interval excludes it). {len(tested)} claims were tested; the Holm column applies "
        f"Holm's step-down to their p-values, which keeps the family-wise error rate across them at most {alpha:.2g}."
        + (" The generator claims (Adamkiewicz et al.) correlate instead: A − B is Spearman's ρ across the compared "
           "generators between a generator metric and their clones' clean accuracy (or the difference of two such "
           "ρ), per seed, with a Student t over the seeds; A lists the generators, B the second metric."
           if any(f.claim.kind == "rank-correlation" for f in findings) else ""))
    notes = probe_notes(rows) if rows is not None else []
    return ([Paragraph(scope), Paragraph(text, css="note"),
             Table(columns(confidence), [f.row() for f in findings], caption="The papers' findings, checked",
                   css_cells=[f.css() for f in findings])]
            + ([Heading("What the probes measure", level=3)] + [Paragraph(n, css="note") for n in notes] if notes else []))


def _drop_empty(cols: List[str], rows: List[List[Any]], keep: int = 2):
    """``cols`` and ``rows`` without the columns (after the first ``keep``) that are empty in every row."""
    empty = {"–", None}
    idx = [i for i in range(len(cols)) if i < keep or any(r[i] not in empty for r in rows)]
    return [cols[i] for i in idx], [[r[i] for i in idx] for r in rows]


def main_table(summary: Dict[str, Dict], tags: pd.DataFrame) -> Table:
    eps = {attack: _eps_key(summary, attack) for attack in ATTACK_COLUMNS}
    cols = ["model", "arm"] + [label + (f" @{eps[key]}" if eps.get(key) else "") for key, label in MAIN_COLUMNS]
    rows = []
    for _, t in tags.iterrows():
        m = summary.get(t["model"], {})
        row: List[Any] = [t["model"], t["arm"]]
        for key, _ in MAIN_COLUMNS:
            value = _attack_value(m, key, eps[key]) if key in eps else m.get(key)
            row.append(None if value is None else round(float(value), 4))
        rows.append(row)
    cols, rows = _drop_empty(cols, rows)
    return Table(cols, rows, caption="Every model of the run (fractions; lower is better for ECE, mCE, BG-gap, clutter "
                                     "gap, FPR95)")


def attack_table(summary: Dict[str, Dict], tags: pd.DataFrame) -> Optional[Table]:
    """Models x every attack and epsilon of the run (the sweep; the findings read ``pgd_paper``)."""
    keys = sorted({k for m in summary.values() for k in m if "_acc@" in k and k.split("_acc@")[0] in
                   ("fgsm", "pgd_linf", "pgd_l2", "autoattack", "pgd_paper")},
                  key=lambda k: (k.split("_acc@")[0], eval_fraction(k.split("@", 1)[1])))
    if not keys:
        return None
    rows = [[t["model"], t["arm"]] + [None if summary.get(t["model"], {}).get(k) is None
                                      else round(float(summary[t["model"]][k]), 4) for k in keys]
            for _, t in tags.iterrows()]
    return Table(["model", "arm"] + [k.replace("_acc@", " @") for k in keys], rows,
                 caption="Robust accuracy over the attack sweep (pgd_paper: Singh et al.'s setting, which the findings read)")


def arm_table(summary: Dict[str, Dict], tags: pd.DataFrame, confidence: float) -> Optional[Table]:
    """Mean ± CI over seeds per (arm, strategy), when the run has several seeds."""
    from .stats import format_ci, mean_ci

    if tags["seed"].nunique() < 2:
        return None
    keys = [("clean_acc", "clean acc"), ("ece", "ECE"), ("corruption_acc", "corruption acc"), ("shape_bias", "shape bias"),
            ("bg_gap", "BG-gap"), ("clutter_gap", "clutter gap"), ("ood_auroc", "OOD AUROC")]
    rows = []
    for (arm, strategy), g in tags.groupby(["arm", tags["strategy"].fillna("")], sort=False):
        row: List[Any] = [arm, strategy or "–", len(g)]
        for key, _ in keys:
            vals = [summary.get(m, {}).get(key) for m in g["model"]]
            vals = [v for v in vals if v is not None]
            row.append(format_ci(mean_ci(vals, confidence)) if vals else "–")
        rows.append(row)
    cols, rows = _drop_empty(["arm", "strategy", "seeds"] + [label for _, label in keys], rows, keep=3)
    return Table(cols, rows, caption=f"Mean ± {int(confidence * 100)}% CI (Student t) over seeds")


def shape_bias_table(summary: Dict[str, Dict], tags: pd.DataFrame,
                     class_names: Optional[Sequence[str]] = None) -> Optional[Table]:
    """Models x shape categories: the shape bias per category (``summarize``'s ``shape_bias_per_class``),
    ``–`` where a model made no shape or texture decision on a category; None without shape-bias rows."""
    classes = plots.shape_bias_classes(summary, list(tags["model"]))
    if not classes:
        return None
    rows = []
    for model in tags["model"]:
        m = summary.get(model, {})
        per = {int(k): v for k, v in (m.get("shape_bias_per_class") or {}).items()}
        overall = m.get("shape_bias")
        rows.append([model, "–" if overall is None else round(float(overall), 4)]
                    + ["–" if per.get(c) is None else round(float(per[c]), 4) for c in classes])
    return Table(["model", "all"] + [plots.class_label(c, class_names) for c in classes], rows,
                 caption="Shape bias per shape category of the cue-conflict stimuli (fraction of shape decisions among "
                         "shape-or-texture decisions; 'all' weighs the categories by their decisions; – = no decision)")


def _class_names(cfg) -> List[str]:
    from ..data import data_options, dataset_entry

    return list(dataset_entry(cfg.data.dataset).classes(**data_options(cfg.data))[0])


def _store_grids(inputs: Dict[str, Any], folder: Path, per_class: int = 8, skip: Sequence[str] = ()) -> List[Figure]:
    """A grid of each generated store but the stages in ``skip`` (the compared generators' stores, which
    :func:`generator_grid` shows side by side)."""
    from ..data.store import load_store

    figures = []
    for name, out in inputs.items():
        if not name.startswith("generate-") or "store" not in out or name in skip:
            continue
        store = load_store(out["store"], kept_only=True)
        grid = set_grid(store, per_class=per_class)  # decodes only the images shown
        path = save_png(grid, folder / "figures" / f"samples-{name[len('generate-'):]}.png")
        figures.append(Figure(path, f"{name}: first {per_class} kept images per class ({len(store)} kept of {out.get('made', '?')})"))
    return figures


def _guidance_grids(cfg, folder: Path, scales: Sequence[float], per_class: int = 6, max_classes: int = 10) -> List[Figure]:
    """Samples at several guidance scales, same prompts and seeds (the scale is the only change), for
    the first ``max_classes`` classes of the dataset, from the study's own generator."""
    from ..data import dataset_entry
    from ..device import resolve_device
    from ..distributed.worker import build_generator

    classes = dataset_entry(cfg.data.dataset).classes()[0][:max_classes]
    gen = build_generator({"name": cfg.generate.generator, "weights": cfg.generate.model,
                           "options": {**cfg.generate.generator_options, "device": resolve_device(cfg.device)}})
    prompts = [f"a photo of a {c}" for c in classes for _ in range(per_class)]
    seeds = list(range(len(prompts)))
    figures = []
    for g in scales:
        out = gen(prompts, seeds, guidance=float(g), steps=cfg.generate.steps, scheduler=cfg.generate.scheduler,
                  batch_size=cfg.generate.batch_size)
        path = save_png(make_grid(out.images, rows=len(classes), scale=2, row_labels=list(classes)),
                        folder / "figures" / f"guidance-{g:g}.png")
        figures.append(Figure(path, f"guidance {g:g}, {cfg.generate.steps} {cfg.generate.scheduler} steps, prompt 'a photo of a {{class}}'"))
    return figures


GENERATOR_METRICS = [("precision", "precision"), ("recall", "recall"), ("density", "density"),
                     ("coverage", "coverage"), ("fd", "Fréchet distance"), ("diversity", "diversity")]
CAS = ("cas", "CAS")  # in the table where the compare stage had a real-trained model; not a rank-correlation metric


def _has_cas(compare: dict) -> bool:
    """Whether every compared store has a classification accuracy score (the compare stage had a real model)."""
    return all(CAS[0] in r["overall"] for r in compare["stores"].values())


def generator_table(compare: dict, summary: Dict[str, Dict], tags: pd.DataFrame) -> tuple:
    """Rows of the generator table: each generator's metrics (``synthclone compare``'s, class-averaged)
    and the clean and corruption accuracy of the clones trained on its store (mean over seeds), and the
    points of the scatter (label, metric values, mean and standard deviation of the clones' clean accuracy)."""
    rows, points = [], []
    for label, r in compare["stores"].items():
        strategy = compare["strategy_tags"][label]
        clones = tags[tags["arm"].isin(["synthetic", "generator"]) & (tags["strategy"] == strategy)]["model"]
        acc = [summary[m]["clean_acc"] for m in clones if summary.get(m, {}).get("clean_acc") is not None]
        cor = [summary[m]["corruption_acc"] for m in clones if summary.get(m, {}).get("corruption_acc") is not None]
        mean = float(np.mean(acc)) if acc else None
        sd = float(np.std(acc, ddof=1)) if len(acc) > 1 else None
        cas = [round(r["overall"][CAS[0]], 4)] if _has_cas(compare) else []
        rows.append([label] + [round(r["overall"][k], 4) for k, _ in GENERATOR_METRICS] + cas +
                    [None if mean is None else (f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"),
                     round(float(np.mean(cor)), 3) if cor else None, len(acc)])
        points.append((label, r["overall"], mean, sd))
    return rows, points


def correlation_table(rows: pd.DataFrame, tags: pd.DataFrame, compare: dict, confidence: float) -> Optional[Table]:
    """Spearman ρ across the generators between each generator metric and the clones' clean accuracy, per
    seed, with its interval over the seeds (:func:`findings.metric_correlations`); None with < 3 generators."""
    from .findings import metric_correlations
    from .stats import format_ci

    metrics = GENERATOR_METRICS + ([CAS] if _has_cas(compare) else [])
    found = metric_correlations(rows, tags, generators_of(compare), [k for k, _ in metrics], confidence)
    if all(f.a_value is None for f in found):
        return None
    out = []
    for (key, label), f in zip(metrics, found):
        ci = "–" if f.estimate is None else format_ci(f.estimate, 3)
        out.append([label, "–" if f.a_value is None else round(f.a_value, 3), ci, f.n_seeds, f.note])
    return Table(["generator metric", "ρ (mean over seeds)", f"{confidence:.0%} interval", "seeds", "how"], out,
                 caption="Rank correlation across generators between each generator metric and the clones' clean "
                         "accuracy (Fréchet distance: lower is closer to the real images, so a negative ρ is the "
                         "expected sign); descriptive, without verdicts: the findings table tests precision and coverage")


def generator_grid(inputs: Dict[str, Any], compare: dict, folder: Path, per_class: int = 4) -> Optional[Figure]:
    """The compared generators' stores side by side: one panel per generator, one row per class, its first
    ``per_class`` kept images (the same prompts and seeds in every store)."""
    from ..data.store import load_store
    from .grids import side_by_side

    stages = compare.get("stages") or {}
    panels = [(label, load_store(inputs[stages[label]]["store"], kept_only=True)) for label in compare["stores"]
              if stages.get(label) in inputs and "store" in inputs[stages[label]]]
    if len(panels) < 2:
        return None
    path = save_png(side_by_side(panels, per_class=per_class), folder / "figures" / "generators-samples.png")
    return Figure(path, f"The compared generators side by side: the first {per_class} kept images per class of each "
                        "store (same prompts and seeds)")


def generator_section(inputs: Dict[str, Any], compare: dict, summary: Dict[str, Dict], rows: pd.DataFrame,
                      tags: pd.DataFrame, folder: Path, confidence: float) -> list:
    """The report's generator comparison (issue 18): a table, the rank correlations, clean accuracy against
    each metric, and the stores side by side."""
    table_rows, points = generator_table(compare, summary, tags)
    has_cas = _has_cas(compare)
    cols = (["generator"] + [label for _, label in GENERATOR_METRICS] + ([CAS[1]] if has_cas else [])
            + ["clone clean acc (mean ± s.d.)", "clone corruption acc", "clones"])
    out = [Heading("Generators compared"),
           Paragraph(f"Each generator's store of the first prompt strategy against the real test split on "
                     f"{compare['features']} features ({compare['per_class']} images per class, k = {compare['k']}; "
                     "definitions and sources in docs/generators.md), and the clones trained on it. The findings "
                     "table tests whether fidelity (precision) or coverage predicts the clones' accuracy."
                     + (f" CAS: the accuracy of {compare['cas_model']} (trained on real data) on each store."
                        if has_cas and compare.get("cas_model") else "")),
           Table(cols, table_rows, caption="Generators: fidelity (precision, density), diversity and coverage (recall, "
                                           "coverage, diversity), Fréchet distance, and their clones")]
    corr = correlation_table(rows, tags, compare, confidence) if len(rows) else None
    if corr is not None:
        out.append(corr)
    path = plots.generator_scatter(points, [k for k, _ in GENERATOR_METRICS], folder / "figures" / "generators.png")
    if path is not None:
        out.append(Figure(path, "Clone clean accuracy (mean over seeds, bars one standard deviation) against each "
                                "generator metric"))
    grid = generator_grid(inputs, compare, folder)
    if grid is not None:
        out.append(grid)
    return out


def build_report(cfg, run_dir: Path, inputs: Dict[str, Any], models: Sequence[Any], folder: Path):
    """Write the report of a finished study into ``folder`` in each of ``report.formats``; returns the paths."""
    from ..robustness import summarize
    from ..data.store import write_table

    folder = Path(folder)
    frames, tag_rows, devices = [], [], set()
    for m in models:
        out = inputs.get(f"bench-{m.name}")
        if out is None:
            continue
        frames.append(pd.read_parquet(out["rows"]))
        hw = out.get("hardware") or {}
        if hw:
            devices.add(hw.get("gpu") or hw.get("device"))
        tag_rows.append(m.tags())
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    tags = pd.DataFrame(tag_rows, columns=["model", "arm", "seed", "strategy", "regime"])
    from ..robustness import ROWS_SCHEMA

    from ..config import config_hash, file_provenance
    from ..paths import atomic_write_text

    digest = config_hash(cfg)
    write_table(rows, folder / "rows.parquet", schema=ROWS_SCHEMA, config_hash=digest)
    real = tags[tags["arm"] == "real"]["model"]
    baseline = real.iloc[0] if len(real) else None
    summary = summarize(rows, baseline=baseline, n_bins=cfg.bench.ece_bins) if len(rows) else {}
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=2))
    compare = json.loads(Path(inputs["compare"]["compare"]).read_text()) if "compare" in inputs else None
    findings = evaluate_claims(rows, tags, cfg.report.confidence, ece_bins=cfg.bench.ece_bins,
                               baseline_prompts=cfg.study.baseline_prompts,
                               generators=generators_of(compare)) if len(rows) else []
    atomic_write_text(folder / "findings.json", json.dumps(findings_records(findings), indent=2, default=str))
    # summary.json and findings.json keep their plain shapes (models -> metrics, a list of claims); what made them:
    atomic_write_text(folder / "provenance.json", json.dumps({
        **file_provenance("synthclone.report/1", digest),
        "files": {"summary.json": "synthclone.report-summary/1", "findings.json": "synthclone.findings/1",
                  "rows.parquet": ROWS_SCHEMA}}, indent=2))

    doc = Document(f"synthclone report: {cfg.name}")
    seeds = sorted(tags["seed"].unique().tolist()) if len(tags) else []
    doc.add(Paragraph(
        f"Dataset {cfg.data.dataset}; generator {cfg.generate.generator} ({cfg.generate.steps} {cfg.generate.scheduler} steps, "
        f"guidance {cfg.generate.guidance:g}, {cfg.generate.per_class} images per class per prompt strategy); "
        f"recognizer {cfg.train.model}, {cfg.train.epochs} epochs; seeds {seeds}; {len(tags)} models; "
        f"{len(rows):,} per-sample probe rows. Baseline for mCE: {baseline or 'none'}."
        + (f" Benchmarked on {', '.join(sorted(devices))}." if devices else "")))

    if cfg.clip.model.startswith("open_clip:") and isinstance(cfg.clip.pretrained, str) and cfg.clip.pretrained.lower() == "none":
        doc.add(Paragraph(f"Warning: the CLIP ({cfg.clip.model}) ran with random weights (clip.pretrained: none), a "
                          "smoke test: the zero-shot, classifier-tuning and CLIP-filter numbers say nothing about "
                          "the pretrained model."))
    doc.add(Heading("Findings"))
    for block in findings_section(findings, cfg.report.confidence, rows):
        doc.add(block)

    doc.add(Heading("Models"))
    class_names = _class_names(cfg) if any("shape_bias_per_class" in m for m in summary.values()) else None
    if len(tags):
        doc.add(main_table(summary, tags))
        sweep = attack_table(summary, tags)
        if sweep is not None:
            doc.add(sweep)
        agg = arm_table(summary, tags, cfg.report.confidence)
        if agg is not None:
            doc.add(agg)
        per_class = shape_bias_table(summary, tags, class_names)
        if per_class is not None:
            doc.add(per_class)

    doc.add(Heading("Plots"))
    names = list(tags["model"])
    first_seed = list(tags[(tags["seed"] == seeds[0]) | (tags["arm"] == "zero-shot")]["model"]) if seeds else []
    arms = dict(zip(tags["model"], tags["arm"]))
    figs = folder / "figures"
    for path, caption in [
        (plots.reliability(rows, first_seed, figs / "reliability.png", cfg.bench.ece_bins),
         f"Reliability diagrams before and after temperature scaling (fitted on the validation split), seed {seeds[0] if seeds else 0}"),
        (plots.corruption_severity(rows, names, figs / "corruption-severity.png"),
         "Top-1 error against corruption severity, averaged over corruptions; each recipe's mean over its seeds, "
         "error bars one standard deviation over seeds"),
        (plots.robust_accuracy(rows, names, figs / "robust-accuracy.png"),
         "Robust accuracy against epsilon; each recipe's mean over its seeds, error bars one standard deviation"),
        (plots.shape_bias(summary, names, figs / "shape-bias.png"), "Shape bias on cue-conflict stimuli"),
        (plots.shape_bias_per_class(summary, first_seed, figs / "shape-bias-per-class.png", class_names),
         f"Shape bias per shape category (markers), each model's overall shape bias (dashed), seed {seeds[0] if seeds else 0}"),
        (plots.ood_roc(rows, first_seed, figs / "ood-roc.png"), f"OOD detection ROC (maximum softmax probability), seed {seeds[0] if seeds else 0}"),
        (plots.accuracy_vs_robustness(summary, names, arms, figs / "accuracy-vs-robustness.png"),
         "Clean accuracy against accuracy under corruptions"),
    ]:
        if path is not None:
            doc.add(Figure(path, caption))

    doc.add(Heading("Synthetic data"))
    gen_rows = []
    for name, out in inputs.items():
        if name.startswith("generate-") and "store" in out:
            gen_rows.append([name[len("generate-"):], out.get("made"), out.get("kept"), out.get("seconds"),
                             round(out["made"] / out["seconds"], 1) if out.get("seconds") else None,
                             min((out.get("unique_prompts") or {"": 0}).values())])
    if gen_rows:
        doc.add(Table(["store", "images", "kept by filters", "seconds", "images/s", "unique prompts (min per class)"], gen_rows,
                      caption="Generated stores"))
    # the compared stores (the main generator's first one among them) are shown side by side in their section
    for fig in _store_grids(inputs, folder, skip=list((compare or {}).get("stages", {}).values())):
        doc.add(fig)
    if compare is not None:
        for block in generator_section(inputs, compare, summary, rows, tags, folder, cfg.report.confidence):
            doc.add(block)
    scales = list(getattr(cfg.report, "guidance_grid", []) or [])
    for fig in _guidance_grids(cfg, folder, scales) if scales else []:
        doc.add(fig)

    doc.add(Heading("Run"))
    stage_file = Path(run_dir) / "stages.json"
    if stage_file.is_file():
        timing = json.loads(stage_file.read_text())
        doc.add(Table(["stage", "seconds", "peak MiB", "peak of", "cached"],
                      [[t["stage"], t["seconds"], t.get("peak_mib"), t.get("peak_of"), t["cached"]] for t in timing],
                      caption="Stages of this run (before the report): wall time, and the synthclone process's peak "
                              "resident memory (worker processes not counted), measured from the stage's start "
                              "('stage') where Linux resets the peak, else the run's peak so far ('run so far'); "
                              "cached = reused from an earlier run"))
    doc.add(Paragraph(f"Run directory: {run_dir}. Per-sample rows: {folder / 'rows.parquet'}; headline numbers: "
                      f"{folder / 'summary.json'}; findings: {folder / 'findings.json'}.", css="note"))
    return write(doc, folder, cfg.report.formats)

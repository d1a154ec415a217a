"""The two papers' claims, each tested with this run's per-sample rows.

A claim compares groups of models on one metric. Per seed, a group's value is the mean over its
models; the claim's estimate is the difference A - B. With at least :data:`stats.MIN_SEEDS` (3) seeds
at which both groups have models the interval is a Student-t interval over the per-seed differences
and the verdict's ``scope`` is "the data (N seeds)": seeds are the units that a statement about real
vs synthetic *data* generalises over. With fewer, it is a paired bootstrap over the test samples
(every model re-evaluated on the same resampled sample ids) and the scope is "these models": the
verdict says whether these trained models differ, which two seeds of one arm can do too. Verdicts
read the two-sided interval against one boundary θ0 (see :mod:`.stats`):

* ``greater`` claims ("A - B > margin"): θ0 = margin; supported when the interval lies above it,
  contradicted when it lies below it;
* ``noninferior`` / ``best-noninferior`` claims ("A matches or beats B"): a one-sided
  non-inferiority test oriented by :attr:`Metric.higher_is_better`; θ0 = -margin (or +margin when
  lower is better); supported when the interval clears θ0 on the good side (a clearly better A is
  supported), contradicted when the whole interval lies beyond θ0 on the bad side (A is worse than B
  by more than the margin);
* otherwise inconclusive. A claim whose arms were not run says so.

Claims that pick models never pick on the test rows and then test as if nothing had been picked.
"Some synthetic clone matches or beats" is a claim about θ = the best clone's difference, "the
prompt strategy changes robustness" about θ = the largest difference between two strategies; the
pick is part of the procedure: repeated inside every bootstrap draw on centred draws (one seed), or
Bonferroni over the candidates on the claim's side (seeds) — :func:`stats.select_bootstrap_interval`,
:func:`stats.select_t_interval`. (Picking on validation rows would need every probe run twice.)
Under identical arms the rate of "supported" stays at most (1 - confidence) / 2
(``tests/test_findings_null.py``).

Robustness has one operationalisation for every verdict: the share of clean accuracy a model keeps
under the corruptions or the attack; the absolute accuracy difference is computed beside it by the
same procedure (``Finding.secondary``) without a verdict. "Much more vulnerable" means at least
:data:`MUCH` more of the share lost. Adversarial claims read PGD at Singh et al.'s setting (condition
``pgd_paper``, :data:`synthclone.robustness.adversarial.PAPER_PGD`), not the epsilon sweep. BG-gap
comes only from the ImageNet-9 folders (real backgrounds); built variants give a clutter gap and no
background verdict.

The generator claims (issue 18) ask which property of a text-to-image generator predicts the clone it
trains: per seed, Spearman's rank correlation across the study's generators between a generator metric
(precision for fidelity, coverage for diversity; ``synthclone compare``'s) and the clones' clean
accuracy, and the difference of the two; a Student t over at least 3 seeds, scoped to these generators.
Per-seed ρ takes few values when there are few generators, and a t over three of them rejects too often
(6.6% one-sided instead of 2.5% at three generators, simulated), so a verdict also needs a permutation
test (each seed's generators permuted on their own; exact level) and p is the larger of the two p-values
(the one place where p and the interval can disagree: the interval may exclude 0 with p above the level).
Under generators that make equally good clones the rate of "supported" stays at most (1 - confidence) / 2
(``tests/test_generator_findings.py``).

Each tested claim has the two-sided p-value of "A - B = θ0" (p < 1 - confidence exactly when the
interval excludes θ0); :func:`adjust_holm` applies Holm's step-down across the claims of one report
and gives ``verdict_holm`` beside the raw ``verdict``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from . import stats

# ------------------------------------------------------------------------------ per-sample metrics
# Each metric turns one model's rows into a per-sample table (index sample_id, numeric columns)
# and a reducer from that table's values (an array of rows) to one number.


def _clean(rows: pd.DataFrame) -> pd.DataFrame:
    p = rows[(rows["probe"] == "clean") & (rows["condition"] == "clean")]
    return p.groupby("sample_id")["correct"].mean().to_frame("clean")


def _mean_correct(rows: pd.DataFrame, probe: str, condition: Optional[str] = None, name: str = "v") -> pd.DataFrame:
    """Per-sample mean correctness over ``probe``'s rows (of ``condition`` when given)."""
    p = rows[rows["probe"] == probe]
    if condition is not None:
        p = p[p["condition"] == condition]
    return p.groupby("sample_id")["correct"].mean().to_frame(name)


def _joined(*frames: pd.DataFrame) -> pd.DataFrame:
    out = frames[0]
    for f in frames[1:]:
        out = out.join(f, how="inner")
    return out


def _ece_table(rows: pd.DataFrame) -> pd.DataFrame:
    p = rows[(rows["probe"] == "calibration") & (rows["condition"] == "uncalibrated")]
    return p.set_index("sample_id")[["confidence", "correct"]].astype(float)


def _ece_reducer(n_bins: int) -> Callable[[np.ndarray], float]:
    from ..robustness.metrics import ece

    return lambda v: float(ece(v[:, 0], v[:, 1], n_bins))


def _shape_table(rows: pd.DataFrame) -> pd.DataFrame:
    p = rows[rows["probe"] == "shape-bias"]
    if p.empty:
        return pd.DataFrame(columns=["shape_hit", "texture_hit"])
    ex = p["extra"].map(json.loads)
    shape = ex.map(lambda e: e["shape"]).to_numpy()
    texture = ex.map(lambda e: e["texture"]).to_numpy()
    keep = shape != texture
    pred = p["prediction"].to_numpy()
    return pd.DataFrame({"shape_hit": (pred == shape)[keep].astype(float), "texture_hit": (pred == texture)[keep].astype(float)},
                        index=p["sample_id"].to_numpy()[keep]).groupby(level=0).mean()


def _shape_reduce(v: np.ndarray) -> float:
    hits = v[:, 0].sum() + v[:, 1].sum()
    return float(v[:, 0].sum() / hits) if hits else float("nan")


def _bg_table(rows: pd.DataFrame) -> pd.DataFrame:
    p = rows[(rows["probe"] == "background") & rows["condition"].isin(["mixed_same", "mixed_rand"])]
    if set(p["condition"]) != {"mixed_same", "mixed_rand"}:
        return pd.DataFrame(columns=["mixed_same", "mixed_rand"], dtype=float)
    return p.pivot_table(index="sample_id", columns="condition", values="correct", aggfunc="mean")[["mixed_same", "mixed_rand"]]


@dataclass
class Metric:
    """A findings metric: ``table`` turns one model's rows into per-sample values, ``reduce`` those
    values into one number; ``measures`` says what it measures in the report, ``missing`` what to
    do when the run gave it no rows."""

    key: str
    label: str
    table: Callable[[pd.DataFrame], pd.DataFrame]
    reduce: Callable[[np.ndarray], float]
    higher_is_better: bool = True
    measures: str = ""
    missing: str = "its probe produced no rows for these models (bench.probes)"
    # the same number from the table's column means (NaNs left out), on (..., columns) arrays, when
    # ``reduce`` is such a function: the bootstrap then runs a block of draws at once
    from_means: Optional[Callable[[np.ndarray], np.ndarray]] = None


def _first(m: np.ndarray) -> np.ndarray:
    return m[..., 0]


def _ratio_of_means(m: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m[..., 0] > 0, m[..., 1] / m[..., 0], np.nan)


def _shape_of_means(m: np.ndarray) -> np.ndarray:
    total = m[..., 0] + m[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, m[..., 0] / total, np.nan)


def _gap_of_means(m: np.ndarray) -> np.ndarray:
    return m[..., 0] - m[..., 1]


def column_means(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """NaN-skipping column means of ``values`` (n, c) over each row of resamples ``idx`` (m, n): (m, c)."""
    present = ~np.isnan(values)
    sums = np.where(present, values, 0.0)[idx].sum(axis=1)
    counts = present[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def _ratio(num: float, den: float) -> float:
    """``num / den``; undefined (nan) when ``den <= 0`` (a model with no clean accuracy keeps no share of it)."""
    return float(num / den) if den > 0 else float("nan")


PGD_PAPER = "pgd_paper"   # the adversarial probe's condition at Singh et al.'s setting (robustness.adversarial.PAPER_PGD)
_PGD_MISSING = ("the run has no PGD rows at Singh et al.'s setting (condition pgd_paper: L-inf, eps 1/255, 20 steps); "
                "keep bench.options.paper_attack on (the default) and the adversarial probe in bench.probes")
_CORR_MISSING = "the run has no corruption rows (the corruptions probe, bench.probes)"
_BG_MISSING = ("BG-gap needs images with real backgrounds, the ImageNet-9 variants (bench.options.imagenet9_root); "
               "variants built from objects on black measure distraction by pasted clutter (the clutter gap in the "
               "table), not background reliance, so they give no background verdict")


def make_metrics(ece_bins: int = 15) -> Dict[str, Metric]:
    """The findings' metrics; ``ece_bins`` is the configured calibration bin count (``bench.ece_bins``).

    Robustness has one operationalisation for every verdict: the share of clean accuracy a model keeps
    (``*_retained``: accuracy under the corruptions or the attack / clean accuracy). The absolute
    accuracies (``corruption_acc``, ``pgd_acc``) are reported beside it, without a verdict. Adversarial
    metrics read PGD at Singh et al.'s setting (``pgd_paper``); the epsilon sweep is in the tables and plots.
    """
    pgd = lambda r: _mean_correct(r, "adversarial", PGD_PAPER, name="pgd")  # noqa: E731
    corr = lambda r: _mean_correct(r, "corruptions", name="corr")  # noqa: E731
    return {
        "clean_acc": Metric("clean_acc", "clean accuracy", _clean, lambda v: float(v[:, 0].mean()),
                            measures="top-1 accuracy on the clean test split", from_means=_first),
        "corruption_acc": Metric("corruption_acc", "accuracy under corruptions", corr, lambda v: float(v[:, 0].mean()),
                                 measures="mean accuracy over every corruption and severity cell the model was scored on",
                                 missing=_CORR_MISSING, from_means=_first),
        "corruption_retained": Metric("corruption_retained", "share of clean accuracy kept under corruptions",
                                      lambda r: _joined(_clean(r), corr(r)), lambda v: _ratio(v[:, 1].mean(), v[:, 0].mean()),
                                      measures="corruption accuracy / clean accuracy, on the samples both probes scored",
                                      missing=_CORR_MISSING, from_means=_ratio_of_means),
        "pgd_acc": Metric("pgd_acc", "PGD accuracy (L-inf, eps 1/255, 20 steps)", pgd, lambda v: float(v[:, 0].mean()),
                          measures="accuracy under PGD at Singh et al.'s setting (L-inf, eps 1/255, 20 steps of 2/255, "
                                   "random start)", missing=_PGD_MISSING, from_means=_first),
        "pgd_retained": Metric("pgd_retained", "share of clean accuracy kept under PGD (L-inf, eps 1/255)",
                               lambda r: _joined(_clean(r), pgd(r)), lambda v: _ratio(v[:, 1].mean(), v[:, 0].mean()),
                               measures="PGD accuracy at Singh et al.'s setting / clean accuracy", missing=_PGD_MISSING,
                               from_means=_ratio_of_means),
        "ece": Metric("ece", f"expected calibration error ({ece_bins} bins)", _ece_table, _ece_reducer(ece_bins),
                      higher_is_better=False,
                      measures=f"ECE of the uncalibrated softmax confidence, {ece_bins} equal-width bins (bench.ece_bins)"),
        "shape_bias": Metric("shape_bias", "shape bias", _shape_table, _shape_reduce,
                             measures="shape decisions / (shape + texture decisions) on cue-conflict stimuli",
                             from_means=_shape_of_means),
        "bg_gap": Metric("bg_gap", "BG-gap (mixed_same - mixed_rand)", _bg_table,
                         lambda v: float(np.nanmean(v[:, 0]) - np.nanmean(v[:, 1])), higher_is_better=False,
                         measures="accuracy on ImageNet-9 mixed_same minus mixed_rand: reliance on the background",
                         missing=_BG_MISSING, from_means=_gap_of_means),
    }


METRICS: Dict[str, Metric] = make_metrics()


# ------------------------------------------------------------------------------------------ claims


@dataclass
class Claim:
    key: str
    text: str
    paper: str
    metric: str
    a: Dict[str, str]                 # selector of group A: {"arm": ..., "strategy": ...}
    b: Dict[str, str]
    kind: str = "greater"             # greater | noninferior | best-noninferior | spread | rank-correlation
    margin: float = 0.0
    secondary: Optional[str] = None   # a second metric reported beside the verdict (absolute accuracy)

    def null(self, metric: Metric) -> float:
        """The boundary θ0 the verdict and the p-value read A - B against."""
        if self.kind in ("noninferior", "best-noninferior"):
            return stats.noninferiority_null(self.margin, metric.higher_is_better)
        return self.margin


HE = "He et al., ICLR 2023"
SINGH = "Singh et al., CVPR-W 2024"

MUCH = 0.05  # "much more vulnerable": at least 5 points more of the clean accuracy lost

CLAIMS: List[Claim] = [
    Claim("clean-gap", "Synthetic clones trail real models in clean accuracy.", SINGH, "clean_acc",
          {"arm": "real"}, {"arm": "synthetic"}),
    Claim("adversarial", f"Synthetic clones are much more vulnerable to adversarial noise: real models keep at least "
          f"{MUCH} more of their clean accuracy under PGD.", SINGH, "pgd_retained", {"arm": "real"}, {"arm": "synthetic"},
          margin=MUCH, secondary="pgd_acc"),
    Claim("corruptions", f"Synthetic clones are much more vulnerable to common corruptions: real models keep at least "
          f"{MUCH} more of their clean accuracy.", SINGH, "corruption_retained", {"arm": "real"}, {"arm": "synthetic"},
          margin=MUCH, secondary="corruption_acc"),
    Claim("shape-match", "Some synthetic clone matches or beats the real model on shape bias (at most 0.05 lower).",
          SINGH, "shape_bias", {"arm": "synthetic"}, {"arm": "real"}, "best-noninferior", 0.05),
    Claim("background-match", "Some synthetic clone matches or beats the real model on background bias (BG-gap at most "
          "0.05 higher).", SINGH, "bg_gap", {"arm": "synthetic"}, {"arm": "real"}, "best-noninferior", 0.05),
    Claim("calibration-match", "Some synthetic clone matches or beats the real model on calibration (ECE at most 0.02 "
          "higher).", SINGH, "ece", {"arm": "synthetic"}, {"arm": "real"}, "best-noninferior", 0.02),
    Claim("mixing-corruptions", "Mixing real and synthetic data improves corruption robustness over synthetic alone.",
          SINGH, "corruption_retained", {"arm": "mixed"}, {"arm": "synthetic", "strategy": "@mixed"},
          secondary="corruption_acc"),
    Claim("mixing-adversarial", "Mixing real and synthetic data improves adversarial robustness over synthetic alone.",
          SINGH, "pgd_retained", {"arm": "mixed"}, {"arm": "synthetic", "strategy": "@mixed"}, secondary="pgd_acc"),
    Claim("prompt-robustness", "The prompt strategy changes robustness (the share of clean accuracy kept under "
          "corruptions, the two most different strategies).", SINGH, "corruption_retained", {"arm": "synthetic"},
          {"arm": "synthetic"}, "spread", secondary="corruption_acc"),
    Claim("classifier-tuning", "Synthetic data improves zero-shot classification through classifier tuning.", HE,
          "clean_acc", {"arm": "classifier-tuning"}, {"arm": "zero-shot"}),
    Claim("clip-filter", "The CLIP-confidence filter helps (filtered vs unfiltered synthetic data).", HE, "clean_acc",
          {"arm": "synthetic", "strategy": "@unfiltered"}, {"arm": "unfiltered"}),
    Claim("language-enhancement", "Language enhancement helps (language-enhancement vs template prompts).", HE,
          "clean_acc", {"arm": "synthetic", "strategy": "language-enhancement"}, {"arm": "synthetic", "strategy": "template"}),
    Claim("few-shot", "Real-guided synthetic data helps few-shot learning.", HE, "clean_acc",
          {"arm": "few-shot-guided"}, {"arm": "few-shot-real"}),
    Claim("pretraining", "Synthetic pre-training helps fine-tuning on little real data (vs training from scratch).", HE,
          "clean_acc", {"arm": "pretrain-finetune"}, {"arm": "few-shot-real"}),
    Claim("few-shot-clip", "Real-guided synthetic data helps few-shot classifier tuning of CLIP (real + synthetic "
          "batches vs the real shots alone).", HE, "clean_acc", {"arm": "few-shot-clip-guided"}, {"arm": "few-shot-clip"}),
]


GENERATORS_PAPER = "Adamkiewicz et al., arXiv 2602.19946, 2026"
FIDELITY, COVERAGE = "precision", "coverage"  # the generator metric each generator claim reads (compare.json)

# Issue 18: which property of a generator predicts the clone it trains. Each is a Spearman rank
# correlation across the study's generators between a generator metric (synthclone compare's, against
# the real test split) and the clean accuracy of the clones trained on its store; a over A's metric,
# b over B's (a difference of two correlations when B names one).
GENERATOR_CLAIMS: List[Claim] = [
    Claim("generator-fidelity", "Higher-fidelity generators make better clones: clone clean accuracy rises with the "
          "generator's precision (Spearman rank correlation across generators > 0).", GENERATORS_PAPER, "clean_acc",
          {"arm": "generator", "x": FIDELITY}, {}, "rank-correlation"),
    Claim("generator-coverage", "More diverse, higher-coverage generators make better clones: clone clean accuracy "
          "rises with the generator's coverage (Spearman rank correlation across generators > 0).", GENERATORS_PAPER,
          "clean_acc", {"arm": "generator", "x": COVERAGE}, {}, "rank-correlation"),
    Claim("generator-coverage-vs-fidelity", "Coverage predicts clone accuracy better than fidelity does (rank "
          "correlation with coverage minus rank correlation with precision > 0).", GENERATORS_PAPER, "clean_acc",
          {"arm": "generator", "x": COVERAGE}, {"arm": "generator", "x": FIDELITY}, "rank-correlation"),
]
MIN_GENERATORS = 3  # a rank correlation across fewer generators says nothing


def claims(baseline_prompts: str = "template") -> List[Claim]:
    """:data:`CLAIMS` with the language-enhancement claim compared against ``baseline_prompts``
    (``study.baseline_prompts``: the prompt strategy the config names as its baseline)."""
    from dataclasses import replace as _replace

    out = []
    for c in CLAIMS:
        if c.key == "language-enhancement":
            c = _replace(c, text=f"Language enhancement helps (language-enhancement vs {baseline_prompts} prompts).",
                         b={"arm": "synthetic", "strategy": baseline_prompts})
        out.append(c)
    return out


@dataclass
class Finding:
    claim: Claim
    verdict: str
    estimate: Optional[stats.Interval] = None
    a_value: Optional[float] = None
    b_value: Optional[float] = None
    a_models: List[str] = field(default_factory=list)
    b_models: List[str] = field(default_factory=list)
    note: str = ""
    p_value: Optional[float] = None   # two-sided p of "A - B = θ0"; None when not run
    p_holm: Optional[float] = None    # Holm-adjusted across the report's tested claims
    verdict_holm: str = ""
    metric_label: str = ""
    scope: str = ""                   # "these models" (fewer than stats.MIN_SEEDS seeds) or "the data (N seeds)"
    n_seeds: int = 0                  # seeds at which every compared group has models
    secondary: Optional[stats.Interval] = None   # A - B on claim.secondary, by the same procedure; no verdict

    def row(self) -> List[str]:
        return [
            self.claim.text,
            self.metric_label or METRICS[self.claim.metric].label,
            ", ".join(self.a_models) or "–",
            ", ".join(self.b_models) or "–",
            "–" if self.a_value is None else f"{self.a_value:.3f}",
            "–" if self.b_value is None else f"{self.b_value:.3f}",
            stats.format_ci(self.estimate, 3) if self.estimate else "–",
            stats.format_ci(self.secondary, 3) if self.secondary is not None and np.isfinite(self.secondary.estimate) else "–",
            "–" if self.p_value is None else _format_p(self.p_value),
            self.verdict,
            self.verdict_holm or self.verdict,
            self.scope or "–",
            self.note,
        ]

    def css(self) -> List[str]:
        """Per-cell classes for :meth:`row` (the two verdict cells coloured by verdict)."""
        out = [""] * len(COLUMNS)
        out[COLUMNS.index("verdict")] = self.verdict.replace(" ", "-")
        out[COLUMNS.index("verdict (Holm)")] = (self.verdict_holm or self.verdict).replace(" ", "-")
        return out

    def record(self) -> Dict[str, object]:
        """The finding for ``findings.json``."""
        return {"claim": self.claim.key, "text": self.claim.text, "paper": self.claim.paper, "metric": self.claim.metric,
                "kind": self.claim.kind, "margin": self.claim.margin, "p_value": self.p_value, "p_holm": self.p_holm,
                "verdict": self.verdict, "verdict_holm": self.verdict_holm, "a_value": self.a_value, "b_value": self.b_value,
                "estimate": None if self.estimate is None else self.estimate.as_dict(),
                "secondary_metric": self.claim.secondary,
                "secondary": None if self.secondary is None else self.secondary.as_dict(), "a": self.a_models,
                "b": self.b_models, "scope": self.scope, "n_seeds": self.n_seeds, "note": self.note}


def _format_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


COLUMNS = ["claim", "metric", "A", "B", "A value", "B value", "A − B (CI)", "absolute accuracy A − B (CI)", "p",
           "verdict", "verdict (Holm)", "scope", "how"]


def columns(confidence: float) -> List[str]:
    """:data:`COLUMNS` with the interval's level in the headers (``A − B (95% CI)``)."""
    return [c.replace("(CI)", f"({confidence:.0%} CI)") for c in COLUMNS]


def _select(models: pd.DataFrame, sel: Dict[str, str], other: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    out = models[models["arm"] == sel["arm"]]
    strategy = sel.get("strategy")
    if strategy and strategy.startswith("@"):  # the strategy the named arm used
        ref = models[models["arm"] == strategy[1:]]
        out = out[out["strategy"].isin(set(ref["strategy"]))]
    elif strategy:
        out = out[out["strategy"] == strategy]
    return out


class Evaluator:
    """Evaluates claims over the run's rows (all models) and their tags."""

    def __init__(self, rows: pd.DataFrame, tags: pd.DataFrame, confidence: float = 0.95, n_boot: int = 500, seed: int = 0,
                 ece_bins: int = 15, secondary: bool = True):
        self.metrics = make_metrics(ece_bins)
        self.secondary = secondary  # compute claim.secondary beside the verdict (it never changes the verdict)
        self.rows = rows
        self.tags = tags  # columns: model, arm, seed, strategy
        self.confidence = confidence
        self.n_boot = n_boot
        self.seed = seed
        self._tables: Dict[Tuple[str, str], pd.DataFrame] = {}
        self._by_model: Optional[Dict[str, pd.DataFrame]] = None

    def model_rows(self, model: str) -> pd.DataFrame:
        """The rows of one model (the rows are split by model once)."""
        if self._by_model is None:
            self._by_model = {k: g for k, g in self.rows.groupby("model", sort=False)} if len(self.rows) else {}
        return self._by_model.get(model, self.rows.iloc[0:0])

    def table(self, model: str, metric: str) -> pd.DataFrame:
        key = (model, metric)
        if key not in self._tables:
            self._tables[key] = self.metrics[metric].table(self.model_rows(model))
        return self._tables[key]

    def value(self, model: str, metric: str) -> float:
        t = self.table(model, metric)
        return self.metrics[metric].reduce(t.to_numpy(dtype=float)) if len(t) else float("nan")

    def per_seed(self, metric: str, groups: Sequence[pd.DataFrame]) -> Tuple[list, dict, np.ndarray]:
        """The seeds at which every group has models, each seed's models per group, and each group's value
        at each of those seeds (the mean over its models there): an array (groups, seeds)."""
        def at_seed(group: pd.DataFrame, seed) -> List[str]:
            # the zero-shot model is deterministic and trained on nothing: it serves every seed
            return list(group[(group["seed"] == seed) | (group["arm"] == "zero-shot")]["model"])

        seeds = sorted(set().union(*(set(g["seed"]) for g in groups)))
        members = {s: [at_seed(g, s) for g in groups] for s in seeds}
        used = [s for s in seeds if all(members[s])]
        values = np.array([[np.mean([self.value(m, metric) for m in members[s][g]]) for s in used]
                           for g in range(len(groups))]).reshape(len(groups), len(used))
        return used, members, values

    def compare(self, metric: str, groups: Sequence[pd.DataFrame], pairs: Sequence[Tuple[int, int]],
                pick: int = 1) -> "Comparison":
        """Interval of ``θ = max_c δ_c`` over the contrasts ``δ_c = value(groups[i]) - value(groups[j])``
        for ``(i, j)`` in ``pairs`` (``pick=-1``: ``min_c``); one pair is the plain A - B.

        A group's value at a seed is the mean over its models of that seed (the zero-shot model serves
        every seed); its value is the mean over the seeds at which every group has models. With at least
        :data:`stats.MIN_SEEDS` such seeds the interval is a Student t over the per-seed differences
        (scope: the data); with fewer, a paired bootstrap over the test samples shared by every model
        (scope: these models). With several pairs the pick is part of the procedure (stats.select_*).
        """
        used, members, values = self.per_seed(metric, groups)
        if not used:
            return Comparison(stats.Interval(np.nan, np.nan, np.nan, 0, "no shared seeds"), 0, np.nan, np.nan, "", 0)
        diffs = np.array([values[i] - values[j] for i, j in pairs])          # (pairs, seeds)
        chosen = int(np.argmax(pick * np.nanmean(diffs, axis=1))) if np.isfinite(diffs).any() else 0
        i, j = pairs[chosen]
        va, vb = float(np.mean(values[i])), float(np.mean(values[j]))
        if len(used) >= stats.MIN_SEEDS:
            ci = (stats.t_interval(diffs[0], self.confidence) if len(pairs) == 1
                  else stats.select_t_interval(diffs, self.confidence, pick))
            return Comparison(ci, chosen, va, vb, f"the data ({len(used)} seeds)", len(used))
        ci = self._bootstrap(metric, [[members[s][g] for s in used] for g in range(len(groups))], pairs, pick)
        return Comparison(ci, chosen, va, vb, "these models", len(used))

    def _bootstrap(self, metric: str, groups: Sequence[Sequence[List[str]]], pairs: Sequence[Tuple[int, int]],
                   pick: int) -> stats.Interval:
        """Paired bootstrap over the sample ids every model has; ``groups[g][s]``: group g's models at seed s."""
        m = self.metrics[metric]
        names = sorted({x for g in groups for at in g for x in at})
        tables = {x: self.table(x, metric) for x in names}
        common = None
        for t in tables.values():
            common = set(t.index) if common is None else common & set(t.index)
        ids = sorted(common or [])
        if not ids:
            return stats.Interval(float("nan"), float("nan"), float("nan"), 0, "no shared samples")
        arrays = {x: t.loc[ids].to_numpy(dtype=float) for x, t in tables.items()}

        def combine(v: Dict[str, np.ndarray]) -> np.ndarray:
            # group value: mean over seeds of the mean over the seed's models; then the contrasts (last axis)
            g = [np.mean([np.mean([v[x] for x in at], axis=0) for at in group], axis=0) for group in groups]
            return np.stack([np.asarray(g[i] - g[j], dtype=float) for i, j in pairs], axis=-1)

        def contrasts(idx: np.ndarray) -> np.ndarray:
            return combine({x: m.reduce(arrays[x][idx]) for x in names})

        batch = None
        if m.from_means is not None:
            def batch(idx: np.ndarray) -> np.ndarray:  # (draws, n) resamples -> (draws, pairs)
                return combine({x: m.from_means(column_means(arrays[x], idx)) for x in names})

        if len(pairs) == 1:
            one = None if batch is None else (lambda idx: batch(idx)[:, 0])
            return stats.bootstrap_interval(lambda idx: float(contrasts(idx)[0]), len(ids), self.confidence, self.n_boot,
                                            self.seed, batch=one)
        return stats.select_bootstrap_interval(contrasts, len(ids), self.confidence, self.n_boot, self.seed, pick,
                                               batch=batch)

    def rank_correlation(self, claim: Claim, generators: Dict[str, Dict]) -> Finding:
        """A ``rank-correlation`` claim: per seed, Spearman's ρ across the generators between the clones'
        value on ``claim.metric`` (each generator's clones of that seed) and the generator metric
        ``claim.a["x"]`` (minus ρ with ``claim.b["x"]`` when given); a Student t over the seeds at
        which every generator has a clone. ``generators``: label -> {"strategy": the clones' strategy tag,
        "metrics": the generator's metrics}. The verdict needs :data:`MIN_GENERATORS` generators and
        :data:`stats.MIN_SEEDS` seeds; it is about these generators (the interval covers the seeds'
        variation, not another choice of generators)."""
        clones = self.tags[self.tags["arm"].isin(["synthetic", "generator"])]
        labels = [g for g in generators if (clones["strategy"] == generators[g]["strategy"]).any()]
        if len(labels) < MIN_GENERATORS:
            return Finding(claim, "not run", note=f"needs clones of at least {MIN_GENERATORS} generators (generate.generators "
                                                  f"with the 'generator' arm); this run has {len(labels)}")
        groups = [clones[clones["strategy"] == generators[g]["strategy"]] for g in labels]
        xs = [[float(generators[g]["metrics"][c["x"]]) for g in labels] for c in (claim.a, claim.b) if c.get("x")]
        used, _, values = self.per_seed(claim.metric, groups)
        rho = [stats.rank_correlation(values.T, x) for x in xs]          # each: (seeds,)
        per_seed = rho[0] - rho[1] if len(rho) > 1 else rho[0]
        a_value = float(np.nanmean(rho[0])) if len(used) else None
        b_value = float(np.nanmean(rho[1])) if len(rho) > 1 and len(used) else None
        what = f"Spearman ρ across {len(labels)} generators per seed"
        if len(used) < stats.MIN_SEEDS:
            return Finding(claim, "not run", None, a_value, b_value, labels, [c["x"] for c in (claim.b,) if c.get("x")],
                           note=f"{what} needs {stats.MIN_SEEDS} seeds with a clone of every generator for an interval "
                                f"(train.seeds); this run has {len(used)}", n_seeds=len(used))
        ci = stats.t_interval(per_seed, self.confidence)
        if not np.isfinite(ci.estimate):
            return Finding(claim, "not run", note=f"'{claim.metric}' or a generator metric is constant or undefined "
                                                  "across the generators", a_models=labels)
        # per-seed ρ takes few values with few generators and a t over 3 of them rejects too often (6.6%
        # one-sided at 3 generators): a verdict needs the exact-level permutation test to agree as well
        p_t, _ = stats.p_value(ci, claim.margin)
        p_perm = stats.rank_permutation_p(values.T, xs, seed=self.seed)
        verdict = stats.verdict_greater(ci, claim.margin) if p_perm < 1 - self.confidence else stats.INCONCLUSIVE
        finding = Finding(claim, verdict, ci, a_value, b_value, labels, [c["x"] for c in (claim.b,) if c.get("x")],
                          f"{what}; {ci.method} (p {_format_p(p_t)}) and a permutation test of the generators within "
                          f"each seed (p {_format_p(p_perm)}); p is the larger", scope=f"these {len(labels)} generators "
                          f"({len(used)} seeds)", n_seeds=len(used))
        finding.p_value = max(p_t, p_perm)
        return finding

    def evaluate(self, claim: Claim, generators: Optional[Dict[str, Dict]] = None) -> Finding:
        if claim.kind == "rank-correlation":
            finding = self.rank_correlation(claim, generators or {})
            finding.metric_label = f"ρ({self.metrics[claim.metric].label}, " + ") − ρ(…, ".join(
                c["x"] for c in (claim.a, claim.b) if c.get("x")) + ")"
            return finding
        finding = self._evaluate(claim)
        finding.metric_label = self.metrics[claim.metric].label
        if finding.estimate is not None and finding.verdict != "not run":
            finding.p_value, _ = stats.p_value(finding.estimate, claim.null(self.metrics[claim.metric]))
        return finding

    def _evaluate(self, claim: Claim) -> Finding:
        metric = self.metrics[claim.metric]
        a = _select(self.tags, claim.a)
        b = _select(self.tags, claim.b)
        if claim.kind == "spread":
            return self._spread(claim, a)
        if a.empty or b.empty:
            missing = claim.a["arm"] if a.empty else claim.b["arm"]
            detail = f" with strategy {claim.a.get('strategy') or claim.b.get('strategy')}" if (claim.a.get("strategy") or claim.b.get("strategy")) else ""
            return Finding(claim, "not run", note=f"the run has no '{missing}' models{detail}; add the arm to study.arms")
        note = ""
        candidates = [a]
        pick = 1
        if claim.kind == "best-noninferior":  # "some synthetic clone": θ = the best clone's difference
            candidates = [g for _, g in a.groupby("strategy", dropna=False)]
            defined = [g for g in candidates if np.isfinite(np.mean([self.value(m, claim.metric) for m in g["model"]]))]
            candidates = defined or candidates
            pick = 1 if metric.higher_is_better else -1
            if len(candidates) > 1:
                note = (f"the best of {len(candidates)} synthetic clones, picked inside the procedure (every bootstrap "
                        "draw, or Bonferroni over the clones with seeds); ")
        k = len(candidates)
        cmp = self.compare(claim.metric, candidates + [b], [(i, k) for i in range(k)], pick)
        ci, a = cmp.ci, candidates[cmp.chosen]
        if not np.isfinite(ci.estimate):
            return Finding(claim, "not run", note=self._undefined(claim.metric, candidates + [b]),
                           a_models=list(a["model"]), b_models=list(b["model"]))
        if claim.kind in ("noninferior", "best-noninferior"):
            verdict = stats.verdict_noninferior(ci, claim.margin, metric.higher_is_better)
            note += f"non-inferiority margin {claim.margin} ({'higher' if metric.higher_is_better else 'lower'} is better); "
        else:
            verdict = stats.verdict_greater(ci, claim.margin)
        note += ci.method
        secondary = None
        if claim.secondary and self.secondary:
            secondary = self.compare(claim.secondary, candidates + [b], [(i, k) for i in range(k)], pick).ci
        return Finding(claim, verdict, ci, cmp.a_value, cmp.b_value, list(a["model"]), list(b["model"]), note,
                       scope=cmp.scope, n_seeds=cmp.n_seeds, secondary=secondary)

    def _undefined(self, metric: str, groups: Sequence[pd.DataFrame]) -> str:
        """Why ``metric`` has no value for these groups: no rows (with the metric's hint), or a zero denominator."""
        models = [m for g in groups for m in g["model"]]
        if all(len(self.table(m, metric)) == 0 for m in models):
            return f"'{metric}' has no rows: {self.metrics[metric].missing}"
        return f"'{metric}' is undefined for these models: a denominator is zero (e.g. clean accuracy 0)"

    def _spread(self, claim: Claim, a: pd.DataFrame) -> Finding:
        """θ = the largest difference between two strategies' means; every ordered pair is a candidate."""
        strategies = sorted(set(a["strategy"].dropna()))
        if len(strategies) < 2:
            return Finding(claim, "not run", note="needs synthetic models from at least two prompt strategies (generate.prompts)")
        means = {s: float(np.mean([self.value(m, claim.metric) for m in a[a["strategy"] == s]["model"]])) for s in strategies}
        strategies = [s for s in strategies if np.isfinite(means[s])]
        if len(strategies) < 2:
            return Finding(claim, "not run", note=self._undefined(claim.metric, [a]))
        groups = [a[a["strategy"] == s] for s in strategies]
        pairs = [(i, j) for i in range(len(groups)) for j in range(len(groups)) if i != j]
        cmp = self.compare(claim.metric, groups, pairs)
        if not np.isfinite(cmp.ci.estimate):
            return Finding(claim, "not run", note=f"'{claim.metric}' is undefined for these models")
        hi, lo = pairs[cmp.chosen]
        secondary = self.compare(claim.secondary, groups, pairs).ci if claim.secondary and self.secondary else None
        return Finding(claim, stats.verdict_greater(cmp.ci), cmp.ci, cmp.a_value, cmp.b_value, list(groups[hi]["model"]),
                       list(groups[lo]["model"]),
                       f"most vs least robust of {len(strategies)} strategies, the pick of the pair repeated inside the "
                       f"procedure (every bootstrap draw, or Bonferroni over the pairs with seeds); {cmp.ci.method}",
                       scope=cmp.scope, n_seeds=cmp.n_seeds, secondary=secondary)


@dataclass
class Comparison:
    """What :meth:`Evaluator.compare` found: the interval, the index of the picked pair, the picked
    groups' values, the verdict's scope and the number of seeds behind it."""

    ci: stats.Interval
    chosen: int
    a_value: float
    b_value: float
    scope: str
    n_seeds: int


def adjust_holm(findings: Sequence[Finding], alpha: float = 0.05) -> List[Finding]:
    """Holm's step-down across the findings that have a p-value (the family: this report's tested
    claims). ``verdict_holm`` keeps the raw verdict where the adjusted p is below ``alpha``, else reads
    inconclusive; untested claims keep their raw verdict ("not run")."""
    tested = [f for f in findings if f.p_value is not None]
    adjusted, reject = stats.holm([f.p_value for f in tested], alpha)
    for f in findings:
        f.p_holm, f.verdict_holm = None, f.verdict
    for f, q, r in zip(tested, adjusted, reject):
        f.p_holm = q
        f.verdict_holm = f.verdict if r and f.verdict in (stats.SUPPORTED, stats.CONTRADICTED) else stats.INCONCLUSIVE
    return list(findings)


def generators_of(compare: Optional[dict]) -> Dict[str, Dict]:
    """The ``generators`` argument of :func:`evaluate_claims` from a ``compare.json`` document (the
    compare stage's): label -> {"strategy": the clones' strategy tag, "metrics": class-averaged metrics}."""
    if not compare:
        return {}
    return {label: {"strategy": compare["strategy_tags"][label], "metrics": r["overall"]}
            for label, r in compare["stores"].items()}


def metric_correlations(rows: pd.DataFrame, tags: pd.DataFrame, generators: Dict[str, Dict], metrics: Sequence[str],
                        confidence: float = 0.95, metric: str = "clean_acc") -> List[Finding]:
    """For each generator metric, the generator claims' statistic without a claim: Spearman's ρ across the
    generators between it and the clones' ``metric``, per seed, with a t interval over the seeds (the
    report's correlation table; verdicts there would be untested multiple comparisons, so it has none)."""
    ev = Evaluator(rows, tags, confidence)
    return [ev.rank_correlation(Claim(f"rho-{m}", m, GENERATORS_PAPER, metric, {"arm": "generator", "x": m}, {},
                                      "rank-correlation"), generators) for m in metrics]


def evaluate_claims(rows: pd.DataFrame, tags: pd.DataFrame, confidence: float = 0.95, n_boot: int = 500,
                    ece_bins: int = 15, baseline_prompts: str = "template",
                    generators: Optional[Dict[str, Dict]] = None) -> List[Finding]:
    """Every claim of :func:`claims` and :data:`GENERATOR_CLAIMS`, tested on ``rows`` (probe rows of all
    models), ``tags`` and ``generators`` (:func:`generators_of`; None: the run compared none), with raw
    verdicts and Holm-adjusted ones at family-wise level ``1 - confidence``. ``ece_bins``: the
    configured calibration bins (``bench.ece_bins``); ``baseline_prompts``: ``study.baseline_prompts``."""
    ev = Evaluator(rows, tags, confidence, n_boot, ece_bins=ece_bins)
    found = [ev.evaluate(c) for c in claims(baseline_prompts)]
    found += [ev.evaluate(c, generators) for c in GENERATOR_CLAIMS]
    return adjust_holm(found, alpha=1 - confidence)

"""Confidence intervals, p-values, verdicts and the Holm adjustment for the report's findings.

A finding compares groups of models on one metric. With at least :data:`MIN_SEEDS` seeds the
interval is a Student-t interval over the per-seed paired differences and the verdict is about the
data; with fewer it is a paired bootstrap over the test samples (the same resampled sample ids for
every group), which can only say whether *these trained models* differ.

A claim that picks its groups (the best of several clones, the two most different prompt strategies)
is a claim about ``θ = max_c δ_c`` over its candidate contrasts ``c``; the estimate is ``max_c d_c``.
Picking first and then testing the picked contrast as if it had been fixed favours the claim, so the
pick is part of the procedure the interval accounts for (:func:`select_bootstrap_interval`,
:func:`select_t_interval`): the bound on the claim's side is simultaneous over the candidates, the
other bound need only cover the best true candidate. Both are conservative for ``θ``.

Every verdict reads the two-sided ``confidence`` interval against one null value ``θ0`` (0 or a
margin): supported when the interval lies wholly on the claimed side of ``θ0``, contradicted when it
lies wholly on the other side, otherwise inconclusive. Its p-value is the two-sided p of
"difference = θ0", derived from the same numbers so that ``p < 1 - confidence`` exactly when the
interval excludes ``θ0``:

* bootstrap: twice the share of draws on the far side of ``θ0`` (the empirical CDF interpolated the
  way ``np.quantile`` interpolates, so the percentile interval and the p-value agree to the draw);
* Student t: ``2 * P(T_{n-1} > |mean - θ0| / sem)``;
* an interval given only by its bounds: the normal approximation with ``se = half width / z``.

:func:`holm` adjusts the p-values of one report's claims (Holm's step-down), which keeps the
family-wise error rate of the decisive verdicts at most ``1 - confidence``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"

MIN_SEEDS = 3  # seeds per arm for a verdict about the data rather than about the trained models


@dataclass
class Interval:
    """``estimate`` with a two-sided ``confidence`` interval ``[low, high]`` from ``n`` units."""

    estimate: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = 0.95
    sem: Optional[float] = None                 # Student t: standard error of the mean and its
    df: Optional[int] = None                    # degrees of freedom
    draws: Optional[np.ndarray] = field(default=None, repr=False)  # bootstrap: the finite draws, sorted
    k: int = 1                                  # candidate contrasts the estimate was picked from
    pick: int = 1                               # +1: the largest contrast was picked, -1: the smallest
    # selection bootstrap (k > 1): sorted draws of max_c (d*_c - d_c) and of max_c (d_c - d*_c)
    over: Optional[np.ndarray] = field(default=None, repr=False)
    under: Optional[np.ndarray] = field(default=None, repr=False)
    # selection t (k > 1): each candidate's mean, standard error and degrees of freedom
    candidates: Optional[List[Tuple[float, float, int]]] = None

    def as_dict(self) -> Dict[str, Any]:
        """The interval for JSON (without the bootstrap draws)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("draws", "over", "under")}

    def __str__(self) -> str:
        half = (self.high - self.low) / 2
        return f"{self.estimate:+.4f} ± {half:.4f}"


def t_interval(diffs: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of ``diffs`` with a Student-t interval (n >= 2); a single value gives an infinite interval."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, "t")
    mean = float(d.mean())
    if n == 1:
        return Interval(mean, -math.inf, math.inf, 1, "t")
    sem = float(d.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sem)
    return Interval(mean, mean - half, mean + half, n, f"t over {n} seeds", confidence, sem=sem, df=n - 1)


def _resampled(statistic: Callable[[np.ndarray], Any], batch: Optional[Callable[[np.ndarray], np.ndarray]],
               rng: np.random.Generator, n_units: int, n_boot: int) -> np.ndarray:
    """``statistic`` on ``n_boot`` resamples of ``range(n_units)``; with ``batch`` (the same statistic on an
    (m, n_units) matrix of resamples, one result per row) a block of draws at a time. The resamples are
    the same either way: one generator stream, row by row."""
    if batch is None:
        return np.array([statistic(rng.integers(0, n_units, n_units)) for _ in range(n_boot)], dtype=float)
    block = max(1, min(n_boot, 2 ** 22 // max(1, n_units)))  # at most ~32 MiB of indices at a time
    out = []
    for start in range(0, n_boot, block):
        out.append(np.asarray(batch(rng.integers(0, n_units, (min(block, n_boot - start), n_units))), dtype=float))
    return np.concatenate(out) if out else np.zeros(0)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float],
    n_units: int,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    batch: Optional[Callable[[np.ndarray], np.ndarray]] = None,
) -> Interval:
    """Percentile bootstrap of ``statistic(index)`` where ``index`` resamples ``range(n_units)``.

    ``statistic`` receives an int array of unit indices (with repeats) and returns a float; passing
    the same index to both groups inside it makes the bootstrap paired. ``batch``, when given, computes
    the same statistic for a matrix of resamples at once (one per row), for speed; the draws are the same.
    """
    rng = np.random.default_rng(seed)
    estimate = float(statistic(np.arange(n_units)))
    draws = _resampled(statistic, batch, rng, n_units, n_boot)
    draws = np.sort(draws[np.isfinite(draws)])
    if len(draws) == 0:
        return Interval(estimate, math.nan, math.nan, n_units, "bootstrap")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Interval(estimate, float(low), float(high), n_units, f"paired bootstrap over {n_units} samples", confidence,
                    draws=draws)


def select_bootstrap_interval(
    statistic: Callable[[np.ndarray], np.ndarray],
    n_units: int,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    pick: int = 1,
    batch: Optional[Callable[[np.ndarray], np.ndarray]] = None,
) -> Interval:
    """Interval for ``θ = max_c δ_c`` (``pick=-1``: ``min_c δ_c``) where ``statistic(index)`` returns the
    vector ``d`` of the k candidate contrasts on the resampled units (paired: one index for every group).

    The pick is repeated inside every draw, on centred draws (the percentile interval of ``max_c d*_c``
    would not do: it inherits the pick's upward bias and adds its own):
    ``low = max_c d_c - Q(max_c (d*_c - d_c), 1 - a/2)`` and
    ``high = max_c d_c + Q(max_c (d_c - d*_c), 1 - a/2)`` with ``a = 1 - confidence``.
    ``P(low > θ) <= P(max_c (d_c - δ_c) > Q) ≈ a/2`` however the candidates are correlated, and
    ``P(high < θ) <= a/2`` likewise (the best true candidate alone gives it). ``batch``: as in
    :func:`bootstrap_interval`, returning (m, k).
    """
    rng = np.random.default_rng(seed)
    base = pick * np.asarray(statistic(np.arange(n_units)), dtype=float)
    estimate = float(np.max(base))
    draws = pick * _resampled(statistic, batch, rng, n_units, n_boot).reshape(n_boot, len(base)) - base
    draws = draws[np.isfinite(draws).all(axis=1)]
    k = len(base)
    if len(draws) == 0 or not np.isfinite(base).all():
        return Interval(pick * estimate, math.nan, math.nan, n_units, "bootstrap", confidence, k=k, pick=pick)
    over, under = np.sort(draws.max(axis=1)), np.sort((-draws).max(axis=1))
    q = 0.5 + confidence / 2
    low, high = estimate - float(np.quantile(over, q)), estimate + float(np.quantile(under, q))
    return _oriented(Interval(estimate, low, high, n_units, f"paired bootstrap over {n_units} samples, the pick of {k} "
                              "repeated in every draw", confidence, k=k, over=over, under=under), pick)


def _oriented(ci: Interval, pick: int) -> Interval:
    """``ci`` computed on ``pick * d`` back on the scale of ``d`` (the selection fields stay as computed)."""
    if pick == 1:
        return ci
    ci.estimate, ci.low, ci.high, ci.pick = -ci.estimate, -ci.high, -ci.low, -1
    return ci


def select_t_interval(diffs: Sequence[Sequence[float]], confidence: float = 0.95, pick: int = 1) -> Interval:
    """Interval for ``θ = max_c δ_c`` (``pick=-1``: ``min_c δ_c``) from per-seed differences ``diffs[c]``
    of k candidate contrasts (each with n >= 2 seeds):
    ``low = max_c (mean_c - t_{n_c-1}(1 - a/(2k)) sem_c)`` (Bonferroni over the candidates on the claim's
    side), ``high = max_c (mean_c + t_{n_c-1}(1 - a/2) sem_c)``.
    ``P(low > θ) <= k * a/(2k)`` and ``P(high < θ) <= a/2``."""
    from scipy import stats

    cands, lows, highs = [], [], []
    k = len(diffs)
    for d in diffs:
        d = pick * np.asarray(d, dtype=float)
        d = d[np.isfinite(d)]
        if len(d) < 2:
            return Interval(math.nan, -math.inf, math.inf, len(d), "t", confidence, k=k, pick=pick)
        mean, sem = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
        df = len(d) - 1
        cands.append((mean, sem, df))
        lows.append(mean - float(stats.t.ppf(1 - (1 - confidence) / (2 * k), df)) * sem)
        highs.append(mean + float(stats.t.ppf(0.5 + confidence / 2, df)) * sem)
    n = min(c[2] for c in cands) + 1
    return _oriented(Interval(max(c[0] for c in cands), max(lows), max(highs), n,
                              f"t over {n} seeds, the pick of {k} Bonferroni-adjusted", confidence, k=k,
                              candidates=cands), pick)


def _t_sf(distance: float, sem: float, df: int) -> float:
    """``P(T_df > distance / sem)``, with ``sem = 0`` read as a point mass."""
    from scipy import stats

    if sem <= 0:
        return 0.0 if distance > 0 else 1.0 if distance < 0 else 0.5
    return float(stats.t(df).sf(distance / sem))


def _quantile_level(x: np.ndarray, null: float) -> float:
    """The level ``q`` at which ``np.quantile(x, q)`` (linear) reaches ``null``: ``quantile(x, a) > null``
    exactly when ``a > q``. ``x`` sorted, finite."""
    n = len(x)
    j = int(np.searchsorted(x, null, side="right")) - 1  # last draw <= null
    if j < 0:
        return 0.0
    if j >= n - 1:
        return 1.0
    return (j + (null - x[j]) / (x[j + 1] - x[j])) / (n - 1)


def p_value(ci: Interval, null: float = 0.0) -> Tuple[float, int]:
    """Two-sided p-value of "the difference equals ``null``" and the side the data point to (+1: above
    ``null``, -1: below). ``p < 1 - ci.confidence`` exactly when ``[ci.low, ci.high]`` excludes ``null``;
    an interval that is not finite gives ``(1.0, 0)``."""
    from scipy import stats

    if not (np.isfinite(ci.low) and np.isfinite(ci.high)):
        return 1.0, 0
    if ci.over is not None or ci.candidates is not None:  # a pick: on the scale it was computed on
        est, theta = ci.pick * ci.estimate, ci.pick * null
        if ci.over is not None:  # low > θ0 <=> Q(over, (1 + conf) / 2) < est - θ0 <=> 2 (1 - level) < 1 - conf
            p_low = 2 * (1 - _quantile_level(ci.over, est - theta))
            p_high = 2 * (1 - _quantile_level(ci.under, theta - est))
        else:                    # Bonferroni on the picked side, intersection-union on the other
            p_low = 2 * ci.k * min(_t_sf(m - theta, se, df) for m, se, df in ci.candidates)
            p_high = 2 * max(_t_sf(theta - m, se, df) for m, se, df in ci.candidates)
        return float(min(1.0, p_low, p_high)), ci.pick * (1 if p_low < p_high else -1)
    if ci.draws is not None and len(ci.draws):
        below = _quantile_level(ci.draws, null)               # low > null  <=>  (1 - conf) / 2 > below
        above = _quantile_level(-ci.draws[::-1], -null)      # high < null <=>  (1 - conf) / 2 > above
        side = 1 if below < above else -1
        return float(min(1.0, 2 * min(below, above))), side
    if ci.sem is not None and ci.df:
        distance, scale, dist = ci.estimate - null, ci.sem, stats.t(ci.df)
    else:  # bounds only: normal approximation whose interval is [low, high]
        z = float(stats.norm.ppf(0.5 + ci.confidence / 2))
        distance, scale, dist = (ci.low + ci.high) / 2 - null, (ci.high - ci.low) / (2 * z), stats.norm
    if scale <= 0:
        return (0.0, 1 if distance > 0 else -1) if distance != 0 else (1.0, 0)
    return float(min(1.0, 2 * dist.sf(abs(distance) / scale))), (1 if distance > 0 else -1)


def holm(p_values: Sequence[float], alpha: float = 0.05) -> Tuple[List[float], List[bool]]:
    """Holm's step-down adjustment: the adjusted p-values (in the given order) and which hypotheses
    are rejected at family-wise level ``alpha``. The k-th smallest p (k = 1..m) is rejected while
    ``p_(k) < alpha / (m - k + 1)`` holds for it and every smaller one; adjusted
    ``p~_(k) = max_{j<=k} min(1, (m - j + 1) p_(j))``, so rejected <=> ``p~ < alpha``."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return adjusted.tolist(), (adjusted < alpha).tolist()


def verdict_greater(ci: Interval, margin: float = 0.0) -> str:
    """Claim "A - B > margin": supported when the whole interval is above ``margin``, contradicted when
    the whole interval is below it (the data show A - B < margin)."""
    if not np.isfinite(ci.low) or not np.isfinite(ci.high):
        return INCONCLUSIVE
    if ci.low > margin:
        return SUPPORTED
    if ci.high < margin:
        return CONTRADICTED
    return INCONCLUSIVE


def noninferiority_null(margin: float, higher_is_better: bool = True) -> float:
    """The boundary ``θ0`` of "A matches or beats B": A - B = -margin, or +margin when lower is better."""
    return -margin if higher_is_better else margin


def verdict_noninferior(ci: Interval, margin: float, higher_is_better: bool = True) -> str:
    """Claim "A matches or beats B" (non-inferiority within ``margin``), oriented by the metric's direction.

    Higher is better: supported when the lower bound of A - B is above ``-margin``; contradicted when
    the whole interval is below ``-margin`` (A is worse by more than the margin). Lower is better
    (ECE, BG-gap): the same with the upper bound against ``+margin``. A clearly better A is supported.
    """
    if not np.isfinite(ci.low) or not np.isfinite(ci.high):
        return INCONCLUSIVE
    null = noninferiority_null(margin, higher_is_better)
    good_side_clear = ci.low > null if higher_is_better else ci.high < null
    bad_side_clear = ci.high < null if higher_is_better else ci.low > null
    if good_side_clear:
        return SUPPORTED
    if bad_side_clear:
        return CONTRADICTED
    return INCONCLUSIVE


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(np.asarray(v, dtype=float), axis=-1)


def _correlation(ry: np.ndarray, rx: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``ry`` (..., G) with ``rx`` (G,); NaN where either is constant."""
    ry = ry - ry.mean(axis=-1, keepdims=True)
    rx = rx - rx.mean()
    den = np.sqrt((ry ** 2).sum(axis=-1) * (rx ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ry * rx).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def rank_correlation(y: np.ndarray, x: Sequence[float]) -> np.ndarray:
    """Spearman's rank correlation between ``x`` (G values) and each row of ``y`` (..., G): the Pearson
    correlation of their average ranks (ties share a rank); NaN where a row or ``x`` is constant."""
    return _correlation(_ranks(y), _ranks(x))


def rank_permutation_p(y: np.ndarray, xs: Sequence[Sequence[float]], n_perm: int = 4999, seed: int = 0) -> float:
    """Two-sided Monte Carlo permutation p-value of the mean over the rows of ``y`` (seeds x G) of
    Spearman's ρ with ``xs[0]`` (minus ρ with ``xs[1]`` when given) under the null that the G columns are
    exchangeable within each row (generators that make equally good clones): every draw permutes each
    row on its own. With the +1 correction the test has level at most alpha whatever G and the ties."""
    ry = _ranks(y)  # permuting a row permutes its ranks: ranked once
    rxs = [_ranks(x) for x in xs]

    def statistic(r: np.ndarray) -> np.ndarray:  # (..., seeds, G) -> (...,)
        rho = _correlation(r, rxs[0])
        if len(rxs) > 1:
            rho = rho - _correlation(r, rxs[1])
        return np.nanmean(rho, axis=-1)

    observed = float(statistic(ry))
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((n_perm, *ry.shape)), axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw whose every seed is constant: NaN, dropped
        draws = statistic(np.take_along_axis(np.broadcast_to(ry, order.shape), order, axis=-1))
    draws = draws[np.isfinite(draws)]
    eps = 1e-12  # equal statistics count as at least as extreme (ties between draws and the observed value)
    upper = (1 + np.sum(draws >= observed - eps)) / (1 + len(draws))
    lower = (1 + np.sum(draws <= observed + eps)) / (1 + len(draws))
    return float(min(1.0, 2 * min(upper, lower)))


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean ± t-interval of per-seed values (for tables)."""
    return t_interval(values, confidence)


def format_ci(ci: Optional[Interval], digits: int = 3) -> str:
    if ci is None or not np.isfinite(ci.estimate):
        return "–"
    if not np.isfinite(ci.low):
        return f"{ci.estimate:.{digits}f}"
    return f"{ci.estimate:.{digits}f} ± {(ci.high - ci.low) / 2:.{digits}f}"

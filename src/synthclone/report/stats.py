"""Confidence intervals and verdicts for the report's findings.

A finding compares two groups of models on one metric. With several seeds the interval is a
Student-t interval over the per-seed paired differences; with one seed it is a paired bootstrap over
the test samples (the same resampled sample ids for both groups), which is all one seed can say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"


@dataclass
class Interval:
    """``estimate`` with a two-sided ``confidence`` interval ``[low, high]`` from ``n`` units."""

    estimate: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = 0.95

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
    return Interval(mean, mean - half, mean + half, n, f"t over {n} seeds", confidence)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float],
    n_units: int,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of ``statistic(index)`` where ``index`` resamples ``range(n_units)``.

    ``statistic`` receives an int array of unit indices (with repeats) and returns a float; passing
    the same index to both groups inside it makes the bootstrap paired.
    """
    rng = np.random.default_rng(seed)
    estimate = float(statistic(np.arange(n_units)))
    draws = np.array([statistic(rng.integers(0, n_units, n_units)) for _ in range(n_boot)], dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return Interval(estimate, math.nan, math.nan, n_units, "bootstrap")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Interval(estimate, float(low), float(high), n_units, f"paired bootstrap over {n_units} samples", confidence)


def verdict_greater(ci: Interval, margin: float = 0.0) -> str:
    """Claim "A - B > margin": supported when the whole interval is above it, contradicted when below 0."""
    if not np.isfinite(ci.low) or not np.isfinite(ci.high):
        return INCONCLUSIVE
    if ci.low > margin:
        return SUPPORTED
    if ci.high < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def verdict_equivalent(ci: Interval, margin: float) -> str:
    """Claim "A matches B within ±margin" (a two one-sided tests reading of the interval)."""
    if not np.isfinite(ci.low) or not np.isfinite(ci.high):
        return INCONCLUSIVE
    if -margin <= ci.low and ci.high <= margin:
        return SUPPORTED
    if ci.low > margin or ci.high < -margin:
        return CONTRADICTED
    return INCONCLUSIVE


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean ± t-interval of per-seed values (for tables)."""
    return t_interval(values, confidence)


def format_ci(ci: Optional[Interval], digits: int = 3) -> str:
    if ci is None or not np.isfinite(ci.estimate):
        return "–"
    if not np.isfinite(ci.low):
        return f"{ci.estimate:.{digits}f}"
    return f"{ci.estimate:.{digits}f} ± {(ci.high - ci.low) / 2:.{digits}f}"

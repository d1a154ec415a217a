"""Shared helpers of the benchmark scripts: machine description, timing, markdown tables.

Every benchmark compares synthclone with a peer *in the same process and run*, so the figures that
matter are ratios and agreements; absolute times on these shared 2-core machines are noisy.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from typing import Callable, Dict, List, Sequence


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() as a fallback)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> Dict[str, str]:
    """nproc, CPU model, 1/5/15-min load, torch threads and OMP_NUM_THREADS at call time."""
    import torch

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "load (1/5/15 min)": load_average(),
        "torch threads": str(torch.get_num_threads()),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "torch": torch.__version__,
    }


def machine_line() -> str:
    m = machine()
    return "; ".join(f"{k}: {v}" for k, v in m.items())


def best_time(fn: Callable[[], object], repeats: int = 3, budget_s: float = float("inf"),
              min_repeats: int = 1) -> float:
    """Smallest wall time of up to ``repeats`` calls of ``fn``; stops once ``budget_s`` is spent and
    at least ``min_repeats`` calls ran."""
    best = float("inf")
    spent = 0.0
    for i in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        if spent >= budget_s and i + 1 >= min_repeats:
            break
    return best


def fmt(v, digits: int = 3) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "n/a"
        if v == 0:
            return "0"
        if abs(v) >= 1000 or abs(v) < 10 ** -(digits):
            return f"{v:.{digits - 1}e}" if abs(v) < 10 ** -(digits) else f"{v:,.0f}"
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return str(v)


def markdown_table(rows: Sequence[Dict[str, object]], columns: Sequence[str] | None = None) -> str:
    """Rows (dicts) as a GitHub markdown table; floats formatted compactly."""
    if not rows:
        return "(no rows)"
    cols: List[str] = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)

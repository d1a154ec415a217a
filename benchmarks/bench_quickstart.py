"""The quickstart end to end: wall time, peak memory and each stage's (and each probe's) share.

    OMP_NUM_THREADS=1 python benchmarks/bench_quickstart.py --out /tmp/qs            # runs it (tens of minutes)
    python benchmarks/bench_quickstart.py --out /tmp/qs --parse-only --time-log LOG   # tables of a finished run
    OMP_NUM_THREADS=1 python benchmarks/bench_quickstart.py --quick --out /tmp/qs-quick  # tiny generator, no filter

Runs ``synthclone run configs/quickstart.yaml --out OUT`` under ``/usr/bin/time -v`` (peak RSS is
the largest resident set of any single process of the run, not a sum) and reads the run's
``stages.json`` (seconds per stage) and every bench stage's ``done.json`` (seconds per probe).
Stages are grouped by kind (generate, train, bench, report) so the table says where the minutes go.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table  # noqa: E402

QUICK_SETS = ["generate.model=tiny", "generate.filter=[]",
              "study.arms=[real,synthetic,unfiltered,mixed,ssl,few-shot-real,few-shot-guided,pretrain-finetune]"]


def run(out: Path, config: str, sets: List[str], log: Path) -> float:
    """Run the study under /usr/bin/time -v (its report goes to ``log``); returns wall seconds."""
    exe = shutil.which("synthclone") or str(Path(sys.executable).with_name("synthclone"))
    cmd = [exe, "run", config, "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    if Path("/usr/bin/time").exists():
        cmd = ["/usr/bin/time", "-v", "-o", str(log)] + cmd
    print(f"`{' '.join(cmd)}`\n", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def parse_time_log(log: Optional[Path]) -> Dict[str, str]:
    """Wall clock, peak RSS and CPU seconds from a GNU time -v report."""
    if not log or not log.exists():
        return {}
    text = log.read_text()
    out = {}
    for key, pat in (("wall", r"Elapsed \(wall clock\) time.*: (\S+)"), ("max_rss_kb", r"Maximum resident set size \(kbytes\): (\d+)"),
                     ("user_s", r"User time \(seconds\): (\S+)"), ("sys_s", r"System time \(seconds\): (\S+)")):
        m = re.search(pat, text)
        if m:
            out[key] = m.group(1)
    return out


def _kind(stage: str) -> str:
    return stage.split("-", 1)[0].split(":", 1)[0]


def stage_tables(out: Path):
    """(per-stage rows, per-kind rows, per-probe rows) from a run directory."""
    stages = json.loads((out / "stages.json").read_text())
    total = sum(s["seconds"] for s in stages) or 1.0
    per_stage = [{"stage": s["stage"], "seconds": s["seconds"], "share %": 100 * s["seconds"] / total,
                  "cached": s.get("cached", False)} for s in stages]
    kinds: Dict[str, float] = defaultdict(float)
    counts: Dict[str, int] = defaultdict(int)
    for s in stages:
        kinds[_kind(s["stage"])] += s["seconds"]
        counts[_kind(s["stage"])] += 1
    per_kind = [{"kind": k, "stages": counts[k], "seconds": v, "share %": 100 * v / total}
                for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])]
    probes: Dict[str, float] = defaultdict(float)
    n_models = 0
    # only this run's bench folders (an older run in the same directory may have left others)
    for s in stages:
        d = out / s.get("folder", "") / "done.json"
        if not s["stage"].startswith("bench") or not d.is_file():
            continue
        secs = json.loads(d.read_text()).get("outputs", {}).get("seconds", {})
        n_models += 1
        for p, v in secs.items():
            probes[p] += v
    bench_total = kinds.get("bench", 0.0) or 1.0
    per_probe = [{"probe": p, "seconds (all models)": v, "per model": v / max(n_models, 1),
                  "share of bench %": 100 * v / bench_total, "share of run %": 100 * v / total}
                 for p, v in sorted(probes.items(), key=lambda kv: -kv[1])]
    return per_stage, per_kind, per_probe, total, n_models


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/synthclone-bench/quickstart")
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--quick", action="store_true", help="tiny random generator, no CLIP filter (no shipped weights)")
    p.add_argument("--set", action="append", default=[], help="extra --set KEY=VALUE for synthclone run")
    p.add_argument("--parse-only", action="store_true", help="only tabulate an existing run directory")
    p.add_argument("--time-log", default=None, help="GNU time -v report (default OUT.time.txt)")
    args = p.parse_args(argv)
    out = Path(args.out)
    log = Path(args.time_log) if args.time_log else out.with_name(out.name + ".time.txt")
    print("## Quickstart end to end\n")
    print(f"machine at start: {machine_line()}\n")
    if not args.parse_only:
        if out.exists():
            shutil.rmtree(out)  # a fresh run: cached stages would hide their cost
        sets = (QUICK_SETS if args.quick else []) + args.set
        run(out, args.config, sets, log)
        print(f"machine at end: {machine_line()}\n")
    t = parse_time_log(log)
    per_stage, per_kind, per_probe, total, n_models = stage_tables(out)
    if t:
        rss = int(t.get("max_rss_kb", 0)) / 1024
        print(f"wall {t.get('wall')} (h:mm:ss), peak RSS {rss:,.0f} MiB, user {t.get('user_s')} s, "
              f"sys {t.get('sys_s')} s; sum of stage seconds {total:,.0f} s\n")
    print("### By kind of stage\n")
    print(markdown_table(per_kind) + "\n")
    print(f"### By probe (sum over the {n_models} benchmarked models)\n")
    print(markdown_table(per_probe) + "\n")
    print("### Every stage\n")
    print(markdown_table(per_stage))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

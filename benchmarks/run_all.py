"""Run every benchmark in one go and print their tables (the source of benchmarks/RESULTS.md).

    python benchmarks/run_all.py            # full sizes (tens of minutes on 2 busy cores)
    python benchmarks/run_all.py --quick    # small sizes, for a smoke run
    python benchmarks/run_all.py --only metrics,attacks

Each benchmark runs in its own process with ``OMP_NUM_THREADS=1`` (unless already set) so both sides
of every comparison get one thread: on a shared 2-core machine torch's default of one OpenMP
thread per core collapses when several processes compete. Output of each script is printed as it
is, preceded by the exact command; a benchmark that fails is reported and the others still run.
``bench_corruptions_ab.py`` is not among them: it compares this checkout's corruptions with a git
revision you name (a before/after, not a peer).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine_line  # noqa: E402

# name -> (script, full arguments, quick arguments)
BENCHMARKS = {
    "metrics": ("bench_metrics.py", [], ["--quick"]),
    "corruptions": ("bench_corruptions.py", [], ["--quick"]),
    "attacks": ("bench_attacks.py", ["--n", "500"], ["--quick"]),
    "generator-roofline": ("bench_generator_roofline.py", [], ["--batch", "16", "--steps", "5"]),
    "generator-speedups": ("bench_generator_speedups.py", [], ["--quick"]),
    "quickstart": ("bench_quickstart.py", [], ["--quick", "--out", "/tmp/synthclone-bench/quickstart-quick"]),
    # owned by the generator / distributed authors; run as they ship them
    "generator": ("bench_generator.py", [], ["--steps", "10", "--repeats", "1"]),
    "ddp": ("bench_ddp.py", [], ["--images", "600", "--epochs", "1", "--seeds", "0"]),
    "gpu-check": ("gpu_check.py", [], []),  # says so and exits 0 without CUDA
    "ray": ("bench_ray_generation.py", ["--per-class", "60", "--shard-size", "100", "--threads", "1", "--repeats", "3"],
            ["--per-class", "4", "--modes", "1,2"]),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="", help=f"comma list of: {', '.join(BENCHMARKS)}")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; valid: {', '.join(BENCHMARKS)}")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("SYNTHCLONE_QUIET", "1")
    print(f"# synthclone benchmarks\n\nmachine at start: {machine_line()}\n")
    failed = []
    for name in names:
        script, full, quick = BENCHMARKS[name]
        path = HERE / script
        if not path.exists():
            print(f"## {name}: {script} not present, skipped\n")
            continue
        cmd = [sys.executable, str(path)] + (quick if args.quick else full)
        print(f"<!-- {name} -->\n`OMP_NUM_THREADS={env['OMP_NUM_THREADS']} {' '.join(cmd[1:])}`\n", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, env=env, cwd=HERE.parent)
        print(f"\n({name}: exit {rc}, {time.perf_counter() - t0:.0f} s)\n", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

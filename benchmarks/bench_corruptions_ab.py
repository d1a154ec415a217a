"""Corruption speed of this checkout against an earlier git revision, interleaved in one process.

On these shared VMs the same code's images/s moves by 20-40% between runs minutes apart, more than
most single changes gain, so a before/after from two runs says little. Here the revision's
``synthclone`` package is exported (``git archive``) under another name, both versions corrupt the
same batch in one process, alternating call by call (the order flipped every round), and each keeps
its best time. An unchanged corruption reads about 1.00 (0.96-1.04 seen), which is the noise floor.

    OMP_NUM_THREADS=1 python benchmarks/bench_corruptions_ab.py REV [--corruptions a,b] [--rounds 10]
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table  # noqa: E402
from bench_corruptions import test_images  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALIAS = "synthclone_ab"


def export_revision(rev: str, into: Path) -> str:
    """``src/synthclone`` of ``rev`` as package :data:`ALIAS` under ``into``; returns the full commit."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    tar = subprocess.run(["git", "archive", commit, "src/synthclone"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    pkg = into / ALIAS
    (into / "src" / "synthclone").rename(pkg)
    for f in pkg.rglob("*.py"):  # absolute imports of the package itself (relative ones need nothing)
        f.write_text(re.sub(r"\b(from|import) synthclone\b", rf"\1 {ALIAS}", f.read_text()))
    return commit


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rev", help="the git revision to compare with (a commit, tag or HEAD~N)")
    p.add_argument("--corruptions", default="all", help="comma list or all")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--severity", type=int, default=3)
    args = p.parse_args(argv)

    from synthclone.allocator import retain_freed_memory
    from synthclone.robustness import corruption_ops as new

    retain_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        commit = export_revision(args.rev, Path(tmp))
        sys.path.insert(0, tmp)
        old = __import__(f"{ALIAS}.robustness.corruption_ops", fromlist=["corrupt"])
        names = new.corruption_names(args.corruptions.split(",") if args.corruptions != "all" else "all")
        x = test_images(args.batch, args.size).float().div(255.0)
        out = torch.empty_like(x)
        best = {(n, v): float("inf") for n in names for v in ("old", "new")}
        for r in range(args.rounds):
            for n in names:
                pair = [("old", old), ("new", new)]
                for side, mod in (pair if r % 2 == 0 else pair[::-1]):
                    t = time.perf_counter()
                    mod.corrupt(x, n, args.severity, torch.Generator().manual_seed(r), out=out)
                    best[(n, side)] = min(best[(n, side)], time.perf_counter() - t)
    rows = [{"corruption": n, f"{args.rev} img/s": round(args.batch / best[(n, "old")]),
             "this checkout img/s": round(args.batch / best[(n, "new")]),
             "new / old": round(best[(n, "old")] / best[(n, "new")], 3)} for n in names]
    print(machine_line())
    print(f"\nthis checkout vs {args.rev} ({commit[:10]}), {args.size} px, batch {args.batch}, severity "
          f"{args.severity}, best of {args.rounds} interleaved rounds\n")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

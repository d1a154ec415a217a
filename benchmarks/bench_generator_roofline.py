"""The embedded generator against this CPU's matrix-multiply throughput (a roofline-style ratio).

    OMP_NUM_THREADS=1 python benchmarks/bench_generator_roofline.py [--batch 64] [--steps 10]

In one process, with the same torch threads:
1. the CPU's dense matmul throughput (best of several 1024x1024 @ 1024x1024 products) in fp32 and bf16;
2. the FLOPs of one sampling step per image with classifier-free guidance, counted by
   ``torch.utils.flop_counter.FlopCounterMode`` over a 1-step call (prompt embeddings cached first);
3. images/s of the shipped generator at ``--steps`` (bf16 autocast, batched CFG, the generator's defaults).
Achieved GFLOP/s = FLOPs per image x images/s; the table gives it as a share of the bf16 matmul peak.
4. (``--profile N``, default 12) the ops with the most self CPU time in one sampling call: what limits it.
Complements GEN's ``bench_generator.py`` (images/s at 10/25/50 steps), which does not count FLOPs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table  # noqa: E402


def matmul_gflops(dtype: torch.dtype, n: int = 1024, repeats: int = 8) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--scheduler", default="dpm")
    p.add_argument("--profile", type=int, default=12, metavar="N",
                   help="also profile one sampling call and list the N ops with most self CPU time (0: skip)")
    args = p.parse_args(argv)

    from torch.utils.flop_counter import FlopCounterMode

    from synthclone.generators import create_generator

    gen = create_generator("embedded")
    prompts = [f"a photo of a {c}" for c in ["shirt", "bag", "sneaker", "coat"]] * (args.batch // 4 + 1)
    prompts = prompts[: args.batch]
    seeds = list(range(args.batch))
    gen(prompts, seeds, guidance=args.guidance, steps=1, scheduler=args.scheduler, batch_size=args.batch)  # caches
    with FlopCounterMode(display=False) as fc:
        gen(prompts, seeds, guidance=args.guidance, steps=1, scheduler=args.scheduler, batch_size=args.batch)
    flops_step = fc.get_total_flops() / args.batch  # per image, one step, both CFG branches
    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        gen(prompts, seeds, guidance=args.guidance, steps=args.steps, scheduler=args.scheduler, batch_size=args.batch)
        best = min(best, time.perf_counter() - t0)
    ips = args.batch / best
    achieved = flops_step * args.steps * ips / 1e9
    peak2 = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}  # load drift check
    print("## Embedded generator vs this CPU's matmul throughput\n")
    print(f"machine: {machine_line()}\n")
    rows = [{"batch": args.batch, "steps": args.steps, "guidance": args.guidance,
             "GFLOP per image per step (CFG)": flops_step / 1e9, "images/s": ips,
             "achieved GFLOP/s": achieved,
             "matmul fp32 GFLOP/s (before/after)": f"{peak['fp32']:.1f}/{peak2['fp32']:.1f}",
             "matmul bf16 GFLOP/s (before/after)": f"{peak['bf16']:.1f}/{peak2['bf16']:.1f}",
             "share of bf16 matmul peak %": 100 * achieved / max(peak["bf16"], peak2["bf16"])}]
    print(markdown_table(rows))
    if args.profile:
        print(f"\n### Where one sampling call's time goes (torch.profiler, self CPU time, top {args.profile} ops)\n")
        print(markdown_table(profile_ops(gen, prompts, seeds, args)))
    return 0


def profile_ops(gen, prompts, seeds, args):
    """Self CPU time per op over one sampling call, largest first, as shares of the call."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        gen(prompts, seeds, guidance=args.guidance, steps=args.steps, scheduler=args.scheduler, batch_size=args.batch)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "calls": e.count, "self CPU ms": e.self_cpu_time_total / 1e3,
             "share %": 100 * e.self_cpu_time_total / total} for e in events[: args.profile]]


if __name__ == "__main__":
    raise SystemExit(main())

"""Sampling throughput of a text-to-image generator: images/s at batch 256 with classifier-free guidance.

    python benchmarks/bench_generator.py                      # the shipped embedded model, 10/25/50 steps
    python benchmarks/bench_generator.py --weights runs/pretrain-generator --steps 10 --scheduler ddim

Prints one JSON line per step count; the numbers in GENERATOR_CARD.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import platform

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generator", default="embedded")
    p.add_argument("--weights", default=None, help="embedded weights file/folder (default: shipped)")
    p.add_argument("--steps", default="10,25,50")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--scheduler", default="dpm")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)

    from synthclone.generators import create_generator
    from synthclone.generators.evaluate import measure_throughput

    kw = {"precision": args.precision}
    if args.weights:
        kw["weights"] = args.weights
    gen = create_generator(args.generator, **kw)
    steps = [int(s) for s in args.steps.split(",")]
    res = measure_throughput(gen, steps, batch=args.batch, guidance=args.guidance, scheduler=args.scheduler,
                             repeats=args.repeats)
    for s, ips in res.items():
        print(json.dumps({"generator": args.generator, "steps": s, "batch": args.batch, "guidance": args.guidance,
                          "scheduler": args.scheduler, "precision": args.precision, "images_per_s": round(ips, 1),
                          "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

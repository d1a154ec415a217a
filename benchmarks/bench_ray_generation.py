"""Generation throughput: in-process vs Ray with 1 and 2 workers, same store config.

    python benchmarks/bench_ray_generation.py [--weights tiny|PATH] [--per-class 40] [--steps 10]

Each mode first makes a small warm-up store (workers load the generator and the text encoder once
and keep them), then a timed store; images/s is over the timed store only. Ray workers run one
task each with ``num_cpus=1`` (Ray sets one thread per worker), the in-process run uses torch's
default threads (``--threads`` sets them). Prints a table and one JSON line per mode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def _cfg(args, per_class: int, ray: str | None):
    from synthclone.config import GenerateConfig

    return GenerateConfig(generator="embedded", model=args.weights, prompts=[args.prompts], per_class=per_class,
                          steps=args.steps, guidance=args.guidance, filter=[], shard_size=args.shard_size,
                          batch_size=args.shard_size, ray=ray, seed=0)


def run_mode(args, workers: int, root: Path) -> dict:
    from synthclone.data.fashion_mnist import CLASSES
    from synthclone.distributed.generation import generate_store

    classes = CLASSES[: args.classes]
    ray_mode = "local" if workers else None
    if workers:
        import ray

        t0 = time.time()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_start = time.time() - t0
    else:
        ray_start = 0.0
    try:
        t0 = time.time()
        generate_store(_cfg(args, args.shard_size * max(1, workers) // len(classes) + 1, ray_mode),
                       root / f"warmup-{workers}", classes=classes)
        warm = time.time() - t0
        summary = generate_store(_cfg(args, args.per_class, ray_mode), root / f"timed-{workers}", classes=classes)
    finally:
        if workers:
            import ray

            ray.shutdown()
    return {"mode": _label(workers), "images": summary.made,
            "seconds": round(summary.seconds, 2), "images_per_s": round(summary.images_per_second, 2),
            "ray_start_s": round(ray_start, 2), "warmup_s": round(warm, 2), "weights": args.weights or "shipped",
            "steps": args.steps, "shard_size": args.shard_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="generator weights: None = shipped, 'tiny' = random tiny model")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--shard-size", type=int, default=20)
    parser.add_argument("--prompts", default="template")
    parser.add_argument("--modes", default="0,1,2", help="comma list: 0 = in-process, N = Ray with N workers")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the in-process run (default torch's)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds over all modes (interleaved); the table gives the median and range per mode")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    modes = [int(m) for m in args.modes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            for workers in modes:
                rows.append(run_mode(args, workers, Path(tmp) / f"round-{round_}"))
                rows[-1]["round"] = round_
                print(json.dumps(rows[-1]), flush=True)
    base = modes[0]
    print(f"\n{'mode':<12} {'images':>7} {'images/s median':>16} {'range':>15} {'vs ' + _label(base) + ' (per round)':>34} {'ray start s':>12}")
    for workers in modes:
        mine = [r for r in rows if r["mode"] == _label(workers)]
        ips = sorted(r["images_per_s"] for r in mine)
        ratios = sorted(r["images_per_s"] / b["images_per_s"] for r, b in
                        zip(mine, [r for r in rows if r["mode"] == _label(base)]))
        print(f"{_label(workers):<12} {mine[0]['images']:>7} {statistics.median(ips):>16.1f} "
              f"{f'{ips[0]:.1f}-{ips[-1]:.1f}':>15} "
              f"{f'{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})':>34} "
              f"{statistics.median(r['ray_start_s'] for r in mine):>12.2f}")


def _label(workers: int) -> str:
    return f"ray x{workers}" if workers else "in-process"

if __name__ == "__main__":
    main()

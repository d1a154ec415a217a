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
    return {"mode": f"ray x{workers}" if workers else "in-process", "images": summary.made,
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
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in [int(m) for m in args.modes.split(",")]:
            rows.append(run_mode(args, workers, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'mode':<12} {'images':>7} {'seconds':>8} {'images/s':>9} {'ray start s':>12}")
    for r in rows:
        print(f"{r['mode']:<12} {r['images']:>7} {r['seconds']:>8} {r['images_per_s']:>9} {r['ray_start_s']:>12}")


if __name__ == "__main__":
    main()

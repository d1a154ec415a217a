"""Data-parallel training on the CPU: 2 gloo processes (DistributedDataParallel) vs 1, same total batch.

    python benchmarks/bench_ddp.py [--images 4000] [--epochs 2] [--seeds 0,1] [--json FILE]

Supervised ResNet-8 on a class-balanced Fashion-MNIST subset, batch 128 in all (64 per process
with two), fp32. The single process gets as many threads as the two processes together, so both
use the same cores. Reported per seed: validation accuracy and training images/s of each; then
the accuracy difference (expected: within seed noise, since augmentation streams are per rank)
and the throughput ratio 2 processes / 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _data(images: int):
    from synthclone.data import load_dataset

    train = load_dataset("fashion-mnist", "train").per_class(images // 10, seed=0)
    val = load_dataset("fashion-mnist", "val").per_class(100, seed=0)
    return train, val


def _train(out: str, seed: int, epochs: int, images: int) -> dict:
    from synthclone.training import train_model

    train, val = _data(images)
    r = train_model("supervised", train, val, "resnet8", out, epochs=epochs, batch_size=128, seed=seed,
                    precision="fp32", device="cpu")
    return {"val_accuracy": r.val_accuracy, "images_per_s": r.images_per_s}


def _worker(rank: int, world_size: int, init: str, out: str, seed: int, epochs: int, images: int, result: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world_size)
    from synthclone.progress import set_quiet

    set_quiet(True)
    r = _train(out, seed, epochs, images)
    if rank == 0:
        Path(result).write_text(json.dumps(r))
    dist.destroy_process_group()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    from synthclone.progress import set_quiet

    set_quiet(True)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            torch.set_num_threads(2)
            one = _train(os.path.join(tmp, "one"), seed, args.epochs, args.images)
            result = os.path.join(tmp, "two.json")
            mp.start_processes(_worker, args=(2, os.path.join(tmp, "pg"), os.path.join(tmp, "two"), seed, args.epochs,
                                              args.images, result), nprocs=2, start_method="spawn", join=True)
            two = json.loads(Path(result).read_text())
        rows.append({"seed": seed, "one": one, "two": two})
        print(f"seed {seed}: 1 process val acc {one['val_accuracy']:.4f} at {one['images_per_s']:.0f} images/s; "
              f"2 processes {two['val_accuracy']:.4f} at {two['images_per_s']:.0f} images/s")
    diffs = [r["two"]["val_accuracy"] - r["one"]["val_accuracy"] for r in rows]
    ratios = [r["two"]["images_per_s"] / r["one"]["images_per_s"] for r in rows]
    seed_spread = max(r["one"]["val_accuracy"] for r in rows) - min(r["one"]["val_accuracy"] for r in rows)
    summary = {"rows": rows, "accuracy_difference": diffs, "seed_spread_one_process": seed_spread,
               "throughput_ratio_two_over_one": ratios, "images": args.images, "epochs": args.epochs,
               "cpus": os.cpu_count()}
    print(f"accuracy 2 - 1 processes: {', '.join(f'{d:+.4f}' for d in diffs)} (seed spread of 1 process "
          f"{seed_spread:.4f}); throughput ratio 2/1: {', '.join(f'{r:.2f}' for r in ratios)}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

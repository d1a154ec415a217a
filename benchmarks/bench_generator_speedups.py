"""The embedded generator's speed-ups, before and after, in one process (issue 8, item 4).

    OMP_NUM_THREADS=1 python benchmarks/bench_generator_speedups.py [--quick] [--no-compile]

A. Images/s at 10 DPM-Solver++ steps with classifier-free guidance (guidance 2), the same 256 prompts
   and seeds for every variant, best of ``--repeats`` runs, from the naive setting (fp32, the two
   guidance branches as two passes, all 256 prompts in one batch, NCHW, eager) through each speed-up
   in turn: batched guidance, bf16 autocast, channels-last, micro-batches (a sweep), torch.compile.
   Every variant's images are compared with the naive ones (mean and max |difference| in grey levels),
   so a speed-up that changes the pictures shows.
B. Fewer-step solvers: DDIM and DPM-Solver++(2M) at 10 / 25 / 50 steps — images/s and the
   classification accuracy score (a ResNet-8 trained on real Fashion-MNIST classifying 50 images per
   class generated from "a photo of a {class}") and the Frechet distance of the small CLIP's image
   features to as many real test images: how few steps keep the quality.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table  # noqa: E402

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def timed(gen, prompts, seeds, steps: int, scheduler: str = "dpm", repeats: int = 2):
    """(best seconds, images) of ``repeats`` calls over all prompts (call once before: a warm-up)."""
    best, images = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        images = gen(prompts, seeds, guidance=2.0, steps=steps, scheduler=scheduler, batch_size=len(prompts)).images
        best = min(best, time.perf_counter() - t0)
    return best, images


def ladder(args) -> List[Dict[str, object]]:
    from synthclone.generators import create_generator
    from synthclone.generators.embedded import MICRO_BATCH

    n = args.batch
    m0 = min(MICRO_BATCH, n)
    prompts = [f"a photo of a {CLASSES[i % 10]}" for i in range(n)]
    seeds = list(range(n))
    variants = [
        (f"naive: fp32, guidance as 2 passes, 1 batch of {n}", dict(precision="fp32", cfg="separate", micro_batch=n)),
        ("+ guidance batched into one pass", dict(precision="fp32", cfg="batched", micro_batch=n)),
        ("+ bf16 autocast", dict(precision="bf16", cfg="batched", micro_batch=n)),
        ("+ channels-last (not kept)", dict(precision="bf16", cfg="batched", micro_batch=n, channels_last=True)),
    ]
    variants += [(f"bf16, batched, micro-batches of {m}", dict(precision="bf16", cfg="batched", micro_batch=m))
                 for m in args.micro]
    variants += [(f"bf16, guidance as 2 passes, micro-batches of {m0}", dict(precision="bf16", cfg="separate", micro_batch=m0)),
                 (f"fp32, batched, micro-batches of {m0}", dict(precision="fp32", cfg="batched", micro_batch=m0)),
                 (f"the default now: bf16, batched, micro-batches of {m0}", dict())]
    if not args.no_compile:
        variants.append(("+ torch.compile (generator_options: {{compile: true}})", dict(compile=True)))
    rows, ref, base = [], None, None
    for label, options in variants:
        gen = create_generator("embedded", **options)
        gen.encoder.encode(prompts)  # prompt embeddings cached: time the sampler only
        t_first = time.perf_counter()  # the first full call: warm-up, and compilation when asked
        gen(prompts, seeds, guidance=2.0, steps=args.steps, batch_size=n)
        first = time.perf_counter() - t_first
        sec, images = timed(gen, prompts, seeds, args.steps, repeats=args.repeats)
        ips = n / sec
        if ref is None:
            ref, base = images, ips
        diff = (images.int() - ref.int()).abs().float()
        rows.append({"variant": label, "images/s": ips, "speed-up vs naive": ips / base,
                     "first call s (incl. compile)": first, "mean abs diff vs naive (grey levels)": float(diff.mean()),
                     "max abs diff": int(diff.max())})
        print(f"  {label}: {ips:.1f} images/s", file=sys.stderr, flush=True)
    return rows


def solvers(args) -> List[Dict[str, object]]:
    from synthclone.generators import create_generator
    from synthclone.data import load_dataset
    from synthclone.generators.evaluate import _real_classifier, clip_features, frechet_distance, generate_per_class, predict
    from synthclone.models.small_clip import load_small_clip

    clf_dir = Path(args.classifier_dir)
    clf_dir.mkdir(parents=True, exist_ok=True)
    clf, real_acc = _real_classifier(clf_dir, 0)
    gen = create_generator("embedded")
    clip = load_small_clip()
    test = load_dataset("fashion-mnist", split="test")
    n_real = len(CLASSES) * args.per_class
    real_feats = clip_features(clip, test.images[:n_real])
    rows = []
    for scheduler in ("ddim", "dpm"):
        for steps in args.solver_steps:
            t0 = time.perf_counter()
            images, labels = generate_per_class(gen, CLASSES, args.per_class, guidance=2.0, steps=steps,
                                                scheduler=scheduler, batch_size=256, desc=f"{scheduler} {steps}")
            sec = time.perf_counter() - t0
            cas = float((predict(clf, images) == labels).float().mean())
            fd = frechet_distance(clip_features(clip, images), real_feats)
            rows.append({"solver": scheduler, "steps": steps, "images": len(images), "images/s": len(images) / sec,
                         "classification accuracy score %": 100 * cas, "FD to real (small-CLIP features)": fd})
            print(f"  {scheduler} {steps}: {len(images) / sec:.1f} images/s, CAS {100 * cas:.1f}%", file=sys.stderr, flush=True)
    other_real = clip_features(clip, test.images[n_real:2 * n_real])
    rows.append({"solver": "(real test images)", "steps": "-", "images": f"10,000 (CAS) / {n_real} (FD)", "images/s": "-",
                 "classification accuracy score %": 100 * real_acc,
                 "FD to real (small-CLIP features)": frechet_distance(other_real, real_feats)})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 prompts, 1 repeat, 10 images per class, no compile")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--micro", default="8,16,32,64,128", help="micro-batch sizes of the sweep")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--per-class", type=int, default=50, help="images per class for the solver comparison")
    p.add_argument("--solver-steps", default="5,10,25,50")
    p.add_argument("--classifier-dir", default="/tmp/synthclone-bench/real-classifier")
    p.add_argument("--skip-solvers", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.repeats, args.per_class, args.no_compile = 64, 1, 10, True
    args.micro = [int(m) for m in args.micro.split(",") if int(m) < args.batch]
    args.solver_steps = [int(s) for s in args.solver_steps.split(",")]

    print("## Embedded generator: speed-ups before and after\n")
    print(f"machine: {machine_line()}\n")
    print(f"### A. {args.batch} prompts, {args.steps} DPM-Solver++ steps, guidance 2, best of {args.repeats}\n")
    print(markdown_table(ladder(args)))
    if not args.skip_solvers:
        print(f"\n### B. Solvers and steps: {args.per_class} images per class, guidance 2, shipped defaults "
              "(bf16, batched guidance, micro-batches)\n")
        print(markdown_table(solvers(args)))
    print(f"\nmachine at the end: {machine_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

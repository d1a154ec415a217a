"""Attacks: synthclone's L-inf PGD vs torchattacks' PGD on the same trained ResNet-8.

    OMP_NUM_THREADS=1 python benchmarks/bench_attacks.py            # 1,000 test images, 10 steps
    OMP_NUM_THREADS=1 python benchmarks/bench_attacks.py --quick    # 256 images, 5 steps
    ... --device cuda   # both attacks, the model and the images on the GPU (timed to completion)

A ResNet-8 is trained on real Fashion-MNIST (``train_model("supervised", ...)``, 2 epochs on
the first 20,000 images of the real training split; cached in ``--model-dir``), then attacked on
the first N official test images with both implementations: same epsilon, steps and step size
(``2.5 * eps / steps``), no random start, model in eval mode, fp32. Robust accuracy must agree
within 0.5 points (the two compute the same iterates, so they normally agree exactly);
throughput is attacked images per second, best of ``--repeats`` alternating runs (target:
synthclone / torchattacks >= 1.0). Both implementations run in this process with the same torch
threads, so the ratio is fair even on a loaded machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table  # noqa: E402


def trained_model(model_dir: Path, train_limit: int = 20_000, epochs: int = 2):
    """A ResNet-8 trained on real Fashion-MNIST (loaded from ``model_dir`` when already there)."""
    from synthclone.models.checkpoint import load_checkpoint

    if (model_dir / "meta.json").exists():
        return load_checkpoint(model_dir)
    from synthclone.data.fashion_mnist import load
    from synthclone.training import train_model

    train = load("train")
    train = train.subset(range(min(train_limit, len(train))))
    val = load("val")
    val = val.subset(range(1000))
    res = train_model("supervised", train, val, "resnet8", model_dir, epochs=epochs, batch_size=128, seed=0)
    return load_checkpoint(res.checkpoint_dir)


def _attack_all(fn, x: torch.Tensor, y: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)])


def compare(model, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, batch: int = 250,
            repeats: int = 2) -> Dict[str, object]:
    """Robust accuracy and images/s of both PGDs at one epsilon (L-inf, no random start), on ``x``'s device."""
    import torchattacks

    from synthclone.device import synchronize
    from synthclone.robustness.adversarial import pgd

    alpha = 2.5 * eps / steps
    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)

    def ours(xb, yb):
        return pgd(model, xb, yb, eps, "linf", steps, alpha, random_start=False)

    def theirs(xb, yb):
        return ta(xb, yb)

    times = {"synthclone": float("inf"), "torchattacks": float("inf")}
    advs = {}
    for _ in range(repeats):  # alternate so both see the same machine load
        for name, fn in (("synthclone", ours), ("torchattacks", theirs)):
            t0 = time.perf_counter()
            advs[name] = _attack_all(fn, x, y, batch)
            synchronize(x.device)
            times[name] = min(times[name], time.perf_counter() - t0)
    with torch.no_grad():
        acc = {k: float((model(v).argmax(1) == y).float().mean()) * 100 for k, v in advs.items()}
        same_pred = float((model(advs["synthclone"]).argmax(1) == model(advs["torchattacks"]).argmax(1)).float().mean())
    linf = {k: float((v - x).abs().max()) for k, v in advs.items()}
    return {
        "eps": f"{eps * 255:.0f}/255", "steps": steps,
        "robust acc synthclone %": acc["synthclone"], "robust acc torchattacks %": acc["torchattacks"],
        "abs diff (points)": abs(acc["synthclone"] - acc["torchattacks"]),
        "same prediction %": same_pred * 100,
        "max abs(x_adv - x_adv')": float((advs["synthclone"] - advs["torchattacks"]).abs().max()),
        "max L-inf (ours/theirs)": f"{linf['synthclone'] * 255:.2f}/{linf['torchattacks'] * 255:.2f} /255",
        "synthclone img/s": len(x) / times["synthclone"], "torchattacks img/s": len(x) / times["torchattacks"],
        "speed ratio": times["torchattacks"] / times["synthclone"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="256 images, 5 steps, 1 repeat")
    p.add_argument("--n", type=int, default=1000, help="test images attacked")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eps", default="1,4,8", help="epsilons in 1/255 units")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--batch", type=int, default=250, help="images per call of either attack")
    p.add_argument("--model-dir", default="/tmp/synthclone-bench/resnet8-fmnist")
    p.add_argument("--device", default="cpu", help="where both attacks run: cpu, cuda, cuda:N (default cpu)")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.steps, args.repeats = 256, 5, 1

    import torchattacks

    from synthclone.data.fashion_mnist import load
    from synthclone.device import resolve_device

    device = resolve_device(args.device)
    model = trained_model(Path(args.model_dir)).eval().to(device)
    for q in model.parameters():
        q.requires_grad_(False)  # both attacks only need input gradients
    test = load("test")
    x = test.images[: args.n].float().div(255.0).to(device)
    y = test.labels[: args.n].long().to(device)
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean()) * 100
    rows: List[Dict[str, object]] = [compare(model, x, y, float(e) / 255.0, args.steps, batch=args.batch, repeats=args.repeats)
                                     for e in args.eps.split(",")]
    print(f"## Attacks: synthclone PGD vs torchattacks {torchattacks.__version__} PGD\n")
    print(f"machine: {machine_line()}; device: {device}\n")
    print(f"model: ResNet-8 trained on real Fashion-MNIST ({args.model_dir}); clean accuracy {clean:.1f}% on "
          f"{args.n} test images; L-inf PGD, step 2.5*eps/steps, no random start, batch {args.batch}, "
          f"best of {args.repeats} alternating runs\n")
    print(markdown_table(rows))
    ok_acc = all(r["abs diff (points)"] <= 0.5 for r in rows)
    ok_speed = all(r["speed ratio"] >= 1.0 for r in rows)
    print(f"\nrobust accuracy within 0.5 points: {'yes' if ok_acc else 'NO'}; "
          f"speed ratio >= 1.0: {'yes' if ok_speed else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Data at scale: memory flat in the dataset size, and loading as fast as torchvision's.

1. **Memory.** Peak RSS of ``synthclone bench --probes all`` and of one training epoch
   (``synthclone train``) on generated 224-px JPEG ImageFolders of N and 4N images, read at 32 px (flat folders,
   so train / val / test are carved 80 / 10 / 10). Each run is a fresh process measured with
   ``resource.getrusage(RUSAGE_CHILDREN)``; the figure is the ratio 4N / N (target <= 1.2).
   Measured with ``data.cache_mb: 0`` (every split streamed) and with the default (splits up to
   256 MiB of decoded pixels held in memory).
2. **Loader throughput.** Decode + resize (shorter side, centre crop) of the same JPEG folder at
   224 px: ``ImageSet.batches`` (DataLoader workers) against torchvision ``ImageFolder`` +
   ``DataLoader`` with the same workers, batch size and transform (``Resize`` + ``CenterCrop`` +
   ``PILToTensor``); and the training path, with random resized crop + flip (ours on the batch in
   the main process, torchvision's ``RandomResizedCrop`` in the workers). Target: ours >= 0.9x.

    python benchmarks/bench_data_scale.py [--n 5000] [--quick] [--workers 2]

Folders are made once under ``.cache/bench-data/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench-data"
CLASSES = [f"class{c:02d}" for c in range(10)]


def make_folder(n: int, size: int = 224) -> Path:
    """``n`` JPEGs (quality 90) in 10 class folders: smooth class-coloured blobs plus noise, so they
    compress like photos (about 10-20 kB each), not like noise or flat colour."""
    from PIL import Image

    root = CACHE / f"jpeg{size}-{n}"
    done = root / ".complete"
    if done.is_file():
        return root
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % len(CLASSES)
        cx, cy, r = rng.uniform(0.2, 0.8, 2).tolist() + [rng.uniform(0.1, 0.4)]
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        base = np.stack([blob * (60 + 19 * c), blob * (200 - 13 * c), (1 - blob) * 150], -1)
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img, "RGB").save(root / CLASSES[c] / f"{i:06d}.jpg", quality=90)
    done.write_text("ok")
    return root


def peak_rss_mib(cmd: list, env: dict) -> tuple:
    """(peak RSS in MiB of the largest process of ``cmd``, seconds, output) of one fresh run.

    ``cmd`` runs as the child of a fresh interpreter that reports its own ``RUSAGE_CHILDREN``
    maximum, so every figure belongs to that run alone (the counter only grows within a process).
    The largest process is the main one, which holds the index and anything cached; DataLoader
    workers hold a few batches each.
    """
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _ISOLATE, json.dumps(cmd)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    return json.loads(last)["maxrss_kb"] / 1024.0, seconds, proc.stdout


_ISOLATE = """
import json, resource, subprocess, sys
r = subprocess.run(json.loads(sys.argv[1]))
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
sys.exit(r.returncode)
"""


BENCH_OPTIONS = ["corruptions=[\"gaussian_noise\",\"contrast\"]", "severities=[3]", "attacks=[\"fgsm\"]",
                 "epsilons=[0.00784313725490196]", "corruption_limit=200", "adversarial_limit=100",
                 "shape_limit=200", "background_limit=200", "ood_limit=200"]


def memory(folders: dict, workers: int, quick: bool) -> list:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNTHCLONE_QUIET": "1"}
    exe = [sys.executable, "-m", "synthclone"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cache_mb in (0, 256):
            for n, folder in folders.items():  # small first: ru_maxrss of children only grows
                cmd = exe + ["bench", "--model", "resnet8", "--data", str(folder), "--probes", "all",
                             "--image-size", "32", "--workers", str(workers), "--cache-mb", str(cache_mb),
                             "--out", f"{tmp}/bench-{n}-{cache_mb}", "--no-plots"]
                for o in BENCH_OPTIONS:
                    cmd += ["--option", o]
                rss, sec, _ = peak_rss_mib(cmd, env)
                rows.append({"what": "bench --probes all", "images": n, "cache_mb": cache_mb,
                             "peak RSS MiB": round(rss, 1), "seconds": round(sec, 1)})
                cfg = Path(tmp) / f"train-{n}-{cache_mb}.yaml"
                cfg.write_text(json.dumps({"data": {"dataset": str(folder), "image_size": 32, "cache_mb": cache_mb,
                                                    "workers": workers, "val_limit": 500}}))
                cmd = exe + ["train", "--config", str(cfg), "--data", "real", "--model", "resnet8", "--epochs", "1",
                             "--batch-size", "128", "--out", f"{tmp}/train-{n}-{cache_mb}"]
                rss, sec, _ = peak_rss_mib(cmd, env)
                rows.append({"what": "train 1 epoch", "images": n, "cache_mb": cache_mb,
                             "peak RSS MiB": round(rss, 1), "seconds": round(sec, 1)})
    return rows


def throughput(folder: Path, workers: int, batch: int, limit: int) -> list:
    import torch
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from synthclone.data.folder import load_folder
    from synthclone.training.augment import random_resized_crop_flip

    torch.set_num_threads(1)
    ours = load_folder(folder, size=224, cache_bytes=0, workers=workers)
    index = torch.arange(min(limit, len(ours)))
    tv_eval = datasets.ImageFolder(str(folder), transform=transforms.Compose(
        [transforms.Resize(224), transforms.CenterCrop(224), transforms.PILToTensor()]))
    tv_train = datasets.ImageFolder(str(folder), transform=transforms.Compose(
        [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor()]))
    sub = list(range(len(index)))

    def run_ours(augment: bool) -> float:
        t0, seen = time.perf_counter(), 0
        g = torch.Generator().manual_seed(0)
        for x, idx in ours.batches(batch, index=index):
            if augment:  # as the training loop does: crop the uint8 batch, then the float copy (torchvision: ToTensor)
                x = random_resized_crop_flip(x, g).float().div_(255)
            seen += len(idx)
        return seen / (time.perf_counter() - t0)

    def run_tv(ds) -> float:
        loader = DataLoader(Subset(ds, sub), batch_size=batch, num_workers=workers, shuffle=False)
        t0, seen = time.perf_counter(), 0
        for x, y in loader:
            seen += len(y)
        return seen / (time.perf_counter() - t0)

    rows = []
    for name, mine, peer in [("decode + resize + centre crop (evaluation)", lambda: run_ours(False), lambda: run_tv(tv_eval)),
                             ("decode + random resized crop + flip (training)", lambda: run_ours(True), lambda: run_tv(tv_train))]:
        a, b = [], []
        for _ in range(3):  # interleaved repeats: both see the same machine state
            a.append(mine())
            b.append(peer())
        rows.append({"path": name, "images": len(index), "workers": workers, "synthclone img/s": round(max(a), 1),
                     "torchvision img/s": round(max(b), 1), "ratio": round(max(a) / max(b), 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="the small folder's size; the large one has 4x")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1,000 and 4,000 images")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    n = 1000 if args.quick else args.n
    folders = {n: make_folder(n), 4 * n: make_folder(4 * n)}
    print(f"machine: {machine_line()}")
    if not args.skip_throughput:
        rows = throughput(folders[n], args.workers, batch=128, limit=min(n, 3000))
        print("\n## Loader throughput (224 px JPEGs)\n")
        print(markdown_table(rows))
    if not args.skip_memory:
        rows = memory(folders, args.workers, args.quick)
        print("\n## Peak memory vs dataset size (224 px JPEGs read at 32 px)\n")
        print(markdown_table(rows))
        for what in ("bench --probes all", "train 1 epoch"):
            for cache in (0, 256):
                sel = {r["images"]: r["peak RSS MiB"] for r in rows if r["what"] == what and r["cache_mb"] == cache}
                print(f"{what}, cache_mb {cache}: RSS ratio {4 * n} / {n} images = {sel[4 * n] / sel[n]:.3f}")


if __name__ == "__main__":
    main()

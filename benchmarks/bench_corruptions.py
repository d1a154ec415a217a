"""Corruptions: synthclone's batched torch ops vs the released ``imagecorruptions`` package.

    OMP_NUM_THREADS=1 python benchmarks/bench_corruptions.py            # speed, perturbation and accuracy agreement
    OMP_NUM_THREADS=1 python benchmarks/bench_corruptions.py --quick    # fewer images and seeds, short budgets
    ... --sections agreement,accuracy   # any of throughput, agreement, accuracy (default: all three)
    ... --threads2     # plus a column: synthclone with torch at 2 threads (the ratios stay 1 thread vs 1)
    ... --device cuda  # synthclone's side on the GPU (the reference stays on the CPU; timed to completion)

Images: the first Fashion-MNIST test images, colourised (a random foreground colour per image
over a smooth two-colour background gradient, so hue/saturation corruptions have colour to act
on), as RGB uint8, resized (bilinear, antialiased) to 224 px and kept at 28 px.

* Both sides run in one process with the synthclone CLI's malloc settings (:mod:`synthclone.allocator`:
  freed blocks stay mapped for reuse; ``--default-malloc`` keeps glibc's defaults).
* Throughput at batch 64, severity 3: synthclone corrupts the batch in one call (which works
  through it in cache-sized chunks internally); the reference runs its per-image function over the
  same 64 images (the way its README uses it), stopping early after a time budget for the slow ones
  (images/s is then from the images done). Each side keeps its best of several runs (load spikes
  only slow a run down). synthclone's speed on one image at a time is shown too: it separates the
  gain from batching from the per-pixel cost. On the CPU each row also has its floor
  (:func:`speed_floors`: one write of a fresh batch, plus 16 random bits per value for the per-pixel
  noises) and the "ceiling ratio" floor / reference, the most any implementation could reach here.
* Perturbation agreement at 224 px, where synthclone uses the published ImageNet-C constants, per
  (corruption, severity):
  deterministic corruptions: PSNR of synthclone's output against the reference's (both
  quantised to uint8 the reference's way, by truncation; >= 30 dB on every image agrees); noise
  corruptions: mean and standard deviation of the perturbation ``x' - x`` over all pixels (they
  draw from different generators, so only the distribution can match; mean within 0.005 and std
  within 5% agree); the other random ones (glass, motion, snow, frost, fog, elastic, spatter): the
  per-image mean |x' - x| over images x seeds, its mean and its standard deviation on both sides,
  and the two ratios synthclone / reference with a jackknife interval over images
  (:func:`ratio_agreement`); both ratios within 10% agree. glass_blur's reference is a Python loop
  over pixels (~0.7 s per image and severity at 224 px): it gets 1/4 of the images (at least 3) and
  one seed, said in the output.
* Accuracy agreement: fixed models (:class:`GrayAt28`: the channel mean of a 224-px RGB image,
  area-downsampled to 28 px, into a ResNet-8 trained for 2 epochs on real Fashion-MNIST, cached in
  ``--model-dir``; "plain", and "min-max" with each image stretched to [0, 1] first, which keeps it
  above chance under snow and frost) on the first ``--images`` Fashion-MNIST test images, upsampled
  to 224 px and replicated to RGB, corrupted by synthclone (float, as its probe feeds the model) and
  by the reference (uint8, as its ``corrupt()`` returns), per (corruption, severity). A cell agrees
  when the accuracies differ by at most max(1 point, the 95% half-width of the paired difference on
  the same images); cells where both sides are near chance are marked. glass_blur gets 1/5 of the
  images.
* At 28 px only throughput is compared: synthclone switches to the CIFAR-10-C table scaled by
  28/32 for images of <= 64 px, while the reference always applies the ImageNet-C constants (and its
  ``corrupt()`` refuses images under 32 px, so its per-corruption functions are called directly).

The reference needs three shims on the installed libraries, applied here (benchmark only; the
package is not patched on disk, synthclone's side is untouched) and reported in the output:
``pkg_resources`` (not in the installed setuptools) for its frost images, during its import only;
scikit-image's ``gaussian(multichannel=True)`` (not in the installed 0.26; glass_blur and
gaussian_blur); NumPy's ``np.float_`` (removed in 2.0; fog). With them all 19 corruptions run at
224 px; any that still fail are caught one by one and reported with the error.
``tests/test_corruption_agreement.py`` runs the perturbation check on a small sample with the same
functions.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, machine_line, markdown_table  # noqa: E402

DETERMINISTIC = ["defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression",
                 "gaussian_blur", "saturate"]
NOISE = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]
# references too slow for the full sample at 224 px: they get 1/SLOW_SHARE of the images (and one seed)
SLOW = {"glass_blur": "its reference swaps pixels one by one in a Python loop, ~0.7 s per image and severity"}
SLOW_SHARE = {"agreement": 4, "accuracy": 5}
TOLERANCE = 0.10  # random corruptions: ratios synthclone / reference within 10% agree


PKG_RESOURCES_NOTE = "pkg_resources (absent from the installed setuptools): a stub resource_filename during the import"


def _package_file(package: str, path: str) -> str:
    """pkg_resources.resource_filename for a plain installed package: ``path`` beside its ``__init__``."""
    return str(Path(importlib.util.find_spec(package).origin).parent / path)


_package_file._shim = True


@contextlib.contextmanager
def pkg_resources_stub():
    """While imagecorruptions is imported: where setuptools no longer ships ``pkg_resources``, a stub
    module providing the one function it imports (``resource_filename``, for its frost images).

    The stub leaves ``sys.modules`` afterwards (the package keeps the function it imported), so
    nothing else in the process sees a half ``pkg_resources``."""
    if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
        yield
        return
    stub = types.ModuleType("pkg_resources")
    stub.resource_filename = _package_file
    sys.modules["pkg_resources"] = stub
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is stub:
            del sys.modules["pkg_resources"]


def _shim_gaussian_multichannel(module) -> Optional[str]:
    """The reference's blurs call ``skimage.filters.gaussian(..., multichannel=True)``; scikit-image
    0.19 replaced the argument by ``channel_axis`` and later releases dropped it (glass_blur and
    gaussian_blur then raise TypeError). Translate it in the reference module's ``gaussian`` only (the
    package's repository fixed the calls after 1.1.2, its last release)."""
    import inspect

    from skimage.filters import gaussian

    note = "skimage.filters.gaussian(multichannel=True) -> channel_axis=-1 (glass_blur, gaussian_blur)"
    if getattr(module.gaussian, "_shim", False):
        return note
    if "multichannel" in inspect.signature(gaussian).parameters:
        return None

    def gaussian_compat(image, *args, multichannel=None, **kwargs):
        if multichannel is not None:
            kwargs.setdefault("channel_axis", -1 if multichannel else None)
        return gaussian(image, *args, **kwargs)

    gaussian_compat._shim = True
    module.gaussian = gaussian_compat
    return note


class _NumpyWithFloat_(types.ModuleType):
    """numpy as the reference module sees it, plus the ``np.float_`` alias NumPy 2.0 removed."""

    float_ = np.float64
    _shim = True

    def __getattr__(self, name):
        return getattr(np, name)


def _shim_numpy_float_(module) -> Optional[str]:
    """fog's plasma_fractal allocates with ``np.float_`` (removed in NumPy 2.0: AttributeError).
    Give the reference module a numpy that still has the alias; numpy itself is left unchanged."""
    note = "np.float_ (removed in NumPy 2.0) -> np.float64 in the reference module (fog's plasma_fractal)"
    if getattr(module.np, "_shim", False):
        return note
    if hasattr(np, "float_"):
        return None
    module.np = _NumpyWithFloat_("numpy")
    return note


def load_reference():
    """(module, list of shims applied) for the imagecorruptions package.

    Each shim is applied only where the installed library needs it and only inside the reference's
    module, so synthclone's side runs on the libraries as installed. A second call returns the same list."""
    with warnings.catch_warnings(), pkg_resources_stub():
        warnings.simplefilter("ignore")
        import cv2
        import imagecorruptions
        import imagecorruptions.corruptions as ops
    shims = [PKG_RESOURCES_NOTE] if getattr(ops.resource_filename, "_shim", False) else []
    shims += [s for s in [_shim_gaussian_multichannel(ops), _shim_numpy_float_(ops)] if s]
    # OpenCV runs its own thread pool regardless of OMP_NUM_THREADS; pin it to torch's count so
    # neither side gets more cores than the other
    cv2.setNumThreads(torch.get_num_threads())
    return imagecorruptions, shims


def test_images(n: int = 64, size: int = 224, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 3, size, size): colourised Fashion-MNIST test images (see the module docstring)."""
    from synthclone.data.fashion_mnist import load

    data = load("test")
    m = data.images[:n].float().div(255.0)  # (n, 1, 28, 28) ink mask
    g = torch.Generator().manual_seed(seed)
    fg = torch.rand(n, 3, 1, 1, generator=g) * 0.8 + 0.1
    bg_a = torch.rand(n, 3, 1, 1, generator=g) * 0.4 + 0.5
    bg_b = torch.rand(n, 3, 1, 1, generator=g) * 0.4 + 0.5
    ramp = torch.linspace(0, 1, 28).view(1, 1, 28, 1)
    bg = bg_a * (1 - ramp) + bg_b * ramp
    x = fg * m + bg * (1 - m)
    if size != 28:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def run_reference(ref, name: str, img_hwc: np.ndarray, severity: int) -> np.ndarray:
    """One image through the reference function, as its ``corrupt()`` does (float array, 0..255)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ref.corruption_dict[name](Image.fromarray(img_hwc), severity)
    return np.asarray(out, dtype=np.float64)


def _err(e: Exception) -> str:
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {msg[:90]}"


def reference_status(ref, names: List[str]) -> Dict[str, Optional[str]]:
    """None for corruptions the reference runs on a 224-px RGB image, else its error."""
    img = np.full((224, 224, 3), 128, dtype=np.uint8)
    status = {}
    for n in names:
        try:
            np.random.seed(0)
            run_reference(ref, n, img, 1)
            status[n] = None
        except Exception as e:  # noqa: BLE001 — every failure is reported, none hidden
            status[n] = _err(e)
    return status


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def throughput(ref, names, images: torch.Tensor, status, severity: int = 3, budget_s: float = 10.0,
               repeats: int = 2, threads2: bool = False, device: str = "cpu") -> List[Dict[str, object]]:
    """Images/s of synthclone (one batched call) and of the reference (per-image loop) per corruption.

    With ``threads2`` synthclone's batched call is also timed with torch at 2 threads (its default on
    this 2-core machine; the reference stays at 1) — an extra column, not part of the ratio. With a
    GPU ``device`` synthclone corrupts images already there and each call is timed until the GPU is
    done (random numbers are still drawn on the CPU, as in the probe)."""
    from synthclone.device import synchronize
    from synthclone.robustness.corruption_ops import corrupt

    x = images.float().div(255.0).to(device)
    hwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    rows = []

    def run(batch, name, g):
        corrupt(batch, name, severity, g)
        synchronize(device)

    floors = speed_floors(x) if torch.device(device).type == "cpu" else {}

    for name in names:
        g = torch.Generator().manual_seed(0)
        run(x[:2], name, g)  # warm-up (kernel caches, lazy imports)
        # best of several calls (at least `repeats`, more while under a second is spent): load spikes
        # on a shared machine only ever make a call slower
        ours = len(x) / best_time(lambda: run(x, name, g), repeats=max(repeats, 20), budget_s=1.0,
                                  min_repeats=repeats)
        one = 1 / best_time(lambda: run(x[:1], name, g), repeats=20, budget_s=0.5, min_repeats=3)
        row: Dict[str, object] = {"corruption": name, "synthclone img/s": ours, "synthclone img/s at batch 1": one}
        if threads2:
            before = torch.get_num_threads()
            torch.set_num_threads(2)
            try:
                row["synthclone img/s, 2 threads"] = len(x) / best_time(
                    lambda: run(x, name, g), repeats=max(repeats, 20), budget_s=1.0, min_repeats=repeats)
            finally:
                torch.set_num_threads(before)
        if status.get(name):
            row.update({"reference img/s": float("nan"), "ratio": float("nan"), "ratio at batch 1": float("nan"),
                        "note": "reference fails"})
        else:
            np.random.seed(0)
            best_rate, done = 0.0, 0
            for _ in range(3):  # whole passes over the batch while they are cheap, best rate kept
                done, t0 = 0, time.perf_counter()
                for img in hwc:
                    np.uint8(run_reference(ref, name, img, severity))
                    done += 1
                    if time.perf_counter() - t0 > budget_s:
                        break
                spent = time.perf_counter() - t0
                best_rate = max(best_rate, done / spent)
                if spent > budget_s / 4:
                    break
            row.update({"reference img/s": best_rate, "ratio": ours / best_rate, "ratio at batch 1": one / best_rate,
                        "note": "" if done == len(hwc) else f"reference timed on {done} images"})
            if floors:
                floor = floors[DRAW_PER_VALUE.get(name, "write")]
                row.update({"floor img/s": floor, "ceiling ratio": floor / best_rate})
        rows.append(row)
    return rows


# corruptions that need random bits for every output value (the Gaussian, speckle and shot noise)
DRAW_PER_VALUE = {"gaussian_noise": "bits16", "speckle_noise": "bits16", "shot_noise": "bits16"}


def speed_floors(x: torch.Tensor) -> Dict[str, float]:
    """Images/s of what a faithful batched corruption of ``x`` cannot avoid, on this CPU and thread.

    ``write``: writing the result once into a fresh float batch of ``x``'s shape (synthclone's
    ``empty_output`` plus one copy; every corruption returns such a batch); ``bits16``: 16 random bits
    per value from the generator synthclone draws from (``core.random_bits_on``, four values to a 64-bit
    word, in cache-sized calls until the batch is covered), plus the write. The per-value noises take
    16 bits a value (their samplers invert a 16-bit uniform). A corruption's floor over the reference's
    images/s bounds the speed-up any implementation could reach (the "ceiling ratio" column): a loose
    bound, since the blurs, warps and zooms do far more than one pass."""
    from synthclone.robustness.core import random_bits_on
    from synthclone.robustness.corruption_ops import CHUNK_VALUES, empty_output

    def write():
        empty_output(x.shape).copy_(x)

    def bits16():
        g = torch.Generator().manual_seed(0)
        words = min(CHUNK_VALUES, x.numel()) // 4
        for _ in range(-(-x.numel() // (4 * words))):
            random_bits_on(words, g)

    def rate(fn):
        return len(x) / best_time(fn, repeats=20, budget_s=1.0, min_repeats=3)

    floors = {"write": rate(write)}
    floors["bits16"] = 1 / (1 / rate(bits16) + 1 / floors["write"])
    return floors


def perturbation_samples(ref, name: str, images: torch.Tensor, severity: int, seeds: Sequence[int],
                         device: str = "cpu") -> Tuple[np.ndarray, np.ndarray]:
    """Per-image mean |x' - x| (in [0, 1] units) of synthclone and of the reference: two (seeds, N) arrays.

    ``images``: uint8 (N, 3, H, W). Neither side is quantised (the reference's ``corrupt()`` would
    truncate to uint8, which moves |x' - x| by up to 1/255); column j is image j on both sides."""
    from synthclone.robustness.corruption_ops import corrupt

    x = images.float().div(255.0).to(device)
    base = images.permute(0, 2, 3, 1).contiguous().numpy()
    ours, theirs = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(1000 * seed + severity)
        out = corrupt(x, name, severity, g).cpu().permute(0, 2, 3, 1).double().numpy()
        ours.append(np.abs(out - base / 255.0).mean(axis=(1, 2, 3)))
        np.random.seed(1000 * seed + severity)
        theirs.append([np.abs(run_reference(ref, name, img, severity) - img).mean() / 255.0 for img in base])
    return np.asarray(ours), np.asarray(theirs)


def _log_ratio_interval(ours: np.ndarray, theirs: np.ndarray, fn, level: float) -> Tuple[float, float]:
    """``level`` interval of fn(ours) / fn(theirs): a jackknife over images (columns) on the log scale
    with Student's t at images - 1 degrees of freedom; (0, inf) where leaving an image out leaves
    nothing to compare."""
    from scipy.stats import t as student_t

    n = ours.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        point = np.log(fn(ours) / fn(theirs))
        loo = np.array([np.log(fn(np.delete(ours, i, 1)) / fn(np.delete(theirs, i, 1))) for i in range(n)])
    if n < 2 or not np.all(np.isfinite(loo)):
        return 0.0, float("inf")
    se = math.sqrt((n - 1) / n * float(np.sum((loo - loo.mean()) ** 2)))
    q = float(student_t.ppf((1 + level) / 2, n - 1))
    return math.exp(point - q * se), math.exp(point + q * se)


def ratio_agreement(ours: np.ndarray, theirs: np.ndarray, tol: float = TOLERANCE,
                    level: float = 0.95) -> Dict[str, object]:
    """Mean and spread of a per-image statistic on both sides, their ratios and intervals.

    ``ours``, ``theirs``: (seeds, images) arrays, the same image in the same column. Means and
    standard deviations run over all seeds x images. The ``level`` intervals of the two ratios come
    from a jackknife over images (each left out with all its seeds, on both sides at once), so what
    the images share cancels while the seed-to-seed variation counts, and Student's t widens them for
    few images. ``agree``: "yes" when both ratios lie within ``tol`` of 1; "NO" when an interval lies
    wholly outside [1 - tol, 1 + tol] (``excluded``: the sample shows a disagreement); else "NO,
    within noise" (the sample cannot tell)."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape or ours.ndim != 2:
        raise ValueError(f"need two (seeds, images) arrays of one shape, got {ours.shape} and {theirs.shape}")
    out: Dict[str, object] = {"synthclone mean": ours.mean(), "synthclone sd": ours.std(),
                              "reference mean": theirs.mean(), "reference sd": theirs.std()}
    within, excluded = True, False
    for stat, fn in (("means", np.mean), ("sds", np.std)):
        point = float(fn(ours) / fn(theirs))
        lo, hi = _log_ratio_interval(ours, theirs, fn, level)
        out[f"ratio of {stat}"], out[f"ratio of {stat} CI"] = point, (lo, hi)
        within &= abs(point - 1) <= tol
        excluded |= lo > 1 + tol or hi < 1 - tol
    out["excluded"] = excluded
    out["agree"] = "yes" if within else ("NO" if excluded else "NO, within noise")
    return out


def deterministic_agreement(ours: np.ndarray, theirs: np.ndarray) -> Dict[str, object]:
    """PSNR over all images and on the worst one (arrays (N, H, W, C) in 0..255, synthclone's first).

    Both are quantised to uint8 as the reference's ``corrupt()`` does (np.uint8 truncates); every
    image must reach 30 dB (a pooled PSNR lets a few close images hide one that is not)."""
    q_ours, q_theirs = np.floor(ours + 1e-3).clip(0, 255), np.uint8(theirs.clip(0, 255))
    worst = min(psnr(a, b) for a, b in zip(q_ours, q_theirs))
    return {"PSNR dB": psnr(q_ours, q_theirs), "worst image PSNR dB": worst, "agree": "yes" if worst >= 30 else "NO"}


def noise_agreement(ours: np.ndarray, theirs: np.ndarray, base: np.ndarray) -> Dict[str, object]:
    """Mean and std of ``x' - x`` over all pixels (arrays in 0..255); agree: mean within 0.005, std within 5%."""
    d_ours, d_theirs = (ours - base) / 255.0, (theirs - base) / 255.0
    mo, mt, so, st = float(d_ours.mean()), float(d_theirs.mean()), float(d_ours.std()), float(d_theirs.std())
    ok = abs(mo - mt) <= 0.005 and abs(so / st - 1) <= 0.05
    return {"synthclone": f"{mo:+.4f} / {so:.4f}", "reference": f"{mt:+.4f} / {st:.4f}",
            "mean gap": abs(mo - mt), "std gap": abs(so / st - 1), "agree": "yes" if ok else "NO"}


def slow_sample(name: str, n: int, section: str) -> int:
    """How many of ``n`` images a corruption gets in ``section``: all, or 1/SLOW_SHARE for a slow reference."""
    return min(n, max(3, n // SLOW_SHARE[section])) if name in SLOW else n


def agreement_cell(ref, name: str, images: torch.Tensor, severity: int, seeds: Sequence[int] = (0,),
                   device: str = "cpu", level: float = 0.95) -> Dict[str, object]:
    """One (corruption, severity) cell of the perturbation agreement at the images' size.

    ``images``: uint8 (N, 3, H, W). Deterministic corruptions: PSNR on one seed; noise corruptions:
    statistics of ``x' - x`` on the first seed; the others: :func:`ratio_agreement` over ``seeds``
    with ``level`` intervals."""
    from synthclone.robustness.corruption_ops import corrupt

    row: Dict[str, object] = {"corruption": name, "severity": severity}
    if name in DETERMINISTIC or name in NOISE:
        g = torch.Generator().manual_seed(1000 * seeds[0] + severity)
        x = images.float().div(255.0).to(device)
        ours = corrupt(x, name, severity, g).cpu().permute(0, 2, 3, 1).numpy().astype(np.float64) * 255.0
        base = images.permute(0, 2, 3, 1).contiguous().numpy()
        np.random.seed(1000 * seeds[0] + severity)
        theirs = np.stack([run_reference(ref, name, img, severity) for img in base])
        if name in DETERMINISTIC:
            return {**row, "kind": "deterministic", "images": len(images), **deterministic_agreement(ours, theirs)}
        return {**row, "kind": "noise", "images": len(images),
                **noise_agreement(ours, theirs, base.astype(np.float64))}
    stats = ratio_agreement(*perturbation_samples(ref, name, images, severity, seeds, device), level=level)
    return {**row, "kind": "random", "images": len(images), "seeds": len(seeds), **stats}


def agreement(ref, names, images: torch.Tensor, status, severities, seeds: Sequence[int],
              device: str = "cpu") -> List[Dict[str, object]]:
    """:func:`agreement_cell` for every corruption and severity (a slow reference on fewer images, one seed)."""
    rows = []
    for name in names:
        if status.get(name):
            rows.append({"corruption": name, "severity": "-", "kind": "reference fails", "agree": "n/a"})
            continue
        n = slow_sample(name, len(images), "agreement")
        for sev in severities:
            rows.append(agreement_cell(ref, name, images[:n], sev, seeds[:1] if name in SLOW else seeds, device))
    return rows


def _ci(v: Tuple[float, float]) -> str:
    return f"{v[0]:.3f}-{v[1]:.3f}"


def agreement_tables(rows: List[Dict[str, object]]) -> str:
    """The agreement cells as one markdown table per kind."""
    det = [{k: r[k] for k in ("corruption", "severity", "images", "PSNR dB", "worst image PSNR dB", "agree")}
           for r in rows if r["kind"] == "deterministic"]
    noise = [{"corruption": r["corruption"], "severity": r["severity"], "images": r["images"],
              "synthclone mean / std of x'-x": r["synthclone"], "reference": r["reference"], "agree": r["agree"]}
             for r in rows if r["kind"] == "noise"]
    rand = [{"corruption": r["corruption"], "severity": r["severity"],
             "images x seeds": f"{r['images']} x {r['seeds']}",
             "synthclone mean / sd": f"{r['synthclone mean']:.4f} / {r['synthclone sd']:.4f}",
             "reference mean / sd": f"{r['reference mean']:.4f} / {r['reference sd']:.4f}",
             "ratio of means (95% CI)": f"{r['ratio of means']:.3f} ({_ci(r['ratio of means CI'])})",
             "ratio of sds (95% CI)": f"{r['ratio of sds']:.3f} ({_ci(r['ratio of sds CI'])})",
             "agree": r["agree"]} for r in rows if r["kind"] == "random"]
    parts = [("Deterministic (PSNR of synthclone's output against the reference's, over all images and on the "
              "worst image; >= 30 dB on every image agrees)", det),
             ("Noise (mean / std of x' - x over all pixels; mean within 0.005 and std within 5% agree)", noise),
             ("Other random corruptions (per-image mean |x' - x| over images x seeds; both ratios within "
              f"{TOLERANCE:.0%} agree; 'within noise': outside, but the interval reaches the band)", rand)]
    return "\n\n".join(f"{title}:\n\n{markdown_table(t)}" for title, t in parts if t)


class GrayAt28(torch.nn.Module):
    """A fixed model of the accuracy check: RGB (N, 3, H, W) in [0, 1] -> channel mean -> area
    downsampling to 28 px -> (with ``minmax``) each image stretched to [0, 1] by its own minimum and
    maximum -> ``net`` (a classifier of (N, 1, 28, 28) in [0, 1]) -> logits (N, K).

    Without the stretch the Fashion-MNIST-trained net is at chance under fog, frost, strong snow,
    contrast and strong brightness (its backgrounds were black); with it, brightness and contrast
    cannot hurt but snow and frost leave it above chance; fog keeps both at chance. Both views are
    evaluated on the same corrupted images."""

    def __init__(self, net: torch.nn.Module, minmax: bool = False):
        super().__init__()
        self.net, self.minmax = net, minmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.interpolate(x.mean(1, keepdim=True), size=(28, 28), mode="area")
        if self.minmax:
            lo, hi = z.amin((1, 2, 3), keepdim=True), z.amax((1, 2, 3), keepdim=True)
            z = (z - lo) / (hi - lo).clamp_min(1e-3)
        return self.net(z)


def fixed_models(model_dir: Path) -> Dict[str, GrayAt28]:
    """The two :class:`GrayAt28` views ("plain", "min-max") of bench_attacks' ResNet-8 (2 epochs on
    real Fashion-MNIST; trained into ``model_dir`` only when it holds no checkpoint yet), in eval mode."""
    from bench_attacks import trained_model

    net = trained_model(model_dir).eval()
    return {"plain": GrayAt28(net).eval(), "min-max": GrayAt28(net, minmax=True).eval()}


def gray_images(n: int, size: int = 224) -> Tuple[torch.Tensor, torch.Tensor]:
    """uint8 (n, 3, size, size) and labels (n,): the first n Fashion-MNIST test images, upsampled
    (bilinear) and replicated to RGB."""
    from synthclone.data.fashion_mnist import load

    data = load("test")
    x = F.interpolate(data.images[:n].float().div(255.0), size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return x, data.labels[:n].long()


@torch.no_grad()
def _predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1).cpu()


def paired_accuracy(right_ours: torch.Tensor, right_ref: torch.Tensor, classes: int = 10) -> Dict[str, object]:
    """Accuracies (%) from per-image correctness (bool (N,) each, the same images) and their agreement.

    ``bound``: the 95% half-width (points) of the paired difference (normal approximation to the mean
    of the per-image differences, which only the images that one side gets right and the other wrong
    move); agree: |difference| <= max(1 point, bound). ``note`` marks cells where both sides are within
    5 points of chance: they agree whatever the corruptions do."""
    d = right_ours.double() - right_ref.double()
    n = len(d)
    bound = 100 * 1.96 * float(d.std()) / math.sqrt(n) if n > 1 else float("inf")
    acc_ours, acc_ref = 100 * float(right_ours.double().mean()), 100 * float(right_ref.double().mean())
    diff = 100 * float(d.mean())
    return {"images": n, "synthclone acc %": acc_ours, "reference acc %": acc_ref, "diff (points)": diff,
            "95% bound (points)": bound, "agree": "yes" if abs(diff) <= max(1.0, bound) else "NO",
            "note": "both near chance" if max(acc_ours, acc_ref) <= 100 / classes + 5 else ""}


def accuracy_cell(ref, models: Dict[str, torch.nn.Module], name: str, images: torch.Tensor, labels: torch.Tensor,
                  severity: int, batch: int = 50, device: str = "cpu") -> List[Dict[str, object]]:
    """Per model: accuracy on ``images`` (uint8 (N, 3, H, W)) corrupted by synthclone and by the reference.

    synthclone's output is fed as float (as its probe does), the reference's as uint8 (as its
    ``corrupt()`` returns); every model sees the same corrupted images. One row per model
    (:func:`paired_accuracy`)."""
    from synthclone.robustness.corruption_ops import corrupt

    g = torch.Generator().manual_seed(severity)
    np.random.seed(severity)
    right = {m: ([], []) for m in models}
    for i in range(0, len(images), batch):
        chunk, y = images[i:i + batch], labels[i:i + batch]
        ours = corrupt(chunk.float().div(255.0).to(device), name, severity, g)
        theirs = np.stack([np.uint8(run_reference(ref, name, img, severity))
                           for img in chunk.permute(0, 2, 3, 1).contiguous().numpy()])
        theirs = torch.from_numpy(theirs).permute(0, 3, 1, 2).float().div(255.0).to(device)
        for m, model in models.items():
            right[m][0].append(_predict(model, ours) == y)
            right[m][1].append(_predict(model, theirs) == y)
    return [{"corruption": name, "severity": severity, "model": m,
             **paired_accuracy(torch.cat(r_ours), torch.cat(r_ref))} for m, (r_ours, r_ref) in right.items()]


def accuracy(ref, models, names, images: torch.Tensor, labels: torch.Tensor, status, severities,
             device: str = "cpu") -> List[Dict[str, object]]:
    """:func:`accuracy_cell` for every corruption and severity (a slow reference on fewer images)."""
    rows = []
    for name in names:
        if status.get(name):
            rows.append({"corruption": name, "severity": "-", "agree": "n/a"})
            continue
        n = slow_sample(name, len(images), "accuracy")
        for sev in severities:
            rows += accuracy_cell(ref, models, name, images[:n], labels[:n], sev, device=device)
    return rows


def _worst_agree(values) -> str:
    values = set(values)
    for v in ("NO", "NO, within noise", "n/a"):
        if v in values:
            return v
    return "yes"


def summary(agree_rows: List[Dict[str, object]], acc_rows: List[Dict[str, object]]) -> List[Dict[str, object]]:
    """One line per corruption: the perturbation agreement over severities and the accuracy agreement
    (its largest difference over severities and models; agrees only when every cell does)."""
    out = []
    names = list(dict.fromkeys([r["corruption"] for r in agree_rows] + [r["corruption"] for r in acc_rows]))
    for name in names:
        rs = [r for r in agree_rows if r["corruption"] == name]
        line: Dict[str, object] = {"corruption": name, "kind": rs[0]["kind"] if rs else "-"}
        kind = line["kind"]
        if kind == "deterministic":
            worst = min(rs, key=lambda r: r["worst image PSNR dB"])
            low = worst["worst image PSNR dB"]
            text = ("bit-identical on every image" if low == float("inf") else
                    f"lowest per-image PSNR {low:.1f} dB (severity {worst['severity']})")
        elif kind == "noise":
            text = (f"mean within {max(r['mean gap'] for r in rs):.4f}, "
                    f"std within {100 * max(r['std gap'] for r in rs):.2f}%")
        elif kind == "random":
            m = [r["ratio of means"] for r in rs]
            sd = [r["ratio of sds"] for r in rs]
            text = f"ratio of means {min(m):.2f}-{max(m):.2f}, of sds {min(sd):.2f}-{max(sd):.2f}"
            bad = [str(r["severity"]) for r in rs if r["agree"] != "yes"]
            if bad:
                text += f" (off at severity {', '.join(bad)})"
        else:
            text = kind
        line["perturbation"] = text
        line["perturbation agrees"] = _worst_agree(r["agree"] for r in rs) if rs else "-"
        cells = [r for r in acc_rows if r["corruption"] == name and "diff (points)" in r]
        if cells:
            # the largest difference (among equal ones, the cell with the tightest bound)
            w = max(cells, key=lambda r: (abs(r["diff (points)"]), -r["95% bound (points)"]))
            informative = sum(not r["note"] for r in cells)
            line["accuracy, largest difference"] = (
                f"{w['diff (points)']:+.1f} points ({w['model']}, severity {w['severity']}: "
                f"{w['synthclone acc %']:.1f}% vs {w['reference acc %']:.1f}%, "
                f"bound {max(1.0, w['95% bound (points)']):.1f}, "
                f"{w['images']} images); {informative}/{len(cells)} cells above chance")
            line["accuracy agrees"] = _worst_agree(r["agree"] for r in cells)
        else:
            line["accuracy, largest difference"], line["accuracy agrees"] = "-", "n/a" if acc_rows else "-"
        out.append(line)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="short speed budgets; agreement on 8 images x 4 seeds, accuracy on 50 images")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--corruptions", default="all", help="comma list or all")
    p.add_argument("--sections", default="throughput,agreement,accuracy",
                   help="comma list of throughput, agreement, accuracy (default: all three)")
    p.add_argument("--agree-images", type=int, default=None,
                   help="images of the perturbation agreement (default 16, --quick 8)")
    p.add_argument("--seeds", type=int, default=None, help="seeds of the perturbation agreement (default 8, --quick 4)")
    p.add_argument("--images", type=int, default=None, help="images of the accuracy check (default 200, --quick 50)")
    p.add_argument("--model-dir", default="/tmp/synthclone-bench/resnet8-fmnist",
                   help="checkpoint of the fixed model (trained there once when missing; shared with bench_attacks)")
    p.add_argument("--threads2", action="store_true",
                   help="also time synthclone with torch at 2 threads (extra column; the ratio stays 1 vs 1 thread)")
    p.add_argument("--device", default="cpu", help="where synthclone corrupts: cpu, cuda, cuda:N (default cpu)")
    p.add_argument("--default-malloc", action="store_true",
                   help="keep glibc's default malloc settings instead of the synthclone CLI's (synthclone.allocator)")
    args = p.parse_args(argv)
    if not args.default_malloc:
        # the probe runs inside the synthclone CLI, which sets these at start; both sides share the process
        from synthclone.allocator import retain_freed_memory

        retained = retain_freed_memory()
    else:
        retained = False

    from synthclone.device import resolve_device
    from synthclone.errors import UserError
    from synthclone.robustness.corruption_ops import corruption_names

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in ("throughput", "agreement", "accuracy")]
    if bad:
        raise UserError(f"unknown --sections {bad}; valid: throughput, agreement, accuracy")
    device = resolve_device(args.device)
    names = corruption_names(args.corruptions)
    ref, shims = load_reference()
    status = reference_status(ref, names)
    budget = 3.0 if args.quick else 12.0
    n_agree = args.agree_images or (8 if args.quick else 16)
    seeds = list(range(args.seeds or (4 if args.quick else 8)))
    n_acc = args.images or (50 if args.quick else 200)
    severities = [1, 2, 3, 4, 5]

    print("## Corruptions: synthclone vs imagecorruptions " + getattr(ref, "__version__", "1.1.2") + "\n")
    print(f"machine: {machine_line()}; synthclone on {device}; malloc: "
          + ("the synthclone CLI's settings (synthclone.allocator), both sides" if retained else "glibc's defaults") + "\n")
    import cv2

    print(f"reference shims (benchmark only): {'; '.join(shims) or 'none'}; OpenCV threads: {cv2.getNumThreads()}\n")
    failing = {n: s for n, s in status.items() if s}
    print(f"reference runs {len(names) - len(failing)}/{len(names)} corruptions at 224 px"
          + (":\n\n" + markdown_table([{"corruption": n, "error": s} for n, s in failing.items()]) if failing else "")
          + "\n")

    if "throughput" in sections:
        t224 = throughput(ref, names, test_images(args.batch, 224), status, budget_s=budget, threads2=args.threads2,
                          device=device)
        print(f"### Throughput at 224 px, batch {args.batch}, severity 3 (target: >= 20x)\n")
        print(markdown_table(t224) + "\n")
        t28 = throughput(ref, names, test_images(args.batch, 28), status, budget_s=budget, repeats=3,
                         threads2=args.threads2, device=device)
        print(f"### Throughput at 28 px, batch {args.batch}, severity 3 (constants differ: speed only)\n")
        print(markdown_table(t28) + "\n")
        for label, rows in (("224 px", t224), ("28 px", t28)):
            ratios = [r["ratio"] for r in rows if isinstance(r["ratio"], float) and r["ratio"] == r["ratio"]]
            if ratios:
                gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
                print(f"{label}: geometric-mean speed-up {gm:.1f}x over {len(ratios)} corruptions; "
                      f"min {min(ratios):.1f}x, {sum(r >= 20 for r in ratios)}/{len(ratios)} at >= 20x\n")
            ceilings = [r["ceiling ratio"] for r in rows if "ceiling ratio" in r]
            if ceilings:
                gm = math.exp(sum(math.log(r) for r in ceilings) / len(ceilings))
                print(f"{label}: geometric mean of the ceiling ratios (each corruption at its floor: one write of a "
                      f"fresh batch, plus 16 random bits per value for the three per-pixel noises) {gm:.1f}x\n")

    slow = "; ".join(f"{n}: {why}" for n, why in SLOW.items() if n in names)
    agree_rows: List[Dict[str, object]] = []
    if "agreement" in sections:
        agree_rows = agreement(ref, names, test_images(n_agree, 224), status, severities, seeds, device)
        print(f"### Perturbation agreement at 224 px ({n_agree} colourised images, seeds {seeds}, "
              f"severities {severities})\n")
        if slow:
            print(f"Smaller sample ({slow}): {slow_sample('glass_blur', n_agree, 'agreement')} images x 1 seed "
                  "(its seed-to-seed variation is negligible; the images carry the spread).\n")
        print(agreement_tables(agree_rows) + "\n")

    acc_rows: List[Dict[str, object]] = []
    if "accuracy" in sections:
        models = {k: m.to(device) for k, m in fixed_models(Path(args.model_dir)).items()}
        images, labels = gray_images(n_acc, 224)
        x = images.float().div(255.0).to(device)
        clean = {k: float((_predict(m, x) == labels).float().mean()) * 100 for k, m in models.items()}
        acc_rows = accuracy(ref, models, names, images, labels, status, severities, device)
        print(f"### Accuracy of two fixed models per (corruption, severity), synthclone vs reference "
              f"({n_acc} images)\n")
        print(f"models: GrayAt28 ('plain' and 'min-max') around a ResNet-8 trained 2 epochs on real Fashion-MNIST "
              f"({args.model_dir}); images: the first {n_acc} Fashion-MNIST test images at 224 px (gray, replicated "
              f"to RGB); clean accuracy: " + ", ".join(f"{k} {v:.1f}%" for k, v in clean.items()) + ". "
              "agree: |diff| <= max(1 point, the 95% half-width of the paired difference)."
              + (f" Smaller sample ({slow}): {slow_sample('glass_blur', n_acc, 'accuracy')} images." if slow else "")
              + "\n")
        print(markdown_table(acc_rows) + "\n")

    if agree_rows or acc_rows:
        print("### Summary: agreement with the reference at 224 px, per corruption\n")
        print(markdown_table(summary(agree_rows, acc_rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

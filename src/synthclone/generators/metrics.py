"""Generator metrics on features: fidelity, diversity and coverage of generated images against real ones.

Every metric takes feature matrices (rows = images) from one extractor (the embedded small CLIP's image
embeddings in the embedded world; an open_clip or timm model's at full scale), so generators are
compared in one space. Definitions (facts from the papers; the k-NN conventions as the authors'
reference implementation ``prdc`` computes them: a point's radius is the distance to its k-th nearest
neighbour in its own set, itself excluded, and "inside a ball" is a strict ``<``):

* **precision** (Kynkäänniemi et al., NeurIPS 2019): the share of generated images inside the k-NN ball
  of at least one real image — fidelity;
* **recall** (same): the share of real images inside the k-NN ball of at least one generated image —
  how much of the real distribution the generator reaches;
* **density** (Naeem et al., ICML 2020): ``1 / (k M)`` times the number of (generated image, real ball)
  pairs with the image inside the ball — fidelity that does not saturate at 1 and resists real outliers;
* **coverage** (same): the share of real images whose k-NN ball holds at least one generated image;
* **Fréchet distance** (Heusel et al., NeurIPS 2017): ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))``
  between Gaussians fitted to the two feature sets;
* **diversity**: the mean pairwise L2 distance between generated images of one class.

Distances are computed in chunks of rows, so memory is O(chunk x N), not O(N x M).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional

import torch

CHUNK = 1024
METRICS = ["precision", "recall", "density", "coverage", "fd", "diversity"]


def _pairwise_min_count(a: torch.Tensor, b: torch.Tensor, radius_b: torch.Tensor):
    """For every row of ``a``: the number of rows j of ``b`` with ``|a - b_j| < radius_b[j]``, and the
    distance to its nearest row of ``b``."""
    counts, nearest = [], []
    for i in range(0, len(a), CHUNK):
        d = torch.cdist(a[i:i + CHUNK], b)
        counts.append((d < radius_b[None]).sum(1))
        nearest.append(d.min(1).values)
    return torch.cat(counts), torch.cat(nearest)


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row (N,)."""
    if len(x) <= k:
        raise ValueError(f"k={k} nearest neighbours need more than {k} points, got {len(x)}")
    out = []
    for i in range(0, len(x), CHUNK):
        d = torch.cdist(x[i:i + CHUNK], x)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # the 0th is the point itself
    return torch.cat(out)


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> Dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` (M, D) against ``real`` (N, D) with k neighbours."""
    real, fake = real.double(), fake.double()
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    in_real_balls, _ = _pairwise_min_count(fake, real, r_real)   # per generated image: real balls holding it
    # per real image: the generated balls holding it, and its nearest generated image (coverage: the real
    # image's own ball holds a generated image when that nearest one is inside it)
    in_fake_balls, nearest_fake = _pairwise_min_count(real, fake, r_fake)
    return {
        "precision": float((in_real_balls > 0).double().mean()),
        "recall": float((in_fake_balls > 0).double().mean()),
        "density": float(in_real_balls.double().sum() / (k * len(fake))),
        "coverage": float((nearest_fake < r_real).double().mean()),
    }


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows = images)."""
    from .evaluate import frechet_distance as fd

    return fd(real, fake)


def diversity(features: torch.Tensor) -> float:
    """Mean pairwise L2 distance between the rows (one class's generated images); nan below two rows."""
    n = len(features)
    if n < 2:
        return float("nan")
    total = sum(float(torch.cdist(features[i:i + CHUNK].double(), features.double()).sum())
                for i in range(0, n, CHUNK))
    return total / (n * (n - 1))


# ------------------------------------------------------------------ stores against the real test split


def _subset(data, per_class: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(data.num_classes):
        members = torch.nonzero(data.labels == c).flatten()
        picks.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return data.subset(torch.cat(picks))


def _embed(model, data, device: str, batch_size: int = 256):
    out = []
    with torch.no_grad():
        for images, _ in data.batches(batch_size):
            out.append(model.features(images.to(device).float() / 255).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def _predict(model, data, device: str, batch_size: int = 256):
    out = []
    with torch.no_grad():
        for images, _ in data.batches(batch_size):
            out.append(model(images.to(device).float() / 255).float().argmax(1).cpu())
    return torch.cat(out)


def _metrics(real, fake, k: int, seconds: Dict[str, float]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    t = time.perf_counter()
    out.update(prdc(real, fake, k=k) if len(real) > k and len(fake) > k else
               {m: float("nan") for m in ("precision", "recall", "density", "coverage")})
    seconds["prdc"] = seconds.get("prdc", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    out["fd"] = frechet_distance(real, fake) if min(len(real), len(fake)) > 1 else float("nan")
    seconds["fd"] = seconds.get("fd", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    out["diversity"] = diversity(fake)
    seconds["diversity"] = seconds.get("diversity", 0.0) + time.perf_counter() - t
    return out


def compare_stores(real, stores: Dict[str, Any], extractor, k: int = 5, per_class: int = 200, seed: int = 0,
                   device: str = "cpu", cas=None, progress_desc: Optional[str] = None) -> Dict[str, dict]:
    """Every metric of each store (``{name: ImageSet}``) against ``real`` (the test split), per class on
    ``per_class`` images of each (drawn with ``seed``) embedded by ``extractor.features``, then averaged
    over classes; ``cas`` (a real-trained classifier) adds the classification accuracy score. Returns
    ``{name: {"overall", "per_class", "images", "seconds"}}`` (``synthclone compare``, the study's
    ``compare`` stage)."""
    from ..progress import progress

    classes = list(real.classes)
    ref = _subset(real, per_class, seed)
    real_f = _embed(extractor, ref, device)
    report: Dict[str, dict] = {}
    for name, store in progress(list(stores.items()), desc=progress_desc or "compare", unit="store"):
        fake = _subset(store, per_class, seed)
        fake_f = _embed(extractor, fake, device)
        seconds: Dict[str, float] = {}
        per = {c: _metrics(real_f[ref.labels == i], fake_f[fake.labels == i], k, seconds) for i, c in enumerate(classes)}
        overall = {m: float(torch.tensor([v[m] for v in per.values()]).nanmean()) for m in METRICS}
        if cas is not None:
            t = time.perf_counter()
            hit = _predict(cas, fake, device) == fake.labels
            overall["cas"] = float(hit.float().mean())
            for i, c in enumerate(classes):
                per[c]["cas"] = float(hit[fake.labels == i].float().mean())
            seconds["cas"] = time.perf_counter() - t
        report[name] = {"overall": overall, "per_class": per, "images": len(fake),
                        "seconds": {key: round(v, 3) for key, v in seconds.items()}}
    return report

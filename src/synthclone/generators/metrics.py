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

from typing import Dict

import torch

CHUNK = 1024


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
    in_fake_balls, _ = _pairwise_min_count(real, fake, r_fake)   # per real image: generated balls holding it
    # coverage: a real image's own ball holds a generated image when its nearest generated image is inside
    _, nearest_fake = _pairwise_min_count(real, fake, torch.zeros(len(fake), dtype=real.dtype))
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

"""``ood``: out-of-distribution detection scores and the sets to score.

Scores (higher = more in-distribution; in-distribution is the positive class):
``msp`` max softmax probability, ``max_logit``, ``energy`` (logsumexp of the logits, i.e. minus the
free energy at T = 1), ``entropy`` (minus the predictive entropy) and ``mahalanobis`` (minus the
smallest class-conditional Mahalanobis distance of the penultimate features with a shared
covariance fitted on ``settings.train`` or ``settings.val``; only where the model has ``features()``).

Embedded OOD sets: ``digits`` (scikit-learn's real handwritten digits), ``textures`` (procedural
textures, :func:`.stimuli.procedural_textures`), ``uniform_noise`` and ``gaussian_noise``
(N(0.5, 0.25) clipped); any ImageFolder path in ``settings.ood_folders`` at full scale.

Rows: condition ``"<set>:<score>"`` with set ``id`` for the in-distribution test images; score =
the OOD score; extra = {"set", "method", "in_distribution"}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd
import torch

from ..errors import UserError
from . import PROBES
from .core import BenchSettings, predict, rows_from_logits, take
from .stimuli import procedural_textures

METHODS = ["msp", "max_logit", "energy", "entropy", "mahalanobis"]


def logit_scores(logits: torch.Tensor) -> Dict[str, torch.Tensor]:
    """MSP, max-logit, energy and negative entropy of (N, K) logits; each (N,)."""
    logits = logits.double()
    p = logits.softmax(1)
    return {
        "msp": p.max(1).values,
        "max_logit": logits.max(1).values,
        "energy": torch.logsumexp(logits, 1),
        "entropy": (p * logits.log_softmax(1)).sum(1),
    }


class Mahalanobis:
    """Class means and a shared (tied) covariance of features (Lee et al. 2018), scores = -min distance."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, num_classes: int, ridge: float = 1e-6):
        f = features.double()
        self.means = torch.stack([f[labels == c].mean(0) for c in range(num_classes)])
        centered = f - self.means[labels]
        cov = centered.T @ centered / len(f)
        cov = cov + ridge * torch.eye(cov.shape[0], dtype=cov.dtype) * cov.diagonal().mean().clamp_min(1e-12)
        self.precision = torch.linalg.pinv(cov)

    def score(self, features: torch.Tensor) -> torch.Tensor:
        d = features.double().unsqueeze(1) - self.means.unsqueeze(0)           # (N, K, D)
        dist = torch.einsum("nkd,de,nke->nk", d, self.precision, d)
        return -dist.min(1).values


def ood_sets(data, settings: BenchSettings) -> Dict[str, torch.Tensor]:
    """Name -> uint8 images (N, C, H, W) shaped like ``data``."""
    c, h, w = data.shape
    n = settings.ood_limit or len(data)
    out: Dict[str, torch.Tensor] = {}
    for name in settings.ood_sets:
        g = settings.generator("ood", name)
        if name == "digits":
            from ..data import load_dataset

            digits = load_dataset("digits", size=h, channels=c)
            out[name] = take(digits, n, g).images
        elif name == "textures":
            out[name] = (procedural_textures(n, c, h, g)[..., :h, :w] * 255).round().to(torch.uint8)
        elif name == "uniform_noise":
            out[name] = (torch.rand(n, c, h, w, generator=g) * 255).round().to(torch.uint8)
        elif name == "gaussian_noise":
            out[name] = ((torch.randn(n, c, h, w, generator=g) * 0.25 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        else:
            raise UserError(f"unknown OOD set {name!r}; valid: digits, textures, uniform_noise, gaussian_noise "
                            "(or give folders with --ood-folder)")
    for folder in settings.ood_folders:
        from ..data.folder import load_folder

        fset = load_folder(folder, size=h, channels=c)
        out[f"folder:{Path(folder).name}"] = take(fset, n, settings.generator("ood-folder", folder)).images
    return out


def _mahalanobis(model, data, settings: BenchSettings) -> Optional[Mahalanobis]:
    fit = settings.train if settings.train is not None else settings.val
    if not settings.mahalanobis or fit is None:
        return None
    fit = take(fit, 5000, settings.generator("mahalanobis-fit"))
    try:
        _, feats = predict(model, fit.images, settings.batch_size, settings.device, features=True)
    except AttributeError:
        return None
    return Mahalanobis(feats, fit.labels, data.num_classes)


@PROBES.register("ood")
def ood_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """MSP / max-logit / energy / entropy / Mahalanobis scores on the test set and OOD sets."""
    maha = _mahalanobis(model, data, settings)
    sets: List = [("id", data.images, data.ids, data.labels)]
    for name, images in ood_sets(data, settings).items():
        sets.append((name, images, [f"{name}/{i}" for i in range(len(images))], torch.full((len(images),), -1)))
    frames = []
    for name, images, ids, labels in sets:
        if maha is not None:
            logits, feats = predict(model, images, settings.batch_size, settings.device, features=True)
        else:
            logits, feats = predict(model, images, settings.batch_size, settings.device), None
        scores = logit_scores(logits)
        if maha is not None:
            scores["mahalanobis"] = maha.score(feats)
        for method, s in scores.items():
            frames.append(rows_from_logits(settings.model_name, "ood", f"{name}:{method}", 0, ids, labels, logits,
                                           score=s.numpy(), extra={"set": name, "method": method,
                                                                   "in_distribution": name == "id"}))
    return pd.concat(frames, ignore_index=True)

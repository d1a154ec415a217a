"""``ood``: out-of-distribution detection scores and the sets to score.

Scores (higher = more in-distribution; in-distribution is the positive class):
``msp`` max softmax probability, ``max_logit``, ``energy`` (logsumexp of the logits, i.e. minus the
free energy at T = 1), ``entropy`` (minus the predictive entropy) and ``mahalanobis`` (minus the
smallest class-conditional Mahalanobis distance of the penultimate features with a shared
covariance fitted on ``settings.train`` or ``settings.val``; only where the model has ``features()``).

OOD sets (``settings.ood_sets``), every one brought to the evaluation data's channels and size:
generated ``textures`` (procedural textures, :func:`.stimuli.procedural_textures`),
``uniform_noise`` and ``gaussian_noise`` (N(0.5, 0.25) clipped), made at that shape; any registered
dataset by name (``digits``: scikit-learn's real handwritten digits), its test split converted with
:func:`~synthclone.data.images.conform`; and any ImageFolder path in ``settings.ood_folders``,
decoded at that shape. Each set has ``ood_limit`` images (default: as many as the evaluation set).
The evaluation set and the Mahalanobis fit are streamed; a set cut by ``ood_limit`` is decoded
once into memory, an uncut one streamed, and the generated ones are made at once under a limit
and in blocks of ``batch_size`` without one.

Rows: condition ``"<set>:<score>"`` with set ``id`` for the in-distribution test images; score =
the OOD score; extra = {"set", "method", "in_distribution"}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pandas as pd
import torch

from ..data.images import ImageSet, conform
from ..errors import UserError
from . import PROBES
from .core import BenchSettings, blocks, open_folder, predict, rows_from_logits, take
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
    """Class means and a shared (tied) covariance of features (Lee et al. 2018), scores = -min distance.

    Fitted and scored in float64 on ``device`` (the model's); features (N, D) may come from anywhere.
    """

    # float64 values of the (rows, K, D) differences scored at once: 256 MB, whatever N is
    SCORE_VALUES = 2 ** 25

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, num_classes: int, ridge: float = 1e-6,
                 device="cpu"):
        f = features.to(device).double()
        labels = labels.to(device)
        self.means = torch.stack([f[labels == c].mean(0) for c in range(num_classes)])
        centered = f - self.means[labels]
        cov = centered.T @ centered / len(f)
        eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        cov = cov + ridge * eye * cov.diagonal().mean().clamp_min(1e-12)
        self.precision = torch.linalg.pinv(cov)

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """-min_k (f - mu_k)^T P (f - mu_k) of features (N, D): float64 (N,) on the CPU."""
        k, dim = self.means.shape
        rows = max(1, self.SCORE_VALUES // max(1, k * dim))
        out = []
        for part in features.split(rows):
            d = part.to(self.means.device).double().unsqueeze(1) - self.means.unsqueeze(0)   # (rows, K, D)
            dist = torch.einsum("nkd,de,nke->nk", d, self.precision, d)
            out.append(-dist.min(1).values)
        return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.float64)


GENERATED: Dict[str, Callable[[int, tuple, torch.Generator], torch.Tensor]] = {
    "textures": lambda n, shape, g: procedural_textures(n, shape[0], shape[1], g)[..., :shape[1], :shape[2]],
    "uniform_noise": lambda n, shape, g: torch.rand(n, *shape, generator=g),
    "gaussian_noise": lambda n, shape, g: (torch.randn(n, *shape, generator=g) * 0.25 + 0.5).clamp(0, 1),
}


class GeneratedSet:
    """``n`` images of a generated OOD set, made when read: iterating yields ``(uint8 (B, C, H, W), index (B,))``.

    Made at once under ``ood_limit``, else in blocks of ``batch_size`` (:func:`~.core.blocks`),
    from the set's own generator every time it is read.
    """

    def __init__(self, name: str, n: int, shape: tuple, settings: BenchSettings):
        self.name, self.n, self.shape, self.settings = name, n, tuple(shape), settings

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        s = self.settings
        g = s.generator("ood", self.name)
        for block in blocks(self.n, s.ood_limit, s.batch_size):
            yield (GENERATED[self.name](len(block), self.shape, g) * 255).round().to(torch.uint8), torch.tensor(block)


def ood_sets(data: ImageSet, settings: BenchSettings) -> Dict[str, ImageSet | GeneratedSet]:
    """Name -> OOD set shaped like ``data`` (an :class:`ImageSet`, whose labels go unused, or a :class:`GeneratedSet`)."""
    from ..data import DATASETS, load_dataset

    c, h, w = data.shape
    n = settings.ood_limit or len(data)

    def cut(images: ImageSet, g: torch.Generator) -> ImageSet:
        # a set cut by ood_limit is decoded once here; an uncut one is streamed when scored
        sub = take(images, n, g)
        return sub.cached() if settings.ood_limit is not None else sub

    out: Dict[str, ImageSet | GeneratedSet] = {}
    for name in settings.ood_sets:
        if name in GENERATED:
            out[name] = GeneratedSet(name, n, (c, h, w), settings)
        elif name in DATASETS:
            out[name] = cut(conform(load_dataset(name, split="test"), c, h), settings.generator("ood", name))
        else:
            raise UserError(f"unknown OOD set {name!r}; valid: {', '.join(list(GENERATED) + DATASETS.names())} "
                            "(or give folders with --ood-folder)")
    for folder in settings.ood_folders:
        out[f"folder:{Path(folder).name}"] = cut(open_folder(folder, c, h, data.workers),
                                                 settings.generator("ood-folder", folder))
    return out


def _mahalanobis(model, data, settings: BenchSettings) -> Optional[Mahalanobis]:
    fit = settings.train if settings.train is not None else settings.val
    if not settings.mahalanobis or fit is None:
        return None
    fit = take(fit, 5000, settings.generator("mahalanobis-fit"))
    try:
        p = predict(model, fit, settings.batch_size, settings.device, features=True)
    except AttributeError:
        return None
    return Mahalanobis(p.features, p.labels(fit), data.num_classes, device=settings.device)


@PROBES.register("ood")
def ood_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """MSP / max-logit / energy / entropy / Mahalanobis scores on the test set and OOD sets."""
    maha = _mahalanobis(model, data, settings)
    sets: List[tuple] = [("id", data)] + list(ood_sets(data, settings).items())
    frames = []
    for name, images in sets:
        p = predict(model, images, settings.batch_size, settings.device, features=maha is not None)
        if name == "id":
            ids, labels = p.ids(data), p.labels(data)
        else:
            ids, labels = [f"{name}/{i}" for i in p.index.tolist()], torch.full((len(p.index),), -1)
        scores = logit_scores(p.logits)
        if maha is not None:
            scores["mahalanobis"] = maha.score(p.features)
        for method, s in scores.items():
            frames.append(rows_from_logits(settings.model_name, "ood", f"{name}:{method}", 0, ids, labels, p.logits,
                                           score=s.numpy(), extra={"set": name, "method": method,
                                                                   "in_distribution": name == "id"}))
    return pd.concat(frames, ignore_index=True)

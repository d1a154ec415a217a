"""``clip``: keep images a CLIP recognises as their intended class (He et al., ICLR 2023).

The CLIP is the shipped small CLIP by default (Fashion-MNIST's classes only) or any open_clip model:
``model: open_clip:NAME`` with ``pretrained: TAG|PATH`` (He et al. used CLIP RN50 and ViT-B/16:
``open_clip:RN50`` / ``open_clip:ViT-B-16`` with ``pretrained: openai``; see docs/clip.md), placed on
``device`` (default ``cpu``; it does not change the scores' identity).

Score: the zero-shot softmax confidence of the intended class (class names through the CLIP text
tower, prompt templates as the model defines them: the small CLIP's own, CLIP's 80 ImageNet
templates for open_clip models; images resized and normalised as the model's preprocessing says).
Decision, class by class:

1. an image passes when its confidence exceeds ``1 / C`` (C = number of classes);
2. with ``quota`` (images wanted per class): when more than ``quota`` pass, ``quota`` of them are
   drawn at random (``pick: random``, the default, as He et al.'s ``select_by_clip_thres_RS`` in
   CVMI-Lab/SyntheticData does; seeded by ``seed``) or the most confident are kept (``pick: top``);
   when fewer pass, the quota is filled with the most confident images (He et al. do the same);
3. without a quota all passing images are kept, topped up to ``min_keep`` (default 1) by confidence
   so that no class ends empty.

Scores go to the manifest column ``clip_score``.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import UserError
from ..models.external import resolve_open_clip
from . import FILTERS
from .base import FilterResult, ImageFilter


@functools.lru_cache(maxsize=4)
def _load_clip(weights: Optional[str], tiny: bool, device: str = "cpu"):
    from ..models.small_clip import load_small_clip

    if device != "cpu":  # the CPU instance is shared (cached by the loader too): move a copy
        return copy.deepcopy(_load_clip(weights, tiny)).to(device)
    if tiny:
        # Random tiny weights must be the same in every process (workers, resumed runs).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return load_small_clip(weights=None, tiny=True).eval()
    return (load_small_clip(weights=weights) if weights else load_small_clip()).eval()


@functools.lru_cache(maxsize=2)
def _load_open_clip(name: str, weights: Optional[str], device: str):
    from ..models.external import load_open_clip

    return load_open_clip(name, weights).to(device).eval().requires_grad_(False)


class ClipFilter(ImageFilter):
    """Zero-shot confidence filter. ``model``: None / ``small_clip`` (with ``weights`` PATH or
    ``tiny``), ``small_clip:tiny``, or ``open_clip:NAME`` with ``pretrained`` (a tag, a weights
    file, or ``none``; see :func:`synthclone.models.external.resolve_open_clip`)."""

    name = "clip"

    def __init__(self, model: Optional[str] = None, pretrained: Optional[str] = None, weights: Optional[str] = None,
                 tiny: bool = False, quota: Optional[int] = None, min_keep: int = 1,
                 templates: Optional[Sequence[str]] = None, batch_size: int = 256, device: str = "cpu",
                 pick: str = "random", seed: int = 0):
        from ..device import resolve_device

        if quota is not None and int(quota) < 1:
            raise UserError(f"clip filter quota must be >= 1 image per class, got {quota}")
        self.open_clip: Optional[Tuple[str, Optional[str]]] = None
        if model is not None and str(model).startswith("open_clip:"):
            if weights is not None or tiny:
                raise UserError("clip filter: weights and tiny are small-CLIP options; drop them for an open_clip model")
            self.open_clip = resolve_open_clip(str(model), pretrained, key="the clip filter's pretrained option")
        elif model not in (None, "small_clip", "small_clip:tiny"):
            raise UserError(f"clip filter model {model!r}: use small_clip, small_clip:tiny or open_clip:NAME "
                            "(small-CLIP weights go in the weights option)")
        elif pretrained is not None:
            raise UserError("clip filter: pretrained is for open_clip models; small-CLIP weights go in the weights option")
        self.weights, self.tiny = weights, bool(tiny) or model == "small_clip:tiny"
        self.quota = None if quota is None else int(quota)
        if pick not in ("random", "top"):
            raise UserError(f"clip filter pick {pick!r}: use random (He et al.: a random quota among the passing "
                            "images) or top (the most confident)")
        self.pick, self.seed = pick, int(seed)
        self.min_keep = int(min_keep)
        self.templates = list(templates) if templates else None
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self._model = None
        self._heads: Dict[Tuple[str, ...], Any] = {}

    def identity(self) -> Dict[str, Any]:
        out = {"name": self.name, "weights": self.weights, "tiny": self.tiny, "quota": self.quota,
               "min_keep": self.min_keep, "templates": self.templates}
        if self.quota is not None:  # without a quota every passing image is kept: pick and seed change nothing
            out["pick"], out["seed"] = self.pick, self.seed
        if self.open_clip is not None:  # absent for the small CLIP, so stores made before open_clip still resume
            out["model"], out["pretrained"] = f"open_clip:{self.open_clip[0]}", self.open_clip[1]
        return out  # not the device: where the model runs does not change what it decides

    @property
    def model(self):
        """The CLIP: a small CLIP or an :class:`~synthclone.models.external.OpenClipTower`, on ``device``."""
        if self._model is None:
            if self.open_clip is not None:
                self._model = _load_open_clip(*self.open_clip, self.device)
            else:
                self._model = _load_clip(self.weights, self.tiny, self.device)
        return self._model

    def prepare(self) -> None:
        self.model  # noqa: B018  (loads the weights: a missing file fails before generation starts)

    def classifier(self, classes: Sequence[str]):
        key = tuple(classes)
        if key not in self._heads:
            self._heads[key] = self.model.zero_shot_classifier(list(classes), self.templates).eval()
        return self._heads[key]

    @torch.no_grad()
    def confidence(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> np.ndarray:
        """Softmax confidence of class ``labels[i]`` for image i: float (N,) in [0, 1]."""
        head = self.classifier(classes)
        out = []
        for start in range(0, len(images), self.batch_size):
            x = images[start:start + self.batch_size].to(self.device).float() / 255.0
            probs = head(x).float().softmax(dim=-1).cpu()
            out.append(probs.gather(1, labels[start:start + self.batch_size].long().view(-1, 1)).squeeze(1))
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)

    def score(self, images, labels, classes):
        return {"clip_score": self.confidence(images, labels, classes)}

    def select(self, manifest, labels, num_classes, candidates=None) -> FilterResult:
        scores = manifest["clip_score"].to_numpy(dtype=np.float64)
        index = manifest["index"].to_numpy() if "index" in manifest else np.arange(len(scores))
        labels = np.asarray(labels)
        candidates = np.ones(len(scores), bool) if candidates is None else np.asarray(candidates, bool)
        threshold = 1.0 / num_classes
        keep = np.zeros(len(scores), bool)
        for c in range(num_classes):
            members = np.nonzero((labels == c) & candidates)[0]
            # most confident first; ties broken by slot index so the decision is deterministic
            order = members[np.lexsort((index[members], -scores[members]))]
            passing = order[scores[order] > threshold]
            others = order[scores[order] <= threshold]
            want = self.quota if self.quota is not None else max(len(passing), self.min_keep)
            if self.pick == "random" and self.quota is not None and len(passing) > want:
                # a random quota among the passing images; by slot index, so the draw does not depend on order
                rng = np.random.default_rng([self.seed, c])
                passing = passing[np.argsort(index[passing], kind="stable")][rng.permutation(len(passing))]
            chosen = np.concatenate([passing, others])[:want]
            keep[chosen] = True
        return FilterResult(keep=keep, scores=scores, name=self.name)


@FILTERS.register("clip")
def clip_filter(**options) -> ClipFilter:
    """CLIP (small or open_clip) zero-shot confidence of the intended class > 1/C, per-class quota with top-confidence fill."""
    return ClipFilter(**options)

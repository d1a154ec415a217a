"""``shape-bias``: cue-conflict stimuli; shape bias = shape hits / (shape hits + texture hits).

Embedded world: each stimulus is the silhouette of a test image of class A (its foreground mask, see
:mod:`.stimuli`) filled with the tiled surface texture of a test image of class B != A, on the black
background Fashion-MNIST uses. Full scale: the standard 16-class cue-conflict folder
(``<root>/<shape>/<shape>N-<texture>M.png``, Geirhos et al. 2019) with ImageNet's 1000 classes mapped
to the 16 categories by model-vs-human's class lists (:mod:`.label_maps`), probabilities averaged per category.

Rows: condition ``cue_conflict``; label = shape class; extra = {shape, texture} class indices.
Stimuli whose shape and texture classes agree are kept in the rows but excluded from the metrics.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd
import torch

from ..data.images import ImageSet
from ..errors import UserError
from . import PROBES
from .core import BenchSettings, ModelAdapter, blocks, gather, predict, rows_from_logits, to_device
from .stimuli import cue_conflict


def build_cue_conflict(data: ImageSet, n: int, g: torch.Generator, device="cpu") -> tuple:
    """``n`` stimuli from ``data``: (images uint8 (n, C, H, W) on ``device``, shape labels (n,),
    texture labels (n,), ids).

    Only the 2n images the stimuli are made of are read (:func:`~.core.gather`); they are composed
    on ``device``. Labels and ids stay on the CPU.
    """
    k = data.num_classes
    shape_idx = torch.randint(0, len(data), (n,), generator=g)
    shape_lab = data.labels[shape_idx]
    texture_lab = (shape_lab + torch.randint(1, k, (n,), generator=g)) % k  # any other class, uniformly
    by_class = [torch.nonzero(data.labels == c).flatten() for c in range(k)]
    texture_idx = torch.stack([by_class[c][torch.randint(0, len(by_class[c]), (1,), generator=g)][0] for c in texture_lab.tolist()])
    shapes = to_device(gather(data, shape_idx), device).float().div(255.0)
    textures = to_device(gather(data, texture_idx), device).float().div(255.0)
    images = (cue_conflict(shapes, textures, g) * 255).round().to(torch.uint8)
    ids = [f"{data.ids[a]}|{data.ids[b]}" for a, b in zip(shape_idx.tolist(), texture_idx.tolist())]
    return images, shape_lab, texture_lab, ids


def load_cue_conflict(root, size: Optional[int] = None, channels: int = 3,
                      workers: Optional[int] = None) -> Tuple[ImageSet, torch.Tensor]:
    """The standard cue-conflict folder, file-backed: (stimuli with labels = shape classes, texture labels (N,)).

    Files are ``<root>/<shape>/<shape>N-<texture>M.png``; ids are their paths relative to ``root``.
    """
    from ..data.folder import load_folder

    stimuli = load_folder(root, size=size, channels=channels, cache_bytes=0, workers=workers)
    index = {c: i for i, c in enumerate(stimuli.classes)}
    textures = []
    for rel in stimuli.ids:
        m = re.match(r"^(?P<shape>[a-z]+)\d+-(?P<texture>[a-z]+)\d+$", Path(rel).stem)
        if not m or m["texture"] not in index:
            raise UserError(f"cue-conflict file {Path(root) / rel} is not named <shape>N-<texture>M.png with known classes")
        textures.append(index[m["texture"]])
    return stimuli, torch.tensor(textures)


def _rows(settings: BenchSettings, ids, shape_lab: torch.Tensor, texture_lab: torch.Tensor, logits) -> pd.DataFrame:
    extra = [{"shape": int(s), "texture": int(t)} for s, t in zip(shape_lab.tolist(), texture_lab.tolist())]
    return rows_from_logits(settings.model_name, "shape-bias", "cue_conflict", 0, ids, shape_lab, logits, extra=extra)


def _folder_rows(model, settings: BenchSettings, workers: Optional[int]) -> pd.DataFrame:
    raw = getattr(model, "model", model)
    spec = getattr(raw, "spec", None)
    stimuli, texture_lab = load_cue_conflict(settings.cue_conflict_folder, size=None,
                                             channels=spec.in_chans if spec is not None else 3, workers=workers)
    groups = None
    if spec is not None and spec.num_classes == 1000:
        from .label_maps import groups_for

        groups = groups_for("imagenet16", stimuli.classes)
    adapter = ModelAdapter(raw, stimuli.classes, groups)
    if settings.shape_limit is not None and len(stimuli) > settings.shape_limit:
        keep = torch.randperm(len(stimuli), generator=settings.generator("shape-subset"))[:settings.shape_limit].sort().values
        stimuli, texture_lab = stimuli.subset(keep), texture_lab[keep]
    p = predict(adapter, stimuli, settings.batch_size, settings.device)
    return _rows(settings, p.ids(stimuli), p.labels(stimuli), texture_lab[p.index], p.logits)


@PROBES.register("shape-bias")
def shape_bias_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """Cue-conflict stimuli (embedded builder or the 16-class folder); shape vs texture decisions.

    The folder is streamed. The builder makes ``shape_limit`` stimuli at once, or, without a
    limit, one per evaluation image in blocks of ``batch_size`` (:func:`~.core.blocks`).
    """
    if settings.cue_conflict_folder:
        return _folder_rows(model, settings, data.workers)
    limit = settings.shape_limit or None
    g = settings.generator("cue-conflict")
    frames = []
    for block in blocks(limit or len(data), limit, settings.batch_size):
        images, shape_lab, texture_lab, ids = build_cue_conflict(data, len(block), g, settings.device)
        logits = predict(model, images, settings.batch_size, settings.device).logits
        frames.append(_rows(settings, ids, shape_lab, texture_lab, logits))
    return pd.concat(frames, ignore_index=True)


def shape_bias_metrics(prediction, shape, texture) -> Dict[str, float]:
    """Shape bias and shape / texture fraction-correct over cue-conflict decisions.

    Stimuli whose shape and texture classes agree are excluded. shape_bias = shape hits /
    (shape hits + texture hits) (NaN when neither is ever hit); the fractions divide by all
    remaining stimuli.
    """
    p, s, t = (np.asarray(a) for a in (prediction, shape, texture))
    keep = s != t
    p, s, t = p[keep], s[keep], t[keep]
    shape_hits = int((p == s).sum())
    texture_hits = int((p == t).sum())
    n = int(keep.sum())
    return {
        "shape_bias": shape_hits / (shape_hits + texture_hits) if shape_hits + texture_hits else float("nan"),
        "shape_fraction_correct": shape_hits / n if n else float("nan"),
        "texture_fraction_correct": texture_hits / n if n else float("nan"),
        "stimuli": n,
    }


def shape_bias_per_class(prediction, shape, texture) -> Dict[int, Tuple[Optional[float], int]]:
    """Shape bias per shape class, as model-vs-human's per-category plots: ``{shape class: (shape
    bias or None, decisions)}`` over every shape class in ``shape``, ascending.

    Same stimuli as :func:`shape_bias_metrics` (shape and texture classes differ); ``decisions`` =
    shape hits + texture hits of that class's stimuli, and the bias is None when it is 0. The overall
    shape bias is the decision-weighted mean of the per-class ones.
    """
    p, s, t = (np.asarray(a) for a in (prediction, shape, texture))
    keep = s != t
    out: Dict[int, Tuple[Optional[float], int]] = {}
    for c in np.unique(s).tolist():
        sel = keep & (s == c)
        shape_hits = int((p[sel] == c).sum())
        decisions = shape_hits + int((p[sel] == t[sel]).sum())
        out[int(c)] = (shape_hits / decisions if decisions else None, decisions)
    return out

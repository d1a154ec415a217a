"""``corruptions``: accuracy per (corruption, severity) cell; CE / mCE are computed by ``summarize``.

Each cell is its own computation: the images are corrupted with a generator seeded from
(seed, corruption, severity) and scored on their own — no running average across cells. With
``settings.corruption_folder`` the cells are read from a precomputed ImageNet-C style tree
``<root>/<corruption>/<severity>/<class>/<image>`` instead of being generated.

Rows: condition = corruption name, severity 1..5, extra = {"source": "generated"|"folder"}.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import List, Tuple

import pandas as pd
import torch

from ..errors import UserError
from ..progress import progress
from . import PROBES
from .core import BenchSettings, ModelAdapter, predict, rows_from_logits, take
from .corruption_ops import corrupt, corruption_names, empty_output


def corrupt_set(images: torch.Tensor, name: str, severity: int, g: torch.Generator, batch_size: int = 512) -> torch.Tensor:
    """Corrupt uint8 (N, C, H, W) images batch by batch; float (N, C, H, W) in [0, 1].

    ``corrupt`` itself works through each batch in cache-sized chunks; the batches only bound the
    float copy of the input held at once. Results go straight into one preallocated tensor."""
    out = empty_output(images.shape, torch.float32)
    for i in range(0, len(images), batch_size):
        out[i:i + batch_size] = corrupt(images[i:i + batch_size].float().div(255.0), name, severity, g)
    return out


# Corrupted images depend on the images, the corruption, the severity and the seed — not on the
# model — so benchmarking many models in one process (``synthclone run``) corrupts each cell once.
# The cache holds at most SYNTHCLONE_CORRUPTION_CACHE_MB (default 512) of float images.
_CACHE: "OrderedDict[Tuple, torch.Tensor]" = OrderedDict()
_CACHE_LIMIT = int(os.environ.get("SYNTHCLONE_CORRUPTION_CACHE_MB", "512")) * 2**20


def _cache_bytes() -> int:
    return sum(t.numel() * t.element_size() for t in _CACHE.values())


def cached_corrupt_set(images: torch.Tensor, ids: List[str], name: str, severity: int, settings: BenchSettings) -> torch.Tensor:
    """:func:`corrupt_set` with the cell's own generator, memoised per (images, corruption, severity, seed)."""
    digest = hashlib.sha256("\n".join(ids).encode() + str(tuple(images.shape)).encode()).hexdigest()
    key = (digest, name, int(severity), settings.seed)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    g = settings.generator("corruption", name, int(severity))
    x = corrupt_set(images, name, int(severity), g, settings.batch_size)
    size = x.numel() * x.element_size()
    if size <= _CACHE_LIMIT:
        while _CACHE and _cache_bytes() + size > _CACHE_LIMIT:
            _CACHE.popitem(last=False)
        _CACHE[key] = x
    return x


def _folder_rows(model, data, settings: BenchSettings) -> List[pd.DataFrame]:
    from ..data.folder import load_folder

    root = Path(settings.corruption_folder)
    if not root.is_dir():
        raise UserError(f"corruption folder {root} does not exist; lay it out as <root>/<corruption>/<severity>/<class>/<image>")
    frames = []
    cells = [(c, s) for c in sorted(p.name for p in root.iterdir() if p.is_dir())
             for s in sorted(int(q.name) for q in (root / c).iterdir() if q.is_dir() and q.name.isdigit())]
    if not cells:
        raise UserError(f"corruption folder {root} has no <corruption>/<severity>/ sub-folders")
    raw = getattr(model, "model", model)
    for name, sev in progress(cells, desc="corruptions (folder)"):
        cell = load_folder(root / name / str(sev), size=data.shape[-1], channels=data.shape[0])
        cell = take(cell, settings.corruption_limit, settings.generator("corruption-folder", name, sev))
        adapter = ModelAdapter(raw, cell.classes, settings.label_groups if cell.classes == data.classes else None)
        logits = predict(adapter, cell.images, settings.batch_size, settings.device)
        frames.append(rows_from_logits(settings.model_name, "corruptions", name, sev, cell.ids, cell.labels, logits,
                                       extra={"source": "folder"}))
    return frames


@PROBES.register("corruptions")
def corruptions_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """ImageNet-C's 15 + 4 extra corruptions at severities 1-5, accuracy per cell (or a precomputed folder)."""
    if settings.corruption_folder:
        return pd.concat(_folder_rows(model, data, settings), ignore_index=True)
    subset = take(data, settings.corruption_limit, settings.generator("corruption-subset"))
    names = corruption_names(settings.corruptions)
    cells = [(n, s) for n in names for s in settings.severities]
    frames = []
    for name, sev in progress(cells, desc="corruptions"):
        x = cached_corrupt_set(subset.images, subset.ids, name, int(sev), settings)
        logits = predict(model, x, settings.batch_size, settings.device)
        frames.append(rows_from_logits(settings.model_name, "corruptions", name, int(sev), subset.ids, subset.labels,
                                       logits, extra={"source": "generated"}))
    return pd.concat(frames, ignore_index=True)

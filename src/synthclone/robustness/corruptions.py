"""``corruptions``: accuracy per (corruption, severity) cell; CE / mCE are computed by ``summarize``.

Each cell is its own computation: the images are corrupted with a generator seeded from
(seed, corruption, severity) and scored on their own — no running average across cells. With
``settings.corruption_limit`` the cells are made from that many images decoded once into memory
(:func:`~.core.limited`); with no limit every cell streams the set, corrupting and predicting one
batch at a time, so memory holds a batch whatever the set's size. Both give the same images: the
corruption runs batch by batch over ``settings.batch_size`` images either way. With
``settings.corruption_folder`` the cells are read from a precomputed ImageNet-C style tree
``<root>/<corruption>/<severity>/<class>/<image>`` instead of being generated (streamed too).

Every cell is scored on the same images, so cells compare per image: the generated cells corrupt
one subset (drawn once with ``corruption-subset``), and the folder's cells share one draw of
``corruption_limit`` ``<class>/<image>`` names from the names every cell holds
(:func:`~.core.paired_ids`; a cell lacking a file that another has is an error).

Images are corrupted on ``settings.device``, the model's device: each uint8 batch is sent there
(:func:`~.core.to_device`), corrupted there and predicted there. A capped cell too large for the
cache below is streamed the same way instead of being held whole.

Rows: condition = corruption name, severity 1..5, sample_id = the image's id, the same in every cell
(``<class>/<image>`` for a folder), extra = {"source": "generated"|"folder"}.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, List, Tuple

import pandas as pd
import torch

from ..errors import UserError
from ..progress import progress
from . import PROBES
from .core import (BenchSettings, ModelAdapter, folder_ids, limited, open_folder, paired_ids, predict, predicted_rows,
                   select, to_device)
from .corruption_ops import corrupt, corruption_names, empty_output, frost_source


def corrupt_set(images: torch.Tensor, name: str, severity: int, g: torch.Generator, batch_size: int = 512,
                device="cpu") -> torch.Tensor:
    """Corrupt uint8 (N, C, H, W) images batch by batch on ``device``; float (N, C, H, W) in [0, 1] there.

    ``corrupt`` itself works through each batch in cache-sized chunks; the batches only bound the
    float copy of the input held at once. Results go straight into one preallocated tensor."""
    out = empty_output(images.shape, torch.float32, device)
    for i in range(0, len(images), batch_size):
        x = to_device(images[i:i + batch_size], device).float().div(255.0)
        corrupt(x, name, severity, g, out=out[i:i + batch_size])
    return out


def corrupted_batches(data, name: str, severity: int, settings: BenchSettings) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Stream cell (``name``, ``severity``) of ``data``: ``(float (B, C, H, W) in [0, 1], index (B,))``
    on ``settings.device``.

    The same images as :func:`corrupt_set` over the whole set with the cell's generator: the
    batches are ``settings.batch_size`` images and the generator runs on from one to the next.
    """
    g = settings.generator("corruption", name, int(severity))
    for images, idx in data.batches(settings.batch_size):
        yield corrupt(to_device(images, settings.device).float().div(255.0), name, int(severity), g), idx


# Corrupted images depend on the images, the corruption, the severity and the seed — not on the
# model — so benchmarking many models in one process (``synthclone run``) corrupts each cell once.
#
# What it holds: whole cells of a capped subset (``corruption_limit``), which is in memory anyway,
# at most SYNTHCLONE_CORRUPTION_CACHE_MB (default 512) of float images, on the device they were
# made on (the device is part of the key: a GPU's cells differ from the CPU's by float rounding).
# Streamed cells (no cap, e.g. a file-backed set of any size, or a capped cell larger than the whole
# cache) are never held: a cache smaller than the stream would only ever evict each batch before
# the next model asks for it. Every model benchmarks the cells in the
# same order, so when all of a subset's cells do not fit, the cells of that subset already held
# stay and the rest are computed each time (evicting the oldest to admit the newest would evict
# each cell just before it is asked for again, and nothing would ever hit); cells of other subsets
# are evicted first, oldest first.
_CACHE: "OrderedDict[Tuple, torch.Tensor]" = OrderedDict()
_CACHE_LIMIT = int(os.environ.get("SYNTHCLONE_CORRUPTION_CACHE_MB", "512")) * 2**20


def _cache_bytes() -> int:
    return sum(t.numel() * t.element_size() for t in _CACHE.values())


def _cell_bytes(images: torch.Tensor) -> int:
    return images.numel() * 4  # a corrupted cell is float32


def cached_corrupt_set(images: torch.Tensor, ids: List[str], name: str, severity: int, settings: BenchSettings) -> torch.Tensor:
    """:func:`corrupt_set` on ``settings.device`` with the cell's own generator, memoised per
    (images, corruption, severity, seed, device)."""
    digest = hashlib.sha256("\n".join(ids).encode() + str(tuple(images.shape)).encode()).hexdigest()
    key = (digest, name, int(severity), settings.seed, str(torch.device(settings.device)))
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    g = settings.generator("corruption", name, int(severity))
    x = corrupt_set(images, name, int(severity), g, settings.batch_size, settings.device)
    size = x.numel() * x.element_size()
    if size > _CACHE_LIMIT:
        return x
    for other in [k for k in _CACHE if k[0] != digest]:  # oldest first
        if _cache_bytes() + size <= _CACHE_LIMIT:
            break
        del _CACHE[other]
    if _cache_bytes() + size <= _CACHE_LIMIT:
        _CACHE[key] = x
    return x


def _folder_rows(model, data, settings: BenchSettings) -> List[pd.DataFrame]:
    root = Path(settings.corruption_folder)
    if not root.is_dir():
        raise UserError(f"corruption folder {root} does not exist; lay it out as <root>/<corruption>/<severity>/<class>/<image>")
    frames = []
    cells = [(c, s) for c in sorted(p.name for p in root.iterdir() if p.is_dir())
             for s in sorted(int(q.name) for q in (root / c).iterdir() if q.is_dir() and q.name.isdigit())]
    if not cells:
        raise UserError(f"corruption folder {root} has no <corruption>/<severity>/ sub-folders")
    # one subset of <class>/<image> names for every cell, so that severities and corruptions are paired
    ids = paired_ids(((f"{name}/{sev}", folder_ids(root / name / str(sev))) for name, sev in cells),
                     settings.corruption_limit, settings.generator("corruption-folder-subset"), "ImageNet-C cell")
    raw = getattr(model, "model", model)
    c, h, _ = data.shape
    for name, sev in progress(cells, desc="corruptions (folder)"):
        cell = select(open_folder(root / name / str(sev), c, h, data.workers), ids)
        adapter = ModelAdapter(raw, cell.classes, settings.label_groups if cell.classes == data.classes else None)
        p = predict(adapter, cell, settings.batch_size, settings.device)
        frames.append(predicted_rows(settings.model_name, "corruptions", name, sev, cell, p, extra={"source": "folder"}))
    return frames


@PROBES.register("corruptions")
def corruptions_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """ImageNet-C's 15 + 4 extra corruptions at severities 1-5, accuracy per cell (or a precomputed folder)."""
    if settings.corruption_folder:
        return pd.concat(_folder_rows(model, data, settings), ignore_index=True)
    subset = limited(data, settings.corruption_limit, settings.generator("corruption-subset"))
    names = corruption_names(settings.corruptions)
    cells = [(n, s) for n in names for s in settings.severities]
    frames = []
    # a capped cell the cache could never hold is streamed like an uncapped one: the same batches
    # from the same generator, so the same images and predictions, without the whole cell in memory
    stream = settings.corruption_limit is None or _cell_bytes(subset.images) > _CACHE_LIMIT
    for name, sev in progress(cells, desc="corruptions"):
        if stream:
            p = predict(model, corrupted_batches(subset, name, int(sev), settings), settings.batch_size, settings.device)
        else:
            x = cached_corrupt_set(subset.images, subset.ids, name, int(sev), settings)
            p = predict(model, x, settings.batch_size, settings.device)
        extra = {"source": "generated", **({"frost_layer": frost_source()} if name == "frost" else {})}
        frames.append(predicted_rows(settings.model_name, "corruptions", name, int(sev), subset, p, extra=extra))
    return pd.concat(frames, ignore_index=True)

"""``context`` (optional): accuracy by the number of uncommon attributes, FOCUS-style folders.

FOCUS (Kattakinda & Feizi 2022) photographs familiar objects in common and uncommon settings (time of
day, weather, location). The loader reads ``<root>/annotations.csv`` with columns ``path`` (relative
to ``root``), ``class`` and either ``num_uncommon`` or any number of 0/1 columns named
``uncommon_<attribute>`` (summed per image). Classes are matched to the model's by name (a subset is
fine). Not part of ``--probes all``: ask for it with ``--probes context --option focus_folder='"DIR"'``.

Rows: condition ``uncommon=<k>``; extra = {"uncommon": [attributes]}.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import pandas as pd
import torch

from ..data.images import FilePixels, ImageSet
from ..errors import UserError
from . import PROBES
from .core import BenchSettings, ModelAdapter, predict, rows_from_logits


def load_focus(root, size: Optional[int] = None, channels: int = 3,
               workers: Optional[int] = None) -> Tuple[ImageSet, List[int], List[List[str]]]:
    """(file-backed images with labels and classes, uncommon count per image, uncommon attributes per image).

    Ids are the ``path`` column; images are decoded at ``channels`` x ``size`` x ``size`` when read
    (``size`` None: the first image's shorter side).
    """
    from ..data.images import probe_image

    root = Path(root)
    table_path = root / "annotations.csv"
    if not table_path.is_file():
        raise UserError(f"{table_path} not found; a FOCUS-style folder needs annotations.csv (path, class, num_uncommon)")
    table = pd.read_csv(table_path)
    if table.empty:
        raise UserError(f"{table_path} lists no images")
    if not {"path", "class"} <= set(table.columns):
        raise UserError(f"{table_path} needs columns path and class (has {list(table.columns)})")
    flags = [c for c in table.columns if c.startswith("uncommon_")]
    if "num_uncommon" not in table.columns and not flags:
        raise UserError(f"{table_path} needs num_uncommon or uncommon_<attribute> columns")
    counts = table["num_uncommon"].astype(int) if "num_uncommon" in table.columns else table[flags].astype(int).sum(1)
    attrs = [[c[len("uncommon_"):] for c in flags if int(r[c])] for _, r in table.iterrows()] if flags else [[] for _ in range(len(table))]
    classes = sorted(table["class"].astype(str).unique())
    index = {c: i for i, c in enumerate(classes)}
    paths = list(table["path"].astype(str))
    if size is None:
        size = probe_image(root / paths[0])[1]
    images = ImageSet(FilePixels(root, paths, channels, size), torch.tensor([index[str(c)] for c in table["class"]]),
                      classes, paths, name=str(root), workers=workers)
    return images, counts.tolist(), attrs


@PROBES.register("context")
def context_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """Accuracy by number of uncommon attributes on a FOCUS-style folder (optional; needs focus_folder); streamed."""
    if not settings.focus_folder:
        raise UserError("the context probe needs a FOCUS-style folder: --option focus_folder='\"DIR\"'")
    raw = getattr(model, "model", model)
    spec = getattr(raw, "spec", None)
    focus, counts, attrs = load_focus(settings.focus_folder, size=spec.input_size[-1] if spec else None,
                                      channels=spec.in_chans if spec else 3, workers=data.workers)
    adapter = ModelAdapter(raw, focus.classes, None)
    p = predict(adapter, focus, settings.batch_size, settings.device)
    counts_t = torch.tensor(counts)[p.index]
    frames = []
    for k in sorted(set(counts_t.tolist())):
        sel = torch.nonzero(counts_t == k).flatten()
        rows = p.index[sel].tolist()
        frames.append(rows_from_logits(settings.model_name, "context", f"uncommon={k}", 0, [focus.ids[i] for i in rows],
                                       focus.labels[rows], p.logits[sel], extra=[{"uncommon": attrs[i]} for i in rows]))
    return pd.concat(frames, ignore_index=True)

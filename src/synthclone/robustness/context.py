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

import numpy as np
import pandas as pd
import torch

from ..errors import UserError
from . import PROBES
from .core import BenchSettings, ModelAdapter, predict, rows_from_logits


def load_focus(root, size=None, channels=3):
    """(images uint8 (N, C, H, W), labels, classes, ids, uncommon counts, attribute lists)."""
    from ..data.folder import _read

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
    arrays = [_read(root / p, "RGB" if channels == 3 else "L", size) for p in table["path"]]
    images = torch.from_numpy(np.stack(arrays))
    labels = torch.tensor([index[str(c)] for c in table["class"]])
    return images, labels, classes, list(table["path"].astype(str)), counts.tolist(), attrs


@PROBES.register("context")
def context_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """Accuracy by number of uncommon attributes on a FOCUS-style folder (optional; needs focus_folder)."""
    if not settings.focus_folder:
        raise UserError("the context probe needs a FOCUS-style folder: --option focus_folder='\"DIR\"'")
    raw = getattr(model, "model", model)
    spec = getattr(raw, "spec", None)
    images, labels, classes, ids, counts, attrs = load_focus(
        settings.focus_folder, size=spec.input_size[-1] if spec else None, channels=spec.in_chans if spec else 3)
    adapter = ModelAdapter(raw, classes, None)
    logits = predict(adapter, images, settings.batch_size, settings.device)
    frames = []
    counts_t = torch.tensor(counts)
    for k in sorted(set(counts)):
        sel = torch.nonzero(counts_t == k).flatten()
        frames.append(rows_from_logits(settings.model_name, "context", f"uncommon={k}", 0, [ids[i] for i in sel.tolist()],
                                       labels[sel], logits[sel], extra=[{"uncommon": attrs[i]} for i in sel.tolist()]))
    return pd.concat(frames, ignore_index=True)

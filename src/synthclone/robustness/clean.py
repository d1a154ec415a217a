"""``clean``: top-1 / top-5 and per-class accuracy, plus extra shifted test sets given as folders."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pandas as pd

from . import PROBES
from .core import BenchSettings, ModelAdapter, predict, rows_from_logits, take


def _rows(adapter, data, settings: BenchSettings, condition: str) -> pd.DataFrame:
    logits = predict(adapter, data.images, settings.batch_size, settings.device)
    k = min(5, logits.shape[1])
    top5 = (logits.topk(k, dim=1).indices == data.labels.view(-1, 1)).any(1).tolist()
    return rows_from_logits(settings.model_name, "clean", condition, 0, data.ids, data.labels, logits,
                            extra=[{"top5": t, "set": data.name} for t in top5])


@PROBES.register("clean")
def clean_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """Top-1/top-5 and per-class accuracy on the test set and on extra shifted folders."""
    frames: List[pd.DataFrame] = [_rows(model, data, settings, "clean")]
    for folder in settings.extra_sets:
        from ..data.folder import load_folder

        raw = getattr(model, "model", model)
        shape = data.shape
        shifted = load_folder(folder, size=shape[-1], channels=shape[0])
        shifted = take(shifted, settings.limit, settings.generator("shifted", folder))
        # the folder's classes may be a subset of the model's (ImageNet-R/-A): ModelAdapter keeps only those logits
        adapter = ModelAdapter(raw, shifted.classes, None)
        frames.append(_rows(adapter, shifted, settings, f"shifted:{Path(folder).name}"))
    return pd.concat(frames, ignore_index=True)

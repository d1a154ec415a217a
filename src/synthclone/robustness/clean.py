"""``clean``: top-1 / top-5 and per-class accuracy, plus extra shifted test sets given as folders."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pandas as pd

from . import PROBES
from .core import BenchSettings, ModelAdapter, open_folder, predict, predicted_rows, take


def _rows(adapter, data, settings: BenchSettings, condition: str) -> pd.DataFrame:
    p = predict(adapter, data, settings.batch_size, settings.device)
    labels = p.labels(data)
    k = min(5, p.logits.shape[1])
    top5 = (p.logits.topk(k, dim=1).indices == labels.view(-1, 1)).any(1).tolist()
    return predicted_rows(settings.model_name, "clean", condition, 0, data, p,
                          extra=[{"top5": t, "set": data.name} for t in top5])


@PROBES.register("clean")
def clean_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """Top-1/top-5 and per-class accuracy on the test set and on extra shifted folders (both streamed)."""
    frames: List[pd.DataFrame] = [_rows(model, data, settings, "clean")]
    for folder in settings.extra_sets:
        raw = getattr(model, "model", model)
        c, h, _ = data.shape
        shifted = open_folder(folder, c, h, data.workers)
        shifted = take(shifted, settings.limit, settings.generator("shifted", folder))
        # the folder's classes may be a subset of the model's (ImageNet-R/-A): ModelAdapter keeps only those logits
        adapter = ModelAdapter(raw, shifted.classes, None)
        frames.append(_rows(adapter, shifted, settings, f"shifted:{Path(folder).name}"))
    return pd.concat(frames, ignore_index=True)

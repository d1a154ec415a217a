"""Robustness probes, one file each, registered in :data:`PROBES`.

A probe is ``probe(model, data, settings) -> pandas.DataFrame`` where ``model`` is the classifier
seen through :class:`~.core.ModelAdapter` (pixels in [0, 1] of the data's shape in, logits over the
data's classes out), ``data`` the evaluation :class:`~synthclone.data.images.ImageSet` and
``settings`` a :class:`~.core.BenchSettings`. :func:`run_probes` runs a list of them;
:func:`summarize` turns the rows into headline numbers. Every table, plot and finding is computed
from the rows alone. Probes read the data in batches (:func:`~.core.predict` streams an ImageSet),
so a file-backed evaluation set is never held in memory whole (see :mod:`.core`).

Device: :func:`run_probes` moves the model to ``settings.device`` once, and every probe computes
there — predictions, features and the Mahalanobis fit, corruptions, attacks, cue-conflict and
background composites — with images read on the CPU and sent batch by batch. Afterwards the model
goes back where it was, so a caller that holds several models (``synthclone bench --model A
--model B``) never has them all on the GPU at once. ``rows.attrs["device"]`` records the device
(:func:`synthclone.device.device_record`).

Row schema (one row per sample per condition; ``rows.parquet`` of ``synthclone bench``):

==============  ========  ====================================================================
column          type      meaning
==============  ========  ====================================================================
model           string    the model's name (``--model`` or the checkpoint folder)
probe           string    ``clean``, ``calibration``, ``corruptions``, ``adversarial``,
                          ``shape-bias``, ``background``, ``ood``, ``context`` (optional)
condition       string    the cell: ``clean`` / ``shifted:<set>``; ``uncalibrated`` /
                          ``temperature_scaled``; corruption name; attack (``fgsm``,
                          ``pgd_linf``, ``pgd_l2``); ``cue_conflict``; background variant;
                          ``<set>:<score>`` for OOD (set ``id`` = the in-distribution images);
                          ``uncommon=<k>`` for context
severity        int       corruption severity 1-5; position in the epsilon sweep (1-based) for
                          attacks; 0 when not applicable
sample_id       string    the image's id (``fashion-mnist/test/17``; ``shape|texture`` ids for
                          cue-conflict stimuli; ``<set>/<i>`` for generated OOD images)
label           int       true class index in the data's label space (shape class for cue
                          conflict; -1 for OOD images)
prediction      int       argmax class in the data's label space
confidence      float     max softmax probability
correct         bool      prediction == label
score           float     probe-specific: probability of the true class (calibration), the OOD
                          score (higher = more in-distribution); NaN when not applicable
extra           string    JSON object: ``top5`` (clean); ``T``, ``brier``, ``probs`` (calibration);
                          ``eps``, ``norm``, ``steps``, ``step_size``, ``restarts`` (adversarial);
                          ``shape``, ``texture`` (shape bias); ``background_class``
                          (background); ``set``, ``method``, ``in_distribution`` (OOD)
==============  ========  ====================================================================
"""

from __future__ import annotations

import time
from typing import List, Sequence, Union

import pandas as pd

from ..device import device_record, module_device, resolve_device, synchronize
from ..registry import Registry

PROBES: Registry = Registry("probe")
ROWS_SCHEMA = "synthclone.rows/1"  # the row schema above; in every rows.parquet's metadata (docs/rows.md)

from . import adversarial, background, calibration, clean, context, corruptions, ood, shape_bias  # noqa: E402,F401  (register)
from .core import COLUMNS, BenchSettings, ModelAdapter, finalize  # noqa: E402
from .summary import summarize  # noqa: E402

ORDER = ["clean", "calibration", "corruptions", "adversarial", "shape-bias", "background", "ood", "context"]


def resolve_probes(probes: Union[str, Sequence[str]]) -> List[str]:
    """``"all"`` or a comma list / list of names -> registered names in the canonical order."""
    if isinstance(probes, str):
        probes = [p.strip() for p in probes.split(",") if p.strip()]
    names: List[str] = []
    for p in probes:
        if p == "all":
            names += [n for n in PROBES.names() if n != "context"]
        else:
            PROBES.get(p)  # unknown names fail here, listing the valid ones
            names.append(p)
    order = {n: i for i, n in enumerate(ORDER)}
    seen = []
    for n in sorted(dict.fromkeys(names), key=lambda n: order.get(n, len(order))):
        seen.append(n)
    return seen


def run_probes(model, model_name: str, probes: Union[str, Sequence[str]], settings: BenchSettings) -> pd.DataFrame:
    """Run ``probes`` on ``model`` (pixels [0, 1] -> logits) over ``settings.data``; rows in one DataFrame.

    The model is moved to ``settings.device`` (resolved: ``auto`` and ``cuda`` become ``cpu`` or
    ``cuda:N``, a missing GPU is a :class:`~synthclone.errors.UserError`) for the run and moved
    back to the device it came from afterwards, also when a probe fails.
    ``df.attrs["seconds"]`` holds each probe's wall time (GPU work included: the device is
    synchronised before each reading), ``df.attrs["device"]`` the :func:`~synthclone.device.device_record`.
    """
    from ..progress import say

    names = resolve_probes(probes)
    settings.model_name = model_name
    settings.device = device = resolve_device(settings.device)
    data = settings.evaluation_set()
    home = module_device(model)
    model.to(device)
    try:
        adapter = ModelAdapter(model, data.classes, settings.label_groups)
        adapter.eval()
        frames, seconds = [], {}
        for name in names:
            start = time.time()
            say(f"[bench] {model_name}: {name}")
            frames.append(finalize(PROBES.get(name)(adapter, data, settings)))
            synchronize(device)
            seconds[name] = round(time.time() - start, 2)
    finally:
        model.to(home)
    rows = finalize(frames)
    rows.attrs["seconds"] = seconds
    rows.attrs["device"] = device_record(device)
    return rows


__all__ = ["PROBES", "COLUMNS", "BenchSettings", "ModelAdapter", "run_probes", "resolve_probes", "summarize"]

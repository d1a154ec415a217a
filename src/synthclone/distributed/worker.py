"""What runs on a worker (or in-process): build the generator and filters once, then make shards.

A plan carries its device in the specs: ``plan.generator["options"]["device"]`` and, for filters that
take one, ``plan.filters[i]["options"]["device"]``. A Ray actor holding one GPU sees it as ``cuda:0``
(Ray sets ``CUDA_VISIBLE_DEVICES``), so it runs :func:`on_device` ``(plan, "cuda:0")`` first.
"""

from __future__ import annotations

import copy
import gc
import json
import threading
from typing import Any, Dict, List, Sequence

import torch

from ..errors import UserError

_CACHE: Dict[str, Any] = {}
_LOCK = threading.Lock()
# generator config keys a device may resolve differently ("auto"); a worker must agree with the plan on them
RESOLVED_KEYS = ("dtype", "precision", "variant")


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _generator_key(name: str, weights: Any, options: Dict[str, Any]) -> str:
    # every backend's default device is the CPU: {device: cpu} and no device share one generator
    if options.get("device") == "cpu":
        options = {k: v for k, v in options.items() if k != "device"}
    return "gen:" + _key({"name": name, "weights": weights, "options": options})  # no options == {}


def build_generator(spec: Dict[str, Any]):
    """A generator from ``{"name", "weights", "options"}``, cached per process.

    ``weights``: None = the shipped weights, ``"tiny"`` = a tiny random-weight model (tests, smoke
    runs; seeded so every process builds the same one), else a path or, for ``diffusers``, a hub id.
    ``options``: further keyword arguments of the generator (``generate.generator_options`` and the
    ``device``).
    """
    from ..generators import create_generator

    name, weights, options = spec["name"], spec.get("weights"), dict(spec.get("options") or {})
    key = _generator_key(name, weights, options)
    with _LOCK:
        if key not in _CACHE:
            if weights == "tiny":
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)
                    gen = create_generator(name, weights=None, tiny=True, **options)
            elif weights is None:
                gen = create_generator(name, **options)
            else:
                gen = create_generator(name, **({"model": weights} if name == "diffusers" else {"weights": weights}), **options)
            _CACHE[key] = gen
        return _CACHE[key]


def release_generator(spec: Dict[str, Any]) -> None:
    """Drop this process's copy of a generator (the driver of a Ray run frees its GPU memory for the actors)."""
    options = dict(spec.get("options") or {})
    with _LOCK:
        gen = _CACHE.pop(_generator_key(spec["name"], spec.get("weights"), options), None)
    del gen
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_filters(specs: Sequence[Dict[str, Any]]) -> List[Any]:
    """Filter objects from ``[{"name", "options"}]``, cached per process (they hold models)."""
    from ..filters import create_filter

    key = "filters:" + _key(list(specs))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = [create_filter(s["name"], **s.get("options", {})) for s in specs]
        return _CACHE[key]


def on_device(plan, device: str):
    """A copy of ``plan`` whose generator and filters (those given a device) run on ``device``."""
    plan = copy.copy(plan)
    plan.generator = copy.deepcopy(plan.generator)
    plan.generator.setdefault("options", {})["device"] = device
    plan.filters = copy.deepcopy(plan.filters)
    for spec in plan.filters:
        if "device" in spec.get("options", {}):
            spec["options"]["device"] = device
    return plan


def check_agrees(plan, generator) -> None:
    """The worker's generator resolved ``auto`` settings as the plan did (a store has one dtype)."""
    planned = (plan.identity.get("generator") or {}).get("config") or {}
    mine = getattr(generator, "config", {}) or {}
    for key in RESOLVED_KEYS:
        if key in planned and key in mine and planned[key] != mine[key]:
            raise UserError(f"a worker on {mine.get('device', 'its device')} loaded the generator with {key} "
                            f"{mine[key]!r} but the store was planned with {planned[key]!r}; set "
                            f"generate.generator_options.{key} explicitly so every worker agrees")


def make_shard(plan, shard) -> int:
    """Make one shard of ``plan`` (skipped when done); returns the images made.

    Raises a one-line :class:`UserError` when the GPU runs out of memory (the fix is a smaller
    ``generate.batch_size`` or a memory option), rather than a traceback from deep in the pipeline.
    """
    from ..data.store import run_shard

    if plan.is_done(shard):
        return 0
    generator = build_generator(plan.generator)
    check_agrees(plan, generator)
    try:
        return run_shard(plan, shard, generator, build_filters(plan.filters))
    except torch.cuda.OutOfMemoryError:
        device = (plan.generator.get("options") or {}).get("device", "the GPU")
        raise UserError(f"out of GPU memory on {device} making shard {shard.name} with batch_size "
                        f"{plan.settings.get('batch_size')}; lower generate.batch_size (--batch-size) or set "
                        "generate.generator_options cpu_offload / vae_slicing / attention_slicing") from None

"""What runs on a worker (or in-process): build the generator and filters once, then make shards."""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Sequence

import torch

_CACHE: Dict[str, Any] = {}
_LOCK = threading.Lock()


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def build_generator(spec: Dict[str, Any]):
    """A generator from ``{"name", "weights"}``, cached per process.

    ``weights``: None = the shipped weights, ``"tiny"`` = a tiny random-weight model (tests, smoke
    runs; seeded so every process builds the same one), else a path or, for ``diffusers``, a hub id.
    ``options``: further keyword arguments of the generator (``generate.generator_options``).
    """
    from ..generators import create_generator

    name, weights, options = spec["name"], spec.get("weights"), dict(spec.get("options") or {})
    key = "gen:" + _key({"name": name, "weights": weights, "options": options})  # no options == {}
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


def build_filters(specs: Sequence[Dict[str, Any]]) -> List[Any]:
    """Filter objects from ``[{"name", "options"}]``, cached per process (they hold models)."""
    from ..filters import create_filter

    key = "filters:" + _key(list(specs))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = [create_filter(s["name"], **s.get("options", {})) for s in specs]
        return _CACHE[key]


def make_shard(plan, shard) -> int:
    """Make one shard of ``plan`` (skipped when done); returns the images made."""
    from ..data.store import run_shard

    if plan.is_done(shard):
        return 0
    return run_shard(plan, shard, build_generator(plan.generator), build_filters(plan.filters))

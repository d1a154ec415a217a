"""Execution of generation shards: in-process, or on Ray actors on a local or remote cluster.

``run_shards(plan, shards, ray=None, on_done=...)`` makes every shard of a
:class:`~synthclone.data.store.StorePlan`; ``ray="local"`` starts a local Ray, any other string is
a cluster address (see :mod:`synthclone.distributed.ray_backend`: one actor per GPU, or per CPU, each
loading the generator once and pulling shards from a queue). Both paths call the same
:func:`~synthclone.distributed.worker.make_shard`, so a store made with Ray is the one made
in-process. ``generate_store`` is the whole ``synthclone generate``: plan, shards, filter
decisions, summary.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from .worker import build_filters, build_generator, make_shard


def run_shards(plan, shards: Sequence, ray: Optional[str] = None,
               on_done: Optional[Callable[[object, int], None]] = None, num_cpus: Optional[int] = None,
               workers: Optional[int] = None) -> int:
    """Make ``shards`` of ``plan``; ``on_done(shard, images_made)`` after each. Returns images made.

    ``num_cpus`` sizes a local Ray, ``workers`` the number of Ray actors (default: one per GPU on
    CUDA, one per CPU otherwise); both are ignored in-process.
    """
    if ray:
        from .ray_backend import run_ray

        return run_ray(plan, shards, ray, on_done=on_done, num_cpus=num_cpus, workers=workers)
    total = 0
    for shard in shards:
        n = make_shard(plan, shard)
        total += n
        if on_done:
            on_done(shard, n)
    return total


def generate_store(*args, **kwargs):
    """See :func:`synthclone.distributed.generation.generate_store`."""
    from .generation import generate_store as _generate_store

    return _generate_store(*args, **kwargs)


__all__ = ["build_filters", "build_generator", "generate_store", "make_shard", "run_shards"]

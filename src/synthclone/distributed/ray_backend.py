"""Shards on Ray actors: each actor loads the generator once and pulls shards until none are left.

``run_ray(plan, shards, address)`` starts ``n`` :class:`ShardWorker` actors on a local Ray
(``address="local"``) or a cluster, hands each one shard, and gives an actor the next pending shard
as soon as it returns one (a queue over ``ray.wait``), so a slow GPU never holds up the others.

* **Resources** (:func:`actor_layout`). CUDA plan: one actor per GPU of the cluster (``num_gpus=1``;
  Ray sets ``CUDA_VISIBLE_DEVICES``, so the actor runs on ``cuda:0``), ``num_cpus`` = the CPUs per
  GPU of the scarcest node, 1 to 4 (PNG encoding and the text encoder run there). CPU plan: one
  actor per CPU (``num_gpus=0``, ``num_cpus=1``; ``--ray-cpus`` sizes a local Ray). ``workers``
  (``generate.ray_workers`` / ``--ray-workers``) sets the count instead; more than the cluster
  holds is a one-line error, never a run that waits forever for resources.
* **Failures.** A shard's :class:`~synthclone.errors.UserError` reaches the user unwrapped (other
  errors as Ray raises them). A shard whose actor died (killed, out of host memory, node lost) goes
  back to the queue, up to ``retries`` more times, on a fresh actor. A store left by a failed or
  killed run resumes like any other.
* **Paths.** The store root and local weight paths go to the actors absolute. Every node must see
  them at the same path (a shared filesystem: NFS, Lustre, a mounted bucket); see docs/cluster.md.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import MissingExtraError, UserError

PATH_OPTIONS = ("weights", "model", "pretrained")  # generator / filter options that may name a local file or folder


def actor_layout(cuda: bool, resources: Dict[str, float], nodes: Sequence[Dict[str, float]],
                 workers: Optional[int], shards: int) -> Tuple[int, float, float]:
    """``(actors, num_cpus, num_gpus)`` per actor for a plan on CUDA or the CPU.

    ``resources``: the cluster's totals (``ray.cluster_resources()``); ``nodes``: each alive node's
    resources. Never more actors than shards.
    """
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if cuda:
        if gpus < 1:
            raise UserError("the device is CUDA but the Ray cluster has no GPUs; use a cluster with GPUs "
                            "or generate on the CPU (device: cpu)")
        if workers is not None and workers > gpus:
            raise UserError(f"--ray-workers {workers} but the Ray cluster has {gpus} GPUs (one actor each); "
                            f"use --ray-workers {gpus} or fewer, or add GPU nodes")
        per_gpu = [n.get("CPU", 0) / n["GPU"] for n in nodes if n.get("GPU", 0) >= 1]
        num_cpus = float(max(1, min(4, math.floor(min(per_gpu, default=1)))))
        return max(1, min(workers or gpus, shards)), num_cpus, 1.0
    if cpus < 1:
        raise UserError("the Ray cluster has no CPUs to run generation on; check the cluster")
    if workers is not None and workers > cpus:
        raise UserError(f"--ray-workers {workers} but the Ray cluster has {cpus} CPUs (one actor needs one); "
                        f"use --ray-workers {cpus} or fewer")
    count = max(1, min(workers or cpus, shards))
    return count, float(max(1, cpus // count)) if workers else 1.0, 0.0


def absolute_paths(plan):
    """A copy of ``plan`` with its root and local weight paths absolute (actors run in other folders)."""
    plan = copy.copy(plan)
    plan.root = str(Path(plan.root).expanduser().resolve())

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and Path(value).expanduser().exists():
            return str(Path(value).expanduser().resolve())
        return value

    plan.generator = copy.deepcopy(plan.generator)
    plan.generator["weights"] = fix(plan.generator.get("weights"))
    plan.filters = copy.deepcopy(plan.filters)
    for spec in [plan.generator, *plan.filters]:
        options = spec.get("options") or {}
        for key in PATH_OPTIONS:
            if key in options:
                options[key] = fix(options[key])
    return plan


class ShardWorker:
    """A Ray actor: the plan once, then ``make(shard)`` calls; the generator is loaded on the first."""

    def __init__(self, plan, cuda: bool, threads: int):
        import torch

        from .worker import on_device

        torch.set_num_threads(max(1, int(threads)))
        # the one GPU Ray gave this actor is cuda:0 here
        self.plan = on_device(plan, "cuda:0") if cuda else on_device(plan, "cpu")
        self.sees_store = False

    def make(self, shard) -> int:
        from ..data.store import STORE_JSON
        from .worker import make_shard

        if not self.sees_store:  # the driver wrote store.json before any actor started
            if not (Path(self.plan.root) / STORE_JSON).is_file():
                import socket

                raise UserError(f"the store {self.plan.root} is not visible on Ray node {socket.gethostname()}; every "
                                "node must see --out at the same path (a shared filesystem, see docs/cluster.md)")
            self.sees_store = True
        return make_shard(self.plan, shard)


def _unwrap(exc: BaseException) -> None:
    """Raise a shard's UserError as itself (one line at the CLI)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, UserError):
        raise UserError(str(cause)) from None


def run_ray(plan, shards: Sequence, address: str = "local", on_done: Optional[Callable] = None,
            num_cpus: Optional[int] = None, workers: Optional[int] = None, retries: int = 2) -> int:
    """Make ``shards`` on Ray actors; ``address`` is ``"local"`` (start a local Ray) or a cluster address.

    Returns the images made. ``num_cpus`` sizes a local Ray; ``workers`` the number of actors.
    """
    from ..device import is_cuda

    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray", "--ray") from None
    if not shards:
        return 0
    started = False
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot start or reach Ray at {address!r} ({str(exc).splitlines()[0][:120]}); "
                            "use --ray local or a running cluster's address") from None
        started = True
    actors: List[Any] = []
    try:
        cuda = is_cuda((plan.generator.get("options") or {}).get("device", "cpu"))
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        count, cpus, gpus = actor_layout(cuda, ray.cluster_resources(), nodes, workers, len(shards))
        actor_cls = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)(ShardWorker)
        plan_ref = ray.put(absolute_paths(plan))

        def new_actor():
            actor = actor_cls.remote(plan_ref, cuda, int(cpus))
            actors.append(actor)
            return actor

        queue = deque(shards)
        failures: Dict[Any, int] = {}
        running: Dict[Any, Tuple[Any, Any]] = {}  # object ref -> (actor, shard)

        def submit(actor) -> None:
            if queue:
                shard = queue.popleft()
                running[actor.make.remote(shard)] = (actor, shard)

        for _ in range(count):
            submit(new_actor())
        total = 0
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            actor, shard = running.pop(ref)
            try:
                n = ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # the process died: the shard goes back, on a fresh actor
                _unwrap(exc)
                failures[shard] = failures.get(shard, 0) + 1
                if failures[shard] > retries:
                    raise RuntimeError(f"shard {shard.name} failed {failures[shard]} times on Ray actors "
                                       f"(last: {str(exc).strip().splitlines()[0][:200]})") from None
                queue.appendleft(shard)
                ray.kill(actor)
                submit(new_actor())
                continue
            except ray.exceptions.RayTaskError as exc:
                _unwrap(exc)
                raise
            total += n
            if on_done:
                on_done(shard, n)
            submit(actor)
        return total
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()

"""Shards as Ray tasks: one task per shard, each worker building its generator once, all writing to one store.

At full scale each task asks for a GPU (``num_gpus=1``) on a cluster given by address; here a local Ray
of a few CPUs runs the same code. A failed task's :class:`~synthclone.errors.UserError` reaches the
user unwrapped; a store left by a failed or killed Ray run resumes like any other.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from ..errors import MissingExtraError, UserError


def _task(plan, shard) -> int:
    from .worker import make_shard

    return make_shard(plan, shard)


def run_ray(plan, shards: Sequence, address: str = "local", on_done: Optional[Callable] = None,
            num_cpus: Optional[int] = None, num_gpus_per_task: float = 0.0) -> int:
    """Run ``shards`` as Ray tasks; ``address`` is ``"local"`` (start a local Ray) or a cluster address."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray", "--ray") from None
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
    try:
        remote = ray.remote(num_cpus=1, num_gpus=num_gpus_per_task, max_retries=2)(_task)
        plan_ref = ray.put(plan)
        pending = {remote.remote(plan_ref, s): s for s in shards}
        total = 0
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                shard = pending.pop(ref)
                try:
                    n = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, UserError):
                        raise UserError(str(cause)) from None
                    raise
                total += n
                if on_done:
                    on_done(shard, n)
        return total
    finally:
        if started:
            ray.shutdown()

"""Running ``train_model`` data-parallel: under ``torchrun`` (env://) or as Ray Train workers.

Both end in the same place: an initialised ``torch.distributed`` process group (gloo on the CPU)
in every worker, which :func:`synthclone.training.engine.fit` picks up to shard batches and sum
gradients. Rank 0 writes the checkpoint.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import torch.distributed as dist

from ..errors import MissingExtraError, UserError


def init_from_env() -> bool:
    """Join the process group ``torchrun`` describes in the environment; False when not launched so."""
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group("gloo")
    return True


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _ray_worker(config: Dict[str, Any]) -> None:
    # runs inside each Ray Train worker; Ray has already initialised torch.distributed
    from ..data import load_dataset
    from . import train_model

    kwargs = dict(config["kwargs"])
    val = load_dataset(config["dataset"], split="val", **(kwargs.get("data_options") or {})) if config.get("dataset") else None
    result = train_model(val_data=val, **kwargs)
    try:
        from ray import train as ray_train

        ray_train.report({"val_accuracy": result.val_accuracy or 0.0, "epochs": len(result.history)})
    except Exception:  # reporting is informative only
        pass


def train_with_ray(kwargs: Dict[str, Any], dataset: Optional[str], num_workers: int = 2,
                   address: Optional[str] = None) -> Dict[str, Any]:
    """Run ``train_model(**kwargs)`` on ``num_workers`` Ray Train CPU workers (gloo).

    ``address`` is a Ray cluster address, or None / ``"local"`` to start Ray on this machine.
    The training data is loaded by each worker from the spec string, so it must be readable at the
    same path on every node (a shared file system). Returns the metrics rank 0 reported.
    """
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError:
        raise MissingExtraError("ray", "ray", "--ray training") from None
    if not isinstance(kwargs.get("train_data"), str):
        raise UserError("--ray training needs the data as a spec string so every worker can load it")
    if not ray.is_initialized():
        ray.init(address=None if address in (None, "local") else address, include_dashboard=False,
                 log_to_driver=False, num_cpus=None if address not in (None, "local") else max(num_workers, os.cpu_count() or 1))
    out = os.path.abspath(str(kwargs["out_dir"]))
    kwargs = {**kwargs, "out_dir": out}
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"kwargs": kwargs, "dataset": dataset},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=False, resources_per_worker={"CPU": 1}),
        torch_config=TorchConfig(backend="gloo"),
        run_config=RunConfig(name="synthclone-train", storage_path=os.path.join(out, "ray")),
    )
    result = trainer.fit()
    if result.error is not None:
        raise UserError(f"Ray training failed: {result.error}")
    return dict(result.metrics or {})

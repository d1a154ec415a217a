"""Running ``train_model`` data-parallel: under ``torchrun`` (env://) or as Ray Train workers.

Both end in the same place: an initialised ``torch.distributed`` process group in every worker
(NCCL when training on CUDA, gloo on the CPU), which :func:`synthclone.training.engine.fit` picks
up to shard batches and wrap the model in ``DistributedDataParallel``. Rank 0 writes the
checkpoint. Under ``torchrun`` with ``device: cuda`` each process takes the GPU of its
``LOCAL_RANK``; Ray Train workers ask Ray for one GPU each (``use_gpu``) when the device is CUDA.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import torch.distributed as dist

from ..errors import MissingExtraError, UserError


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group ``torchrun`` describes in the environment; False when not launched so.

    ``device`` is the resolved training device: NCCL on CUDA (this process's GPU made current),
    gloo on the CPU.
    """
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    from ..device import is_cuda

    if is_cuda(device):
        import torch

        torch.cuda.set_device(torch.device(device))
        dist.init_process_group("nccl")
    else:
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
    if config.get("use_gpu"):
        # Ray gives each worker its own GPU (CUDA_VISIBLE_DEVICES), seen here as cuda:0
        kwargs["device"] = "cuda"
    val = load_dataset(config["dataset"], split="val", **(kwargs.get("data_options") or {})) if config.get("dataset") else None
    result = train_model(val_data=val, **kwargs)
    try:
        from ray import train as ray_train

        ray_train.report({"val_accuracy": result.val_accuracy or 0.0, "epochs": len(result.history)})
    except Exception:  # reporting is informative only
        pass


def _ray_use_gpu(device: str, cluster_gpus: float) -> bool:
    """Whether Ray Train workers ask for a GPU: the device setting against the cluster's GPUs."""
    from ..device import check_device_spec

    spec = check_device_spec(device)
    if spec == "cpu":
        return False
    if spec.startswith("cuda") and cluster_gpus < 1:
        raise UserError(f"device {device!r} asks for CUDA GPUs but the Ray cluster has none; use device: cpu (or auto)")
    if spec.startswith("cuda:"):
        raise UserError(f"device {device!r} names one GPU, but Ray places its workers itself; use device: cuda")
    return cluster_gpus >= 1


def train_with_ray(kwargs: Dict[str, Any], dataset: Optional[str], num_workers: int = 2,
                   address: Optional[str] = None) -> Dict[str, Any]:
    """Run ``train_model(**kwargs)`` on ``num_workers`` Ray Train workers.

    ``address`` is a Ray cluster address, or None / ``"local"`` to start Ray on this machine.
    With ``kwargs["device"]`` CUDA (or ``auto`` on a cluster with GPUs) every worker asks Ray for
    one GPU and the workers talk over NCCL; otherwise one CPU each, gloo. The training data is
    loaded by each worker from the spec string and the checkpoint written to an absolute
    ``out_dir``, so both must be readable at the same path on every node (a shared file system).
    Returns the metrics rank 0 reported.
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
    use_gpu = _ray_use_gpu(str(kwargs.get("device", "cpu")), float(ray.cluster_resources().get("GPU", 0)))
    if not use_gpu:
        kwargs["device"] = "cpu"
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"kwargs": kwargs, "dataset": dataset, "use_gpu": use_gpu},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": 1, **({"GPU": 1} if use_gpu else {})}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name="synthclone-train", storage_path=os.path.join(out, "ray")),
    )
    result = trainer.fit()
    if result.error is not None:
        raise UserError(f"Ray training failed: {result.error}")
    return dict(result.metrics or {})

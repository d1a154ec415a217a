"""The one training loop every regime plugs into.

A regime supplies a :class:`Task` (the model to save, its trainable parameters, a per-batch loss,
an augmentation, how to evaluate). :func:`fit` runs it:

1. resume from ``out_dir/train_state/`` when a previous run of the same config left one;
2. per epoch: seeded batches from :class:`~synthclone.data.mixing.ShardedBatchSampler` (this
   rank's slice), decoded ahead in DataLoader workers, augmented (uint8 crops on the CPU, seeded
   by (seed, epoch, step, rank)), copied to ``settings.device`` (pinned, non-blocking on CUDA),
   autocast bf16 / fp16 (with a ``GradScaler``) or fp32, SGD/AdamW with linear warmup then cosine
   decay per step;
3. data parallel over ``torch.distributed`` ranks (``torchrun`` or Ray Train) through
   ``torch.nn.parallel.DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs): each rank's loss is
   its share of the global batch mean, so N processes compute the same update as one; contrastive
   losses gather their negatives from every rank (:mod:`synthclone.training.collective`);
   BatchNorm statistics are averaged over ranks after each epoch, or synchronised every step
   with ``sync_bn`` (CUDA);
4. a non-finite loss stops the run (:class:`TrainingDiverged`) before anything is saved;
5. after each epoch: validation accuracy (validation split only), the best model so far written to
   ``out_dir`` as a checkpoint, the resumable state to ``out_dir/train_state/``, a line in
   ``out_dir/log.jsonl``; early stopping after ``patience`` epochs without improvement.

Everything that decides the result depends only on the seed, so the same seed on the CPU gives the
same final weights, and a killed run resumed from its last epoch ends with the same weights as an
uninterrupted one. A run may resume on another device or under another number of processes (the
state holds the model, optimizer and RNG, not the world size); it then continues correctly but not
bit-identically, since augmentation streams are per rank.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.distributed as dist
from torch import nn

from ..data.images import ImageSet
from ..data.mixing import ShardedBatchSampler, TrainData, stable_seed
from ..errors import UserError
from ..device import device_record, is_cuda
from ..models.checkpoint import save_checkpoint
from ..precision import autocast, grad_scaler, resolve_precision
from ..progress import progress, say
from .collective import world

STATE_DIR = "train_state"


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Settings:
    """Optimisation settings shared by every regime."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    seed: int = 0
    precision: str = "auto"   # auto | bf16 | fp16 | fp32 (see synthclone.precision)
    optimizer: str = "sgd"
    momentum: float = 0.9
    warmup_epochs: float = 0.5
    patience: Optional[int] = None
    val_limit: Optional[int] = None
    eval_batch_size: int = 512
    source_weights: Optional[List[float]] = None  # per data part loss weight (e.g. real 1.0, synthetic 0.5)
    device: str = "cpu"          # a resolved device (synthclone.device.resolve_device)
    channels_last: bool = False  # channels-last memory format for model and batches
    compile: bool = False        # nn.Module.compile the model and extra modules
    sync_bn: bool = False        # SyncBatchNorm across data-parallel ranks (CUDA)

    def fingerprint(self) -> Dict[str, Any]:
        # what may change between a killed run and its resumption: epochs (extend a run), lr (a
        # user lowering it after divergence), patience, and where and how fast it runs (device,
        # memory format, compilation); everything else must match
        d = asdict(self)
        for k in ("epochs", "lr", "patience", "eval_batch_size", "device", "channels_last", "compile"):
            d.pop(k)
        return d


def _first_difference(theirs: Dict[str, Any], mine: Dict[str, Any], prefix: str = "") -> str:
    """The first setting (dotted key, with both values) where two run fingerprints differ."""
    for key in sorted(set(theirs) | set(mine)):
        a, b = theirs.get(key), mine.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            return _first_difference(a, b, f"{prefix}{key}.")
        return f"{prefix}{key} ({a!r} there, {b!r} asked)"
    return "configuration"


@dataclass
class Batch:
    """One rank's slice of a global batch."""

    x: torch.Tensor          # float (n, C, H, W) in [0, 1], augmented, on the training device
    y: torch.Tensor          # int64 (n,), on the training device
    index: torch.Tensor      # int64 (n,) sample indices into TrainData.data (CPU)
    source: torch.Tensor     # int64 (n,) data part of each sample (CPU)
    weight: torch.Tensor     # float (n,) per-sample loss weight, on the training device
    generator: torch.Generator  # for any further randomness of the step (second SimCLR view)
    global_size: int         # samples in the global batch over all ranks
    part_sizes: Optional[List[int]] = None  # with per-batch shares: samples of each data part in the global batch


@dataclass
class Task:
    """What a regime plugs into :func:`fit`.

    ``loss(batch)`` returns ``(per_sample_loss (n,), logits (n, K) or None)``; the engine weights,
    sums and divides by the global batch size. ``evaluate(model, val)`` returns accuracy in [0, 1]
    (default: argmax of ``model``). ``augment(x, g)`` maps float (n, C, H, W) -> same.
    """

    name: str
    model: nn.Module
    params: List[nn.Parameter]
    loss: Callable[[Batch], tuple]
    augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None
    evaluate: Optional[Callable[[nn.Module, ImageSet], float]] = "default"  # type: ignore[assignment]
    extra_modules: Dict[str, nn.Module] = field(default_factory=dict)  # trained but not saved with the model
    before_save: Optional[Callable[[], None]] = None
    training_info: Dict[str, Any] = field(default_factory=dict)
    max_grad_norm: Optional[float] = None  # clip the gradient of ``params`` to this L2 norm before each step


@dataclass
class TrainResult:
    """What :func:`fit` / ``train_model`` return."""

    checkpoint_dir: Path
    history: List[Dict[str, Any]]
    val_accuracy: Optional[float]
    best_epoch: int
    seconds: float
    images_per_s: float
    stopped_early: bool = False

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["checkpoint_dir"] = str(self.checkpoint_dir)
        return d


# ----------------------------------------------------------------------------------- distributed


class _Step(nn.Module):
    """A task's per-batch loss as one module, so ``DistributedDataParallel`` sees one forward per
    step whatever the regime calls inside (``model(x)``, ``encoder.features(x)``, a projector)."""

    def __init__(self, task: Task):
        super().__init__()
        self.model = task.model
        self.extra = nn.ModuleDict(task.extra_modules)
        self.__dict__["_loss"] = task.loss

    def forward(self, batch: Batch):
        return self._loss(batch)


def _data_parallel(step: _Step, device: str) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    index = [torch.device(device).index or 0] if is_cuda(device) else None
    # BatchNorm statistics: averaged after each epoch (or SyncBatchNorm), not broadcast every step;
    # the start is the same on every rank (same seed), which DDP's initial broadcast also ensures
    with warnings.catch_warnings():  # newer torch renames broadcast_buffers; the old name still works
        warnings.simplefilter("ignore", FutureWarning)
        return DistributedDataParallel(step, device_ids=index, broadcast_buffers=False, gradient_as_bucket_view=True)


def _average_buffers(module: nn.Module, world_size: int) -> None:
    """Average BatchNorm running statistics over ranks (each rank saw different samples)."""
    for name, buf in module.named_buffers():
        if buf.dtype.is_floating_point and ("running_" in name):
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(world_size)


def _all_sum(values: List[float], device: str) -> List[float]:
    """Sum of ``values`` over ranks (on the device NCCL needs, on the CPU for gloo)."""
    comm = device if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=comm)
    dist.all_reduce(t)
    return t.tolist()


def _to_device(t: torch.Tensor, device: str, channels_last: bool = False) -> torch.Tensor:
    """A batch tensor on the training device: pinned and non-blocking on CUDA."""
    if not is_cuda(device):
        return t
    t = t.pin_memory().to(device, non_blocking=True)
    return t.contiguous(memory_format=torch.channels_last) if channels_last and t.ndim == 4 else t


# ----------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def accuracy(model: nn.Module, data: ImageSet, batch_size: int = 512, precision: str = "auto") -> float:
    """Top-1 accuracy of ``model`` (pixels [0, 1] -> logits) on ``data``, in [0, 1]."""
    from ..device import module_device

    was = model.training
    model.eval()
    device = str(module_device(model))
    correct, seen = 0, 0
    for images, idx in data.batches(batch_size):
        x = _to_device(images, device).float().div_(255)
        with autocast(precision, device):
            logits = model(x)
        correct += int((logits.float().argmax(1).cpu() == data.labels[idx]).sum())
        seen += len(idx)
    model.train(was)
    return correct / max(seen, 1)


def limit_val(val: Optional[ImageSet], limit: Optional[int], seed: int = 0) -> Optional[ImageSet]:
    """A fixed, class-mixed subset of the validation split (the same for every run)."""
    if val is None or limit is None or limit >= len(val):
        return val
    g = torch.Generator().manual_seed(12345)  # independent of the training seed: same val set for all runs
    idx = torch.randperm(len(val), generator=g)[:limit].sort().values
    return val.subset(idx, name=f"{val.name}[:{limit}]")


# ----------------------------------------------------------------------------------- state


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    sd = opt.state_dict()
    tensors, rest = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        rest["state"][str(pid)] = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt.{pid}.{k}"] = v  # save_state copies it to the CPU
            else:
                rest["state"][str(pid)][k] = v
    return tensors, rest


def _unflatten_optimizer(opt: torch.optim.Optimizer, tensors: Dict[str, torch.Tensor], rest: Dict[str, Any]) -> None:
    state: Dict[int, Dict[str, Any]] = {int(pid): dict(st) for pid, st in rest["state"].items()}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


def _atomic_json(path: Path, obj: Any) -> None:
    from ..paths import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def save_state(state_dir: Path, task: Task, opt: torch.optim.Optimizer, info: Dict[str, Any]) -> None:
    """The resumable state: model + extra modules + optimizer + RNG (safetensors), counters (JSON)."""
    from safetensors.torch import save_file

    def cpu(v: torch.Tensor) -> torch.Tensor:
        return v.detach().to("cpu", copy=True).contiguous()

    state_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": cpu(v) for k, v in task.model.state_dict().items()}
    for name, mod in task.extra_modules.items():
        tensors.update({f"extra.{name}.{k}": cpu(v) for k, v in mod.state_dict().items()})
    opt_tensors, opt_rest = _flatten_optimizer(opt)
    tensors.update({k: cpu(v) for k, v in opt_tensors.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    # a new weights file per epoch, then the JSON that points at it replaced atomically: a kill at
    # any moment leaves either the old pair or the new pair, never a mix
    name = f"state-{info['epochs_done']}.safetensors"
    from ..paths import atomic_write

    atomic_write(state_dir / name, lambda p: save_file(tensors, str(p)))
    _atomic_json(state_dir / "state.json", {**info, "weights": name, "optimizer": opt_rest})
    for old in state_dir.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink()


def load_state_into(state_dir: Path, task: Task, opt: torch.optim.Optimizer) -> Dict[str, Any]:
    from safetensors.torch import load_file

    info = json.loads((state_dir / "state.json").read_text())
    tensors = load_file(str(state_dir / info.pop("weights")))
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    task.model.load_state_dict(model_sd, strict=True)
    for name, mod in task.extra_modules.items():
        p = f"extra.{name}."
        mod.load_state_dict({k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}, strict=True)
    _unflatten_optimizer(opt, tensors, info.pop("optimizer"))
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return info


# ----------------------------------------------------------------------------------- the loop


class _NullBar:
    """Progress bar of the non-zero ranks: only rank 0 draws one."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


def _optimizer(settings: Settings, params: List[nn.Parameter]) -> torch.optim.Optimizer:
    # no weight decay on biases and normalisation weights (1-d tensors), as is standard
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum, nesterov=True)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=settings.lr)
    raise UserError(f"unknown optimizer {settings.optimizer!r}; valid: sgd, adamw")


def _on_uint8(augment) -> bool:
    """True for an augmentation marked ``takes_uint8`` (directly or through ``functools.partial``):
    it gets the uint8 batch, and the float copy is made of its (already cropped) output."""
    fn = getattr(augment, "func", augment)
    return bool(getattr(fn, "takes_uint8", False))


def lr_at(step: int, total: int, warmup: int, base: float, floor: float = 0.0) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``floor * base`` at ``total``.

    The one learning-rate schedule of every regime and of the embedded generator's pre-training
    (which decays to ``floor = min_lr_ratio``).
    """
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    progress_ = (step - warmup) / max(1, total - warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))
    return base * cosine if floor == 0 else base * (floor + (1 - floor) * cosine)


def _prepare_modules(task: Task, settings: Settings, world_size: int) -> List[nn.Module]:
    """Move the task's modules to the device (channels-last, SyncBatchNorm, compiled as asked) and
    freeze every parameter the task does not train, so data parallelism reduces exactly
    ``task.params``. Returns the modules whose parameters were frozen here (thawed after fit)."""
    device = settings.device
    if settings.sync_bn and world_size > 1:
        if not is_cuda(device):
            raise UserError("train.sync_bn needs CUDA (torch's SyncBatchNorm runs on GPUs); on the CPU drop it: "
                            "BatchNorm statistics are averaged over processes after each epoch")
        task.model = nn.SyncBatchNorm.convert_sync_batchnorm(task.model)
    fmt = {"memory_format": torch.channels_last} if settings.channels_last else {}
    for m in [task.model, *task.extra_modules.values()]:
        m.to(device, **fmt)
    trained = {id(p) for p in task.params}
    frozen = [p for m in [task.model, *task.extra_modules.values()] for p in m.parameters()
              if p.requires_grad and id(p) not in trained]
    for p in frozen:
        p.requires_grad_(False)
    if settings.compile:
        for m in [task.model, *task.extra_modules.values()]:
            m.compile()
    return frozen


def fit(task: Task, train: TrainData, val: Optional[ImageSet], out_dir: str | Path, settings: Settings,
        run_info: Optional[Dict[str, Any]] = None) -> TrainResult:
    """Train ``task`` on ``train``; select on ``val``; write the best checkpoint to ``out_dir``.

    Args:
        task: what the regime trains (see :class:`Task`); its model is moved to ``settings.device``.
        train: training samples (uint8 images; any mixture).
        val: validation samples (the validation split, never test), or None (keep the last epoch).
        out_dir: checkpoint directory (``model.safetensors`` + ``meta.json``) plus ``train_state/``
            and ``log.jsonl``.
        settings: optimisation settings.
        run_info: JSON facts stored in the checkpoint's training summary (regime, data spec, ...).
    Returns:
        :class:`TrainResult`.
    Raises:
        TrainingDiverged: on a NaN/inf loss; the checkpoint of the last good epoch stays in ``out_dir``.
    """
    run = _Run(task, train, val, Path(out_dir), settings, dict(run_info or {}))
    run.resume()
    stopped_early = False
    for epoch in range(run.start_epoch, settings.epochs):
        row = run.train_epoch(epoch)
        improved = run.select(row, run.validate(row))
        stopped_early = settings.patience is not None and run.no_improve >= settings.patience
        run.save(epoch, row, improved, finished=epoch + 1 >= settings.epochs or stopped_early)
        if stopped_early:
            say(f"[{task.name}] early stop: no validation improvement for {settings.patience} epochs")
            break
    for p in run.frozen:
        p.requires_grad_(True)
    return TrainResult(run.out, run.history, run.best_val if run.best_val >= 0 else None, run.best_epoch + 1,
                       run.train_seconds, run.images_seen / max(run.train_seconds, 1e-9), stopped_early)


class _Run:
    """One :func:`fit`: the fixed parts (modules on the device, optimizer, sampler, loss weights) and
    what changes from epoch to epoch (history, the best epoch so far), which ``train_state/`` keeps."""

    def __init__(self, task: Task, train: TrainData, val: Optional[ImageSet], out: Path, settings: Settings,
                 run_info: Dict[str, Any]):
        self.task, self.train, self.out, self.settings, self.run_info = task, train, out, settings, run_info
        self.world_size, self.rank = world()
        self.main = self.rank == 0
        self.device = settings.device
        self.precision = resolve_precision(settings.precision, self.device)
        self.val = limit_val(val, settings.val_limit)
        self.sampler = ShardedBatchSampler(train, settings.batch_size, seed=settings.seed,
                                           world_size=self.world_size, rank=self.rank)
        self.steps_per_epoch = len(self.sampler)
        self.frozen = _prepare_modules(task, settings, self.world_size)
        self.opt = _optimizer(settings, task.params)
        self.scaler = grad_scaler(self.precision, self.device)
        self.step_module: nn.Module = _Step(task)
        if self.world_size > 1:
            self.step_module = _data_parallel(self.step_module, self.device)
        self.fingerprint = {"task": task.name, "settings": settings.fingerprint(), "data": train.spec,
                            "train_size": len(train), **({"group_size": train.group_size} if train.group_size else {}),
                            **{k: v for k, v in run_info.items() if k in ("model", "regime", "init")}}
        self.total_steps = self.steps_per_epoch * settings.epochs
        self.warmup = int(round(settings.warmup_epochs * self.steps_per_epoch))
        self.weights = _loss_weights(settings, train)
        self.modules = [task.model, *task.extra_modules.values()]
        self.state_dir = out / STATE_DIR
        self.history: List[Dict[str, Any]] = []
        self.start_epoch, self.best_val, self.best_epoch, self.no_improve = 0, -1.0, -1, 0
        self.images_seen, self.train_seconds = 0, 0.0

    def resume(self) -> None:
        """Continue from ``train_state/`` when a run of the same config left one there."""
        if not (self.state_dir / "state.json").is_file():
            return
        prior = json.loads((self.state_dir / "state.json").read_text())
        mine = json.loads(json.dumps(self.fingerprint, default=str))
        theirs = {k: v for k, v in prior.get("fingerprint", {}).items() if k != "world_size"}  # older states had it
        if theirs != mine:
            raise UserError(f"{self.out} holds a run with a different {_first_difference(theirs, mine)}; use a new "
                            f"--out directory or delete {self.state_dir}")
        info = load_state_into(self.state_dir, self.task, self.opt)
        self.start_epoch, self.history = info["epochs_done"], info["history"]
        self.best_val, self.best_epoch, self.no_improve = info["best_val"], info["best_epoch"], info.get("no_improve", 0)
        if info.get("finished") and self.start_epoch >= self.settings.epochs:
            # a finished run with another lr or patience would silently keep the old weights
            for key, ran in (info.get("resumable") or {}).items():
                if ran != getattr(self.settings, key):
                    raise UserError(f"{self.out} finished with {key} {ran}; this asks {key} "
                                    f"{getattr(self.settings, key)}, which would change nothing there: use a new "
                                    "--out directory")
            say(f"[{self.task.name}] {self.out} already finished ({self.start_epoch} epochs); nothing to do")
        else:
            say(f"[{self.task.name}] resuming {self.out} after epoch {self.start_epoch}")

    def _batch(self, images: torch.Tensor, idx: torch.Tensor, g: torch.Generator, global_n: int,
               part_sizes: Optional[List[int]] = None) -> Batch:
        augment, s = self.task.augment, self.settings
        if _on_uint8(augment):  # uint8 crops on the CPU, then the (smaller) float copy on the device
            x = _to_device(augment(images, g), self.device, s.channels_last).float().div_(255)
        else:
            x = _to_device(images, self.device, s.channels_last).float().div_(255)
            if augment is not None:
                x = augment(x, g)
        src = self.train.source[idx]
        return Batch(x, _to_device(self.train.data.labels[idx], self.device), idx, src,
                     _to_device(self.weights[src], self.device), g, global_n, part_sizes)

    def _step(self, batch: Batch, epoch: int, step: int) -> tuple[float, int]:
        """One optimisation step; returns this rank's summed loss and correct count."""
        with autocast(self.precision, self.device):
            per_sample, logits = self.step_module(batch)
        loss = (per_sample.float() * batch.weight).sum() / batch.global_size
        # DistributedDataParallel averages gradients over ranks; the engine's loss is each rank's share
        # of the global sum, so it is scaled by the world size to make the average that sum
        self.scaler.scale(loss * float(self.world_size)).backward()
        value = float(loss.detach()) * batch.global_size
        correct = int((logits.detach().float().argmax(1) == batch.y).sum()) if logits is not None else 0
        value_all = _all_sum([value], self.device)[0] if self.world_size > 1 else value
        if not math.isfinite(value_all):
            where = f"epoch {epoch + 1}, step {step + 1}"
            kept = (f"the last good checkpoint (epoch {self.best_epoch + 1}) is in {self.out}"
                    if (self.out / "meta.json").is_file() else "no checkpoint was written yet")
            raise TrainingDiverged(f"training diverged: loss is {value_all} at {where}; {kept}; lower --lr "
                                   f"(now {self.settings.lr}) and resume")
        if self.task.max_grad_norm is not None:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.task.params, self.task.max_grad_norm)
        self.scaler.step(self.opt)
        self.scaler.update()
        return value, correct

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        """One pass over the training data; returns the epoch's log row (loss, throughput, lr)."""
        s = self.settings
        for m in self.modules:
            m.train()
        batches = self.sampler.global_batches(epoch)
        bar = progress(total=len(batches), desc=f"{self.task.name} epoch {epoch + 1}/{s.epochs}", unit="batch",
                       leave=False) if self.main else _NullBar()
        t0 = time.perf_counter()
        loss_sum, correct, seen, lr = 0.0, 0, 0, s.lr
        # this rank's slice of every global batch, decoded ahead in DataLoader workers (file-backed data)
        slices = [self.sampler._rank_slice(gb) for gb in batches]
        for step, (gb, (images, idx)) in enumerate(zip(batches, self.train.data.batches(chunks=slices))):
            lr = lr_at(epoch * self.steps_per_epoch + step, self.total_steps, self.warmup, s.lr)
            for group in self.opt.param_groups:
                group["lr"] = lr
            part_sizes = [len(p) for p in gb] if isinstance(gb, list) else None
            global_n = sum(part_sizes) if part_sizes else len(gb)
            g = torch.Generator().manual_seed(stable_seed(s.seed, epoch, step, self.rank))
            self.opt.zero_grad(set_to_none=False)
            value, right = self._step(self._batch(images, idx, g, global_n, part_sizes), epoch, step)
            loss_sum, correct, seen = loss_sum + value, correct + right, seen + len(idx)
            if self.main and step % 10 == 0:
                bar.set_postfix(loss=f"{value / max(len(idx), 1):.3f}", lr=f"{lr:.3g}")
            bar.update(1)
        bar.close()
        if self.world_size > 1:
            if not (s.sync_bn and is_cuda(self.device)):
                for m in self.modules:
                    _average_buffers(m, self.world_size)
            loss_sum, correct, seen = _all_sum([loss_sum, float(correct), float(seen)], self.device)
            correct, seen = int(correct), int(seen)
        seconds = time.perf_counter() - t0
        self.train_seconds += seconds
        self.images_seen += seen
        row: Dict[str, Any] = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1),
                               "images_per_s": seen / max(seconds, 1e-9), "seconds": round(seconds, 2), "lr": lr}
        if correct:
            row["train_acc"] = correct / max(seen, 1)
        return row

    def validate(self, row: Dict[str, Any]) -> Optional[float]:
        """Validation accuracy of the epoch's model (None without a validation set), written into ``row``."""
        if self.val is None or self.task.evaluate is None:
            return None
        evaluate = self.task.evaluate if callable(self.task.evaluate) else (
            lambda m, v: accuracy(m, v, self.settings.eval_batch_size, self.precision))
        row["val_acc"] = evaluate(self.task.model, self.val)
        return row["val_acc"]

    def select(self, row: Dict[str, Any], val_acc: Optional[float]) -> bool:
        """Record the epoch; True when it is the best so far (every epoch is, without validation)."""
        self.history.append(row)
        improved = val_acc is None or val_acc > self.best_val
        if improved:
            self.best_val = val_acc if val_acc is not None else self.best_val
            self.best_epoch, self.no_improve = row["epoch"] - 1, 0
        else:
            self.no_improve += 1
        return improved

    def save(self, epoch: int, row: Dict[str, Any], improved: bool, finished: bool) -> None:
        """Rank 0 writes the checkpoint (when the epoch improved), the resumable state and the log line."""
        task, s = self.task, self.settings
        if self.main:
            if improved:
                if task.before_save is not None:
                    task.before_save()
                summary = {**self.run_info, **task.training_info, "settings": asdict(s), "best_epoch": epoch + 1,
                           "val_accuracy": row.get("val_acc"), "val_size": len(self.val) if self.val is not None else 0,
                           "data": self.train.summary(), "history": self.history,
                           "hardware": {**device_record(self.device), "precision": self.precision,
                                        "processes": self.world_size}}
                save_checkpoint(task.model, self.out, training=summary)
            save_state(self.state_dir, task, self.opt, {
                "fingerprint": self.fingerprint, "epochs_done": epoch + 1, "history": self.history,
                "best_val": self.best_val, "best_epoch": self.best_epoch, "no_improve": self.no_improve,
                "finished": finished, "resumable": {"lr": s.lr, "patience": s.patience}})
            with open(self.out / "log.jsonl", "a") as fh:
                fh.write(json.dumps({"task": task.name, **row}) + "\n")
            val_txt = f", val acc {row['val_acc']:.4f}" if row.get("val_acc") is not None else ""
            acc_txt = f", train acc {row['train_acc']:.4f}" if "train_acc" in row else ""
            say(f"[{task.name}] epoch {epoch + 1}/{s.epochs}: loss {row['loss']:.4f}{acc_txt}{val_txt}, "
                f"{row['images_per_s']:.0f} images/s")
        if self.world_size > 1:
            dist.barrier()


def _loss_weights(settings: Settings, train: TrainData) -> torch.Tensor:
    """The loss weight of each data part (``settings.source_weights``; 1 each by default)."""
    if settings.source_weights is None:
        return torch.ones(len(train.parts))
    if len(settings.source_weights) != len(train.parts):
        raise UserError(f"{len(settings.source_weights)} loss weights for {len(train.parts)} data parts {train.parts}")
    return torch.tensor(settings.source_weights, dtype=torch.float32)

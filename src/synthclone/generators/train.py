"""Training of the embedded text-to-image model (``synthclone pretrain generator``).

Data: the Fashion-MNIST ``generator`` split only (the stand-in for web data), images scaled to [-1, 1],
random horizontal flips (every Fashion-MNIST class is left-right symmetric as a category). Each image gets
a caption drawn from its class's phrasings (:mod:`.captions`), embedded once into a caption bank; a share
``p_uncond`` of captions is replaced by the network's learned null embedding (classifier-free guidance).
Objective: v-prediction MSE under the cosine schedule, timesteps drawn stratified over [0, T) so every
batch covers the whole noise range. AdamW with linear warm-up then cosine decay; an EMA copy of the weights
is what gets shipped.

Checkpoints: every ``checkpoint_every`` steps a folder ``ckpt-<step>`` is written beside a temp name and
renamed, then ``latest`` (a one-line file) is replaced atomically; a kill at any point leaves the previous
checkpoint intact. A checkpoint holds the model, the EMA, AdamW's moments (all safetensors) and
``state.json`` (step, optimiser scalars, config). The random stream of step ``k`` is seeded by
``(seed, k)``, so a resumed run draws exactly the batches an uninterrupted one would. Each checkpoint also
exports the EMA weights as ``generator.safetensors`` + ``generator.json`` in the output folder, loadable with
``create_generator("embedded", weights=OUT)``. The loss log is ``loss.jsonl`` (one JSON object per line).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List, Optional

import torch

from ..errors import UserError
from ..progress import progress, say
from .embedded import save_generator
from .schedulers import NoiseSchedule
from .unet import UNet


@dataclass
class GeneratorTrainConfig:
    steps: int = 10000
    batch_size: int = 128
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup: int = 300
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    p_uncond: float = 0.1
    channels: List[int] = field(default_factory=lambda: [16, 32, 64])
    blocks: int = 1
    emb_dim: int = 128
    attention: bool = True
    schedule: str = "cosine"
    prediction_type: str = "v_prediction"
    flip: bool = True
    split: str = "generator"
    limit: Optional[int] = None
    precision: str = "auto"
    device: str = "cpu"
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25
    grad_clip: float = 1.0
    captions: str = "full"            # caption set (captions.CAPTION_SETS)
    snapshots: List[int] = field(default_factory=list)  # steps at which the EMA weights are also kept as
    #                                   generator-step<k>.safetensors (+ .json): the shipped snapshots


def _lr(cfg: GeneratorTrainConfig, step: int) -> float:
    from ..training.engine import lr_at

    return lr_at(step, cfg.steps, cfg.warmup, cfg.lr, floor=cfg.min_lr_ratio)


def _atomic_text(path: Path, text: str) -> None:
    from ..paths import atomic_write_text

    atomic_write_text(path, text)


def _save_checkpoint(out: Path, step: int, model: UNet, ema: UNet, opt: torch.optim.AdamW, cfg: GeneratorTrainConfig,
                     extra: dict) -> Path:
    from safetensors.torch import save_file

    final = out / f"ckpt-{step:07d}"
    tmp = out / f".ckpt-{step:07d}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    save_file({k: v.detach().contiguous() for k, v in ema.state_dict().items()}, str(tmp / "ema.safetensors"))
    names = {id(p): n for n, p in model.named_parameters()}
    moments, opt_steps = {}, {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if st:
                n = names[id(p)]
                moments[f"exp_avg.{n}"] = st["exp_avg"].contiguous()
                moments[f"exp_avg_sq.{n}"] = st["exp_avg_sq"].contiguous()
                opt_steps[n] = float(st["step"])
    save_file(moments, str(tmp / "optimizer.safetensors"))
    state = {"step": step, "config": asdict(cfg), "optimizer_steps": opt_steps,
             "rng": "the batch of step k is drawn from torch.Generator seeded with seed * 1000003 + k", **extra}
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_text(out / "latest", final.name + "\n")
    for old in sorted(out.glob("ckpt-*")):
        if old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _load_checkpoint(ckpt: Path, model: UNet, ema: UNet, opt: torch.optim.AdamW) -> dict:
    from safetensors.torch import load_file

    state = json.loads((ckpt / "state.json").read_text())
    model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    ema.load_state_dict(load_file(str(ckpt / "ema.safetensors")))
    moments = load_file(str(ckpt / "optimizer.safetensors"))
    for n, p in model.named_parameters():
        if f"exp_avg.{n}" in moments:
            opt.state[p] = {"step": torch.tensor(state["optimizer_steps"][n]),
                            "exp_avg": moments[f"exp_avg.{n}"].to(p.device),
                            "exp_avg_sq": moments[f"exp_avg_sq.{n}"].to(p.device)}
    return state


def train_generator(out_dir: str | Path, cfg: GeneratorTrainConfig, resume: bool = False) -> dict:
    """Train (or resume) the embedded generator into ``out_dir``; returns a summary dict.

    ``resume=True`` continues from ``out_dir/latest``; without it an existing checkpoint is an error
    (so a typo cannot silently overwrite an hour of training).
    """
    from ..data import load_dataset
    from ..text import load_text_encoder
    from .captions import caption_bank

    from ..device import resolve_device

    cfg.device = resolve_device(cfg.device)  # before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    latest = out / "latest"
    if latest.is_file() and not resume:
        raise UserError(f"{out} already holds a generator checkpoint; pass --resume to continue it or choose another --out")
    from ..precision import resolve_precision

    cfg.precision = resolve_precision(cfg.precision, cfg.device)

    data = load_dataset("fashion-mnist", split=cfg.split)
    if cfg.limit:
        data = data.subset(range(min(cfg.limit, len(data))))
    images = data.images.float().div(127.5).sub(1.0)  # [-1, 1]
    labels = data.labels
    say(f"generator training data: {data.name}, {len(data)} images, {data.num_classes} classes")
    bank = caption_bank(data.classes, load_text_encoder(), cfg.captions)
    say(f"caption bank: {len(bank.captions)} captions")

    torch.manual_seed(cfg.seed)
    model = UNet(in_channels=images.shape[1], channels=cfg.channels, blocks=cfg.blocks, emb_dim=cfg.emb_dim,
                 attention=cfg.attention)
    model.to(cfg.device)
    ema = copy.deepcopy(model).requires_grad_(False)
    schedule = NoiseSchedule(kind=cfg.schedule, prediction_type=cfg.prediction_type)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, elapsed = 0, 0.0
    if resume and latest.is_file():
        ckpt = out / latest.read_text().strip()
        state = _load_checkpoint(ckpt, model, ema, opt)
        start, elapsed = int(state["step"]), float(state.get("wall_time_s", 0.0))
        say(f"resumed from {ckpt} at step {start}")
    log_path = out / "loss.jsonl"
    if log_path.is_file():  # drop log lines past the checkpoint (they will be recomputed identically)
        keep = [l for l in log_path.read_text().splitlines() if l.strip() and json.loads(l)["step"] <= start]
        _atomic_text(log_path, "".join(k + "\n" for k in keep))
    n_params = sum(p.numel() for p in model.parameters())
    say(f"UNet {cfg.channels} x{cfg.blocks}: {n_params / 1e6:.2f} M parameters; steps {start} -> {cfg.steps}")

    def record(done: int, loss: float, seconds: float) -> dict:
        """The training record saved beside the weights (generator.json)."""
        return {"training": {"steps": done, "config": asdict(cfg), "final_loss": loss, "wall_time_s": round(seconds, 1),
                             "data": data.name,
                             "captions_per_class": {data.classes[c]: len(v) for c, v in bank.per_class.items()}}}

    T = schedule.num_train_timesteps
    from ..precision import autocast as autocast_for

    autocast = autocast_for(cfg.precision, model)
    last_loss, t_mark, running = float("nan"), time.time(), []
    bar = progress(total=cfg.steps, initial=start, desc="pretrain generator", unit="step")
    model.train()
    with open(log_path, "a") as log:
        for step in range(start, cfg.steps):
            g = torch.Generator().manual_seed(cfg.seed * 1000003 + step)
            idx = torch.randint(len(images), (cfg.batch_size,), generator=g)
            x0 = images[idx]
            if cfg.flip:
                flip = torch.rand(cfg.batch_size, generator=g) < 0.5
                x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
            text = bank.sample(labels[idx], g)
            drop = torch.rand(cfg.batch_size, generator=g) < cfg.p_uncond
            # stratified timesteps: one per 1/B-th of [0, T), shuffled
            u = (torch.arange(cfg.batch_size) + torch.rand(cfg.batch_size, generator=g)) / cfg.batch_size
            t = (u[torch.randperm(cfg.batch_size, generator=g)] * T).long().clamp_(0, T - 1)
            noise = torch.randn(x0.shape, generator=g)
            # drawn on the CPU from the step's generator (the same batches on any device), computed on the device
            x0, noise, t, text, drop = (v.to(cfg.device) for v in (x0, noise, t, text, drop))
            xt = schedule.add_noise(x0, noise, t).float()
            target = schedule.target(x0, noise, t).float()
            cond = torch.where(drop[:, None], model.null_embedding[None].expand(cfg.batch_size, -1), text)
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step)
            with autocast:
                pred = model(xt, t.float(), cond)
            loss = torch.nn.functional.mse_loss(pred.float(), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - decay)
                for be, bm in zip(ema.buffers(), model.buffers()):
                    be.copy_(bm)
            running.append(loss.item())
            bar.update(1)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                now = time.time()
                elapsed += now - t_mark
                last_loss = sum(running) / len(running)
                log.write(json.dumps({"step": done, "loss": round(last_loss, 6), "lr": _lr(cfg, step),
                                      "wall_time_s": round(elapsed, 1)}) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{last_loss:.4f}")
                running, t_mark = [], now
            if done in cfg.snapshots:
                save_generator(ema, schedule, out / f"generator-step{done}.safetensors",
                               extra=record(done, last_loss, elapsed))
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                extra = {"wall_time_s": round(elapsed, 1), "loss": last_loss, "parameters": n_params}
                _save_checkpoint(out, done, model, ema, opt, cfg, extra)
                save_generator(ema, schedule, out / "generator.safetensors", extra=record(done, last_loss, elapsed))
    bar.close()
    return {"steps": cfg.steps, "final_loss": last_loss, "wall_time_s": round(elapsed, 1), "out": str(out),
            "parameters": n_params}

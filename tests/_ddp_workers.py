"""Process bodies for tests/test_training_ddp.py (spawned; importable by the child processes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _join(rank: int, world_size: int, init_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)


def _inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 8, generator=g)
    groups = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 4])
    text = F.normalize(torch.randn(5, 4, generator=g), dim=1)
    return x, groups, text


def losses(rows: slice | None, gather: bool):
    """SSL and CLIP loss sums and gradients of a linear encoder on rows ``rows`` of a fixed batch."""
    from synthclone.training.collective import gather_rows
    from synthclone.training.regimes import clip_contrastive_loss, multi_positive_loss

    x, groups, text = _inputs()
    torch.manual_seed(1)
    lin = torch.nn.Linear(8, 4)
    scale = torch.tensor(5.0, requires_grad=True)
    rows = rows or slice(0, len(x))
    z = F.normalize(lin(x[rows]), dim=1)
    if gather:
        z_all, offset = gather_rows(z)
        g_all, _ = gather_rows(groups[rows])
    else:
        z_all, offset, g_all = z, 0, groups[rows]
    anchors = torch.arange(offset, offset + z.shape[0])
    ssl = multi_positive_loss(z_all, g_all, 0.2, anchors).sum()
    clip = clip_contrastive_loss(z_all, g_all, text, scale, anchors).sum()
    (ssl + clip).backward()
    return float(ssl.detach()), float(clip.detach()), lin.weight.grad.clone(), scale.grad.clone()


def loss_worker(rank: int, world_size: int, init_file: str, out: str) -> None:
    _join(rank, world_size, init_file)
    rows = slice(0, 6) if rank == 0 else slice(6, 10)  # uneven slices
    ssl, clip, gw, gs = losses(rows, gather=True)
    totals = torch.tensor([ssl, clip], dtype=torch.float64)
    dist.all_reduce(totals)
    dist.all_reduce(gw)
    dist.all_reduce(gs)
    if rank == 0:
        torch.save({"ssl": float(totals[0]), "clip": float(totals[1]), "grad_w": gw, "grad_scale": gs}, out)
    dist.destroy_process_group()


def train_worker(rank: int, world_size: int, init_file: str, data_file: str, out_dir: str, kwargs_json: str) -> None:
    _join(rank, world_size, init_file)
    os.environ["SYNTHCLONE_QUIET"] = "1"
    from synthclone.progress import set_quiet
    from synthclone.training import train_model

    set_quiet(True)
    kwargs = json.loads(kwargs_json)
    stop_after = kwargs.pop("kill_after_epochs", None)
    if stop_after:  # both ranks stop at the end-of-epoch barrier, as a killed job would after its state is saved
        real_barrier, epochs = dist.barrier, []

        def barrier(*a, **kw):
            real_barrier(*a, **kw)
            epochs.append(1)
            if len(epochs) >= stop_after:
                raise _Killed

        dist.barrier = barrier
    train, val = torch.load(data_file, weights_only=False)
    try:
        train_model(train_data=train, val_data=val, out_dir=Path(out_dir), **kwargs)
    except _Killed:
        pass
    dist.destroy_process_group()


class _Killed(Exception):
    pass

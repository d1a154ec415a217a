"""Collectives the losses need: rows of every rank, with gradients flowing back to their owner.

Contrastive losses (SimCLR / StableRep's multi-positive loss, the CLIP loss) take their negatives
from the batch: a rank that saw only its own slice would train on a smaller, easier problem than
one process on the whole batch. :func:`gather_rows` concatenates a tensor's rows over all ranks
(any per-rank row count), differentiably: the backward pass sums every rank's gradient of the
gathered tensor (one all-reduce, which gloo and NCCL both have) and hands each rank the rows it
contributed. Each rank then computes the loss of its own anchors against the global batch, and the
summed gradients equal those of one process computing the loss on the whole batch.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.distributed as dist


def world() -> Tuple[int, int]:
    """(world_size, rank) of the initialised process group, else (1, 0)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _sizes(n: int, device: torch.device) -> List[int]:
    world_size, _ = world()
    mine = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(mine) for _ in range(world_size)]
    dist.all_gather(sizes, mine)
    return [int(s) for s in sizes]


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: List[int], rank: int) -> torch.Tensor:
        padded = x.new_zeros((max(sizes), *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.rank = sizes, rank
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None, None


def gather_rows(x: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """``(rows of x from every rank in rank order, offset of this rank's rows)``; differentiable.

    One process: ``(x, 0)``. ``x`` may have a different number of rows on each rank.
    """
    world_size, rank = world()
    if world_size == 1:
        return x, 0
    sizes = _sizes(x.shape[0], x.device)
    return _GatherRows.apply(x, sizes, rank), sum(sizes[:rank])

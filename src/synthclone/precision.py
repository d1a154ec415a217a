"""Which arithmetic to run in: ``auto`` means bf16 autocast where the hardware has bf16 units.

Measured on this project's machines: on an Intel Xeon with AMX, bf16 autocast trains a ResNet-8
1.5-2.5x faster than fp32; on an AMD EPYC without AVX-512 BF16 or AMX, the same bf16 autocast ran
12x *slower* than fp32 (33 vs 392 images/s, one thread), because every bf16 operation is emulated.
So ``auto`` picks bf16 only where it is native: a CPU with ``amx_bf16`` or ``avx512_bf16``, or a
CUDA GPU that supports bf16. ``fp16`` is for GPUs only (older ones without bf16); training under
fp16 scales the loss with a ``GradScaler`` (:func:`grad_scaler`).
"""

from __future__ import annotations

import functools

from .errors import UserError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (``amx_bf16`` or ``avx512_bf16`` in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"amx_bf16", "avx512_bf16"} & flags)
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"`` for a requested precision (``auto``, ``bf16``, ``fp16``,
    ``fp32``) on ``device``; fp16 on the CPU is a one-line error."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and not str(device).startswith("cuda"):
        raise UserError("precision fp16 runs on CUDA GPUs only; use bf16 or fp32 (or auto) on the CPU")
    if precision != "auto":
        return precision
    if str(device).startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast(precision: str, device="cpu"):
    """The autocast context for ``precision`` on ``device`` (a name, ``torch.device`` or a module,
    whose first parameter's device is used): bf16 autocast where :func:`resolve_precision` says
    bf16, else a disabled one (fp32)."""
    import torch

    if isinstance(device, torch.nn.Module):
        device = next((p.device for p in device.parameters()), torch.device("cpu"))
    kind = torch.device(device).type
    resolved = resolve_precision(precision, kind)
    if resolved in ("bf16", "fp16"):
        return torch.autocast(kind, dtype=torch.bfloat16 if resolved == "bf16" else torch.float16)
    return torch.autocast(kind, enabled=False)


def grad_scaler(precision: str, device="cpu"):
    """A ``torch.amp.GradScaler`` for fp16 training on CUDA, else one that is disabled (a no-op)."""
    import torch

    kind = torch.device(device).type
    return torch.amp.GradScaler(kind if kind == "cuda" else "cpu", enabled=resolve_precision(precision, kind) == "fp16")

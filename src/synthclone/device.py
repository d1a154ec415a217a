"""Where computation runs: ``device: auto | cpu | cuda | cuda:N``.

:func:`resolve_device` turns the setting into a concrete torch device string once, at the start of a
command; everything after that (generation, filters, training, every probe, the report's grids)
receives that string. ``auto`` is CUDA when torch sees a GPU, else the CPU. Asking for CUDA where
there is none is a one-line :class:`~synthclone.errors.UserError` (exit 2), never a silent CPU run.

Under ``torchrun`` each process takes the GPU of its ``LOCAL_RANK`` (``cuda`` -> ``cuda:LOCAL_RANK``).
:func:`device_record` is what outputs store about the device (checkpoints, stores, bench rows).
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, Optional

import torch

from .errors import UserError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"
DEVICE_HELP = "where to compute: auto (default: CUDA when there is a GPU), cpu, cuda or cuda:N"


def add_device_argument(parser, default: Optional[str] = None) -> None:
    """``--device`` for a subcommand (None: the config's ``device``, else ``auto``)."""
    parser.add_argument("--device", default=default, help=DEVICE_HELP)
_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_spec(spec: str) -> str:
    """``spec`` if it is spelled like a device setting, else a one-line error (no hardware check)."""
    text = str(spec).strip().lower()
    if not _PATTERN.match(text):
        raise UserError(f"device {spec!r} is not a device setting; use one of {DEVICE_CHOICES}")
    return text


def cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(spec: Optional[str] = "auto") -> str:
    """The concrete device for a setting: ``"cpu"`` or ``"cuda:N"``.

    Raises:
        UserError: CUDA asked for on a machine without a usable CUDA GPU, or ``cuda:N`` beyond the
            GPUs there are.
    """
    text = check_device_spec(spec or "auto")
    count = cuda_count()
    if text == "cpu":
        return "cpu"
    if text == "auto":
        if not count:
            return "cpu"
        text = "cuda"
    if not count:
        built = f"torch {torch.__version__} " + ("has CUDA support but sees no GPU" if torch.version.cuda
                                                  else "was built without CUDA")
        raise UserError(f"device {spec!r} asks for a CUDA GPU but this machine has none ({built}); "
                        "use device: cpu (or auto)")
    if text == "cuda":
        index = int(os.environ.get("LOCAL_RANK", "0")) % count
    else:
        index = int(text.split(":", 1)[1])
        if index >= count:
            raise UserError(f"device {spec!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    return f"cuda:{index}"


def is_cuda(device: Any) -> bool:
    return torch.device(device).type == "cuda"


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for a module with neither."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def device_record(device: str) -> Dict[str, Any]:
    """What an output records about where it was computed."""
    rec: Dict[str, Any] = {"device": str(device), "torch": str(torch.__version__)}
    if is_cuda(device):
        index = torch.device(device).index or 0
        rec.update(gpu=torch.cuda.get_device_name(index), cuda=torch.version.cuda)
    return rec


def synchronize(device: Any) -> None:
    """Wait for queued GPU work (for honest timings); nothing on the CPU."""
    if is_cuda(device):
        torch.cuda.synchronize(torch.device(device))

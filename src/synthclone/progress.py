"""Progress bars (tqdm) that a quiet mode turns off: ``--quiet`` or ``SYNTHCLONE_QUIET=1`` (CI)."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Optional, TypeVar

T = TypeVar("T")
_QUIET: Optional[bool] = None


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    if _QUIET is not None:
        return _QUIET
    return os.environ.get("SYNTHCLONE_QUIET", "").lower() in ("1", "true", "yes")


def progress(iterable: Optional[Iterable[T]] = None, *, desc: str = "", total: Optional[int] = None, unit: str = "it", **kw):
    """A tqdm bar on stderr, or a silent pass-through in quiet mode."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=is_quiet(), file=sys.stderr, dynamic_ncols=True, **kw)


def say(message: str) -> None:
    """A status line for the user (stderr), silenced in quiet mode."""
    if not is_quiet():
        print(message, file=sys.stderr, flush=True)

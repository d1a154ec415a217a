"""Progress bars (tqdm) and status lines (the ``synthclone`` logger) that ``-q`` / ``SYNTHCLONE_QUIET=1``
(CI) quiet and ``-v`` makes verbose; :func:`run_log` keeps them all in a run's ``run.log``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
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


LOGGER = logging.getLogger("synthclone")
_VERBOSE = False


def set_verbose(verbose: bool) -> None:
    """``-v``: debug lines (stage hashes and folders, what was loaded from where) on stderr too."""
    global _VERBOSE
    _VERBOSE = verbose


def _console_level() -> int:
    return logging.DEBUG if _VERBOSE else logging.WARNING if is_quiet() else logging.INFO


class _Console(logging.StreamHandler):
    """stderr at the level -q / -v ask for, the message alone (the run log adds the time)."""

    def emit(self, record):  # stderr as it is now: pytest and the CLI swap sys.stderr
        self.stream = sys.stderr
        if record.levelno >= _console_level():
            super().emit(record)


def _console() -> logging.Handler:
    for h in LOGGER.handlers:
        if isinstance(h, _Console):
            return h
    handler = _Console()
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.DEBUG)
    LOGGER.propagate = False
    return handler


def say(message: str) -> None:
    """A status line for the user (stderr, and the run log), silenced on stderr in quiet mode."""
    _console()
    LOGGER.info(message)


def warn(message: str) -> None:
    """A warning: shown on stderr even in quiet mode, and kept in the run log."""
    _console()
    LOGGER.warning(message)


def debug(message: str) -> None:
    """A detail for ``-v`` and the run log (not shown otherwise)."""
    _console()
    LOGGER.debug(message)


@contextlib.contextmanager
def run_log(path: str | Path):
    """Append every status, warning and debug line to ``path`` (with the time) while the block runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    _console()
    LOGGER.addHandler(handler)
    try:
        yield path
    except BaseException as exc:
        LOGGER.debug(f"stopped by {type(exc).__name__}: {exc}")
        raise
    finally:
        LOGGER.removeHandler(handler)
        handler.close()

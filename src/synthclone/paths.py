"""Where synthclone keeps caches and finds the files it ships."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"


def cache_dir() -> Path:
    """``$SYNTHCLONE_CACHE``, else ``$XDG_CACHE_HOME/synthclone``, else ``~/.cache/synthclone``."""
    root = os.environ.get("SYNTHCLONE_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "synthclone"


def data_dirs() -> list[Path]:
    """``$XDG_DATA_DIRS`` (default ``/usr/local/share:/usr/share``) as paths."""
    raw = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    return [Path(p) for p in raw.split(":") if p]


def atomic_write(path: str | Path, write: Callable[[Path], Any], mode: Optional[int] = None) -> Path:
    """Write ``path`` all at once: ``write(tmp)`` fills a temp file in the same folder (named with the
    same suffix, so writers that pick a format by it still do), which then replaces ``path``
    (``os.replace``: a killed process leaves the old file or the new one, never half of one). The
    temp file is removed if ``write`` fails. ``mode``: permissions to set before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)  # no fsync: rename is atomic against killed processes, which is what resume needs
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def check_out_dir(root: str | Path, flag: str = "--out") -> Path:
    """Fail early, before any model loads, when ``root`` cannot become an output folder: it is a file,
    or the nearest existing folder above it is a file or not writable (one line naming ``flag``)."""
    from .errors import UserError

    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UserError(f"output {root} is a file, not a folder; choose another {flag}")
    ancestor = root
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to output folder {root} ({ancestor} is not a writable folder); "
                        f"choose a writable {flag}")
    return root

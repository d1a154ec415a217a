"""Where synthclone keeps caches and finds the files it ships."""

from __future__ import annotations

import os
from pathlib import Path

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

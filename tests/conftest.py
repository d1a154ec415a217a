"""Shared fixtures. Tests run quiet (no progress bars) and keep caches in a temp folder."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SYNTHCLONE_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def run_cli(capsys):
    """Run ``synthclone ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from synthclone.cli import main

    def _run(*args: str):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return _run

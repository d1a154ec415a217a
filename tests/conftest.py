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


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One intra-op thread for the whole suite.

    Measured here: with several torch processes on a 2-core machine, the default two OpenMP
    threads per process made a tiny network run 60x slower; the tests use small models, for which
    one thread is also the faster choice on an idle machine.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load_benchmark(name: str):
    """The module ``benchmarks/<name>.py`` (benchmarks are scripts, not a package: loaded from their file,
    with their folder on sys.path while it executes, for their ``_common`` import)."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(folder))
    return mod

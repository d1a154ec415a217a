"""Kill a real ``synthclone generate`` process with SIGKILL mid-run, run it again: the store ends
byte-identical to an uninterrupted run — none lost, none twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from test_generate import tree_digest

ARGS = ["--classes", "Coat,Sandal,Bag", "--per-class", "40", "--shard-size", "4", "--generator-weights", "tiny",
        "--steps", "2", "--filter", "dedup", "--prompts", "domains"]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SYNTHCLONE_QUIET": "1"}  # one thread, as in the reference run


def _command(out: Path, args=ARGS):
    return [sys.executable, "-m", "synthclone", "-q", "generate", "--out", str(out), *args]


def _kill_when(out: Path, ready, timeout: float = 600.0, args=ARGS) -> bool:
    """Start generate, SIGKILL it as soon as ``ready(out)``; True when it was killed before finishing."""
    proc = subprocess.Popen(_command(out, args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if ready(out):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    return False


def _pngs(out: Path) -> int:
    return sum(1 for _ in (out / "images").rglob("*.png")) if (out / "images").is_dir() else 0


def _shards(out: Path) -> int:
    return sum(1 for _ in (out / "shards").glob("*.parquet")) if (out / "shards").is_dir() else 0


def _check_resumed_equals_reference(out: Path, reference: Path, run_cli, args=ARGS) -> None:
    # resumed in-process (one thread, like the killed subprocess): saves a second interpreter start
    code, _, err = run_cli("generate", "--out", out, *args)
    assert code == 0, err
    assert tree_digest(out) == tree_digest(reference)  # every PNG, shard part, manifest and store.json
    df = pd.read_parquet(out / "manifest.parquet")
    assert len(df) == 120 and df["id"].is_unique
    on_disk = sorted(p.stem for p in out.rglob("*.png"))
    assert on_disk == sorted(df["id"])  # none lost, none twice
    assert not list(out.rglob(".*.tmp*"))


def test_sigkill_mid_run_then_resume_is_byte_identical(tmp_path, run_cli):
    reference = tmp_path / "reference"
    code, _, err = run_cli("generate", "--out", reference, *ARGS)
    assert code == 0, err
    out = tmp_path / "killed"
    # killed once two shards are finished: the third is usually half written
    assert _kill_when(out, lambda o: _shards(o) >= 2), "generate finished before it could be killed"
    assert not (out / "manifest.parquet").exists() and 2 <= _shards(out) < 30
    _check_resumed_equals_reference(out, reference, run_cli)


# WordNet-based prompts: also checks that prompts (and so the config hash) are the same in a new process
SLOW_ARGS = [a if a != "domains" else "language-enhancement" for a in ARGS]


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_is_byte_identical(tmp_path, run_cli):
    reference = tmp_path / "reference"
    assert run_cli("generate", "--out", reference, *SLOW_ARGS)[0] == 0
    out = tmp_path / "killed"
    kill = lambda ready: _kill_when(out, ready, args=SLOW_ARGS)  # noqa: E731
    assert kill(lambda o: (o / "store.json").exists())  # right after the store was opened
    assert kill(lambda o: _pngs(o) >= 1)  # first image written, its shard unfinished
    first = _shards(out)
    assert kill(lambda o: _shards(o) >= first + 5)
    kill(lambda o: (o / "rejected").exists() or (o / "manifest.parquet").exists() or _shards(o) >= 29)  # may finish first
    _check_resumed_equals_reference(out, reference, run_cli, args=SLOW_ARGS)

"""``--ray local``: shards as Ray tasks on a local Ray of 2 CPUs, writing one store."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("ray")

from synthclone.data.store import load_store  # noqa: E402


@pytest.mark.slow  # starting Ray and two workers (each loading the text encoder) takes about a minute here
def test_ray_local_makes_the_same_store_as_in_process(tmp_path, run_cli):
    common = ["--classes", "Coat,Bag", "--per-class", "6", "--shard-size", "3", "--generator-weights", "tiny",
              "--steps", "2", "--filter", "dedup"]
    code, stdout, err = run_cli("generate", "--out", tmp_path / "ray", "--ray", "local", "--ray-cpus", "2", *common)
    assert code == 0, err
    assert "made 12 images this run" in stdout
    code, _, err = run_cli("generate", "--out", tmp_path / "local", *common)
    assert code == 0, err
    a = pd.read_parquet(tmp_path / "ray" / "manifest.parquet")
    b = pd.read_parquet(tmp_path / "local" / "manifest.parquet")
    same = ["id", "path", "class_index", "prompt", "seed", "kept"]
    assert a[same].equals(b[same])
    # the per-image content: identical unless the worker's thread count changed float rounding
    assert (a["sha256"] == b["sha256"]).mean() >= 0.9
    assert len(load_store(tmp_path / "ray")) == 12
    # resuming a finished store through Ray makes nothing
    code, stdout, _ = run_cli("generate", "--out", tmp_path / "ray", "--ray", "local", "--ray-cpus", "2", *common)
    assert code == 0 and "made 0 images this run" in stdout


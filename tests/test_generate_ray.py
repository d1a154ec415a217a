"""Generation on Ray actors: on this CPU the same code that runs one actor per GPU runs with ``num_gpus=0``.

One local Ray of 2 CPUs serves the module (starting it takes a few seconds); each test's actors load
the tiny generator once and pull shards from the queue.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from synthclone.config import GenerateConfig  # noqa: E402
from synthclone.data.store import load_store, open_store  # noqa: E402
from synthclone.distributed.generation import plan_store  # noqa: E402
from synthclone.distributed.ray_backend import absolute_paths, actor_layout, run_ray  # noqa: E402
from synthclone.errors import UserError  # noqa: E402

COMMON = ["--classes", "Coat,Bag", "--per-class", "6", "--shard-size", "2", "--generator-weights", "tiny",
          "--steps", "2", "--filter", "dedup"]


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_actor_layout_gpu_and_cpu():
    """One actor per GPU (CPUs per GPU of the scarcest node, 1-4) or per CPU; never more than asked, held or needed."""
    nodes = [{"CPU": 32, "GPU": 8}, {"CPU": 8, "GPU": 4}, {"CPU": 16}]
    totals = {"CPU": 56, "GPU": 12}
    assert actor_layout(True, totals, nodes, None, 100) == (12, 2.0, 1.0)
    assert actor_layout(True, totals, nodes, 3, 100) == (3, 2.0, 1.0)
    assert actor_layout(True, totals, nodes, None, 5) == (5, 2.0, 1.0)  # no idle actors
    assert actor_layout(True, {"CPU": 64, "GPU": 1}, [{"CPU": 64, "GPU": 1}], None, 9) == (1, 4.0, 1.0)
    with pytest.raises(UserError, match="has 12 GPUs"):
        actor_layout(True, totals, nodes, 13, 100)
    with pytest.raises(UserError, match="no GPUs"):
        actor_layout(True, {"CPU": 8}, [{"CPU": 8}], None, 4)
    assert actor_layout(False, {"CPU": 2}, [{"CPU": 2}], None, 6) == (2, 1.0, 0.0)
    assert actor_layout(False, {"CPU": 16}, [{"CPU": 16}], 4, 6) == (4, 4.0, 0.0)  # fewer actors, more threads each
    with pytest.raises(UserError, match="has 2 CPUs"):
        actor_layout(False, {"CPU": 2}, [{"CPU": 2}], 3, 6)


def test_plan_goes_to_ray_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.safetensors").write_bytes(b"")
    cfg = GenerateConfig(per_class=2, steps=1, filter=[], model="tiny")
    plan, _, _ = plan_store(cfg, "store", classes=["Coat"])
    plan.generator["weights"] = "weights.safetensors"
    moved = absolute_paths(plan)
    assert moved.root == str(tmp_path / "store") and moved.generator["weights"] == str(tmp_path / "weights.safetensors")
    assert plan.root == "store" and plan.generator["weights"] == "weights.safetensors"  # the plan itself is untouched


def test_ray_actors_finish_a_store_exactly_as_in_process(tmp_path, run_cli, local_ray):
    """A store made in-process, three of its six shards deleted (parts and PNGs), finished by 2 CPU actors
    pulling from the queue: every file is the same bytes as the in-process store's."""
    local, resumed = tmp_path / "local", tmp_path / "resumed"
    code, _, err = run_cli("generate", "--out", local, *COMMON)
    assert code == 0, err
    shutil.copytree(local, resumed)
    manifest = pd.read_parquet(resumed / "manifest.parquet")
    (resumed / "manifest.parquet").unlink()
    gone = sorted(manifest["shard"].unique())[1::2]
    for row in manifest[manifest["shard"].isin(gone)].itertuples():
        (resumed / row.path).unlink()
    for shard in gone:
        (resumed / "shards" / f"{shard}.parquet").unlink()
    code, stdout, err = run_cli("generate", "--out", resumed, "--ray", "local", "--ray-workers", "2", *COMMON)
    assert code == 0, err
    assert "made 6 images this run" in stdout and "3 shards resumed" in stdout and "CPU actors" in stdout
    assert tree_digest(resumed) == tree_digest(local)
    df = pd.read_parquet(resumed / "manifest.parquet")
    assert set(df["device"]) == {"cpu"} and not df["nsfw"].any() and len(load_store(resumed)) == 12
    code, stdout, _ = run_cli("generate", "--out", resumed, "--ray", "local", *COMMON)  # finished: nothing to do
    assert code == 0 and "made 0 images this run" in stdout


def test_a_workers_user_error_comes_back_as_itself(tmp_path, local_ray):
    """Errors only an actor can see reach the caller as one UserError line: a store folder its node
    does not see (no shared filesystem), a weights file missing there."""
    cfg = GenerateConfig(per_class=2, steps=1, filter=[], model="tiny", shard_size=1)
    plan, _, _ = plan_store(cfg, tmp_path / "s", classes=["Coat"])
    with pytest.raises(UserError, match=r"store .*/s is not visible on Ray node .*shared filesystem") as info:
        run_ray(plan, plan.shards(), "local", workers=1)  # never opened: as if on another machine
    assert "\n" not in str(info.value)
    open_store(plan)
    plan.generator = {"name": "embedded", "weights": str(tmp_path / "gone.safetensors")}
    with pytest.raises(UserError) as info:
        run_ray(plan, plan.shards(), "local", workers=1)
    assert "gone.safetensors" in str(info.value) and "\n" not in str(info.value)


def test_a_cuda_plan_on_a_cluster_without_gpus_is_one_line(tmp_path, local_ray):
    """A CUDA plan (as a GPU driver makes it) on a Ray without GPUs fails before any shard is made."""
    cfg = GenerateConfig(per_class=2, steps=1, filter=[], model="tiny", ray="local")
    plan, _, _ = plan_store(cfg, tmp_path / "s", classes=["Coat"])
    plan.generator["options"]["device"] = "cuda:0"
    with pytest.raises(UserError, match="no GPUs"):
        run_ray(plan, plan.shards(), "local")
    assert not list((tmp_path / "s").glob("shards/*.parquet"))

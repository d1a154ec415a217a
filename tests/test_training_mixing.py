"""Data specs, mixtures by ratio and by count, few-shot subsets, and the sharded batch sampler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from synthclone.data.images import ImageSet
from synthclone.data.mixing import ShardedBatchSampler, from_sets, load_train_data, parse_spec
from synthclone.errors import UserError

CLASSES = [f"c{i}" for i in range(4)]


def _set(n: int, offset: int = 0, name: str = "real") -> ImageSet:
    images = (torch.arange(n) + offset).remainder(256).to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, 8, 8).contiguous()
    return ImageSet(images, torch.arange(n) % 4, list(CLASSES), [f"{name}-{i}" for i in range(n)], name=name)


def write_store(root: Path, data: ImageSet, prompts) -> Path:
    """A minimal finished store (store.json + images/ + manifest.parquet) as SYN's contract lays it out."""
    import pandas as pd
    from PIL import Image

    rows = []
    for i in range(len(data)):
        c = int(data.labels[i])
        rel = f"images/{data.classes[c]}/{i:05d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.images[i, 0].numpy(), mode="L").save(root / rel)
        rows.append({"id": f"s{i}", "path": rel, "class_index": c, "class_name": data.classes[c], "prompt": prompts[i],
                     "strategy": "test", "generator": "none", "guidance": 0.0, "steps": 0, "scheduler": "none",
                     "seed": i, "source_id": None, "clip_score": 1.0, "kept": True, "sha256": ""})
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet")
    (root / "store.json").write_text(json.dumps({"classes": list(data.classes)}))
    return root


def test_parse_spec_forms():
    assert parse_spec("real") == ([("real", {})], None)
    assert parse_spec("real:k=4+runs/s@0.25") == ([("real", {"k": 4}), ("runs/s", {})], [0.75, 0.25])
    assert parse_spec("real+runs/s:n=100") == ([("real", {}), ("runs/s", {"n": 100})], None)
    assert parse_spec("real+a+b@0.5,0.25,0.25")[1] == [0.5, 0.25, 0.25]
    for bad in ["", "real+a@0.5,0.7", "real:q=3", "real+a@x"]:
        with pytest.raises(UserError):
            parse_spec(bad)


@pytest.mark.parametrize("share", [0.25, 0.5, 0.75])
def test_ratio_mixture_puts_the_share_in_every_batch(share):
    td = from_sets([_set(100), _set(40, 100, "syn")], [1 - share, share], ["real", "syn"])
    sampler = ShardedBatchSampler(td, 16, seed=3)
    batches = list(sampler)
    want = round(16 * share)
    assert all(int(td.source[b].sum()) == want for b in batches)  # part 1 = synthetic
    real = torch.cat([torch.tensor(b)[td.source[b] == 0] for b in batches])
    assert sorted(real.tolist()) == list(range(100))  # one pass over the real (anchor) part per epoch
    assert len(batches) == len(sampler)


def test_plain_sampler_is_seeded_and_epoch_dependent():
    td = from_sets([_set(50)])
    a, b = ShardedBatchSampler(td, 8, seed=1), ShardedBatchSampler(td, 8, seed=1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert sorted(i for batch in b for i in batch) == list(range(50))


@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_disjoint_and_cover_each_epoch(world):
    td = from_sets([_set(101)])
    for epoch in range(2):
        seen = []
        steps = set()
        for rank in range(world):
            s = ShardedBatchSampler(td, 16, seed=0, world_size=world, rank=rank)
            s.set_epoch(epoch)
            batches = list(s)
            steps.add(len(batches))
            seen += [i for b in batches for i in b]
        assert sorted(seen) == list(range(101))  # each sample exactly once across ranks
        assert len(steps) == 1  # every rank takes the same number of steps (collectives stay in step)


def test_mixture_shards_keep_the_share_per_rank():
    td = from_sets([_set(64), _set(64, 64, "syn")], [0.5, 0.5], ["real", "syn"])
    for rank in range(2):
        s = ShardedBatchSampler(td, 16, world_size=2, rank=rank)
        for b in s:
            assert int(td.source[b].sum()) == 4 and len(b) == 8


def test_store_specs_few_shot_and_adding_n_per_class(tmp_path, monkeypatch):
    real = _set(80)
    monkeypatch.setitem(__import__("synthclone.data", fromlist=["DATASETS"]).DATASETS._items, "toy", lambda split="train", **_: real)
    store = write_store(tmp_path / "store", _set(40, 80, "syn"), [f"a photo of {CLASSES[i % 4]} #{(i // 4) % 2}" for i in range(40)])
    td = load_train_data(f"real+{store}:n=3", dataset="toy")
    assert td.parts == ["real", f"{store}[3/class]"] and td.shares is None
    syn = td.data.labels[td.source == 1]
    assert [int((syn == c).sum()) for c in range(4)] == [3, 3, 3, 3]
    assert all(p is not None for p, s in zip(td.prompts, td.source) if s == 1)

    few = load_train_data("real:k=2", dataset="toy", seed=5)
    assert [int((few.data.labels == c).sum()) for c in range(4)] == [2] * 4
    assert few.data.ids == load_train_data("real:k=2", dataset="toy", seed=5).data.ids  # seeded
    assert few.data.ids != load_train_data("real:k=2", dataset="toy", seed=6).data.ids

    mixed = load_train_data(f"real:k=2+{store}@0.5", dataset="toy")
    assert mixed.shares == [0.5, 0.5] and len(mixed) == 8 + 40
    groups = mixed.prompt_groups()
    assert len(set(groups[mixed.source == 1].tolist())) == 8  # 4 classes x 2 prompts
    assert len(set(groups[mixed.source == 0].tolist())) == 8  # real images: one group each

    with pytest.raises(UserError, match="neither"):
        load_train_data("real+/no/such/store", dataset="toy")
    with pytest.raises(UserError, match="fewer than k"):
        load_train_data("real:k=50", dataset="toy")

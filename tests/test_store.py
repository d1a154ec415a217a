"""The synthetic dataset store: names, seeds, PNG bytes, atomic files, config checks, loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthclone.data import store as st
from synthclone.errors import UserError


def test_safe_names_block_traversal_and_collisions():
    assert st.safe_name("T-shirt/top") == "T-shirt_top"
    assert st.safe_name("../../etc/passwd") == "etc_passwd"
    assert st.safe_name("..") == "class" and st.safe_name("") == "class" and st.safe_name("/") == "class"
    assert st.safe_name("Crème brûlée") == "Creme_brulee"
    names = st.safe_class_names(["a/b", "a_b", "A_B", "a b", "a_b-1", ".."])
    assert len({n.lower() for n in names}) == 6  # distinct even on case-insensitive file systems
    for n in names:
        assert "/" not in n and not n.startswith(".") and n not in ("", ".", "..")
    assert names[0] == "a_b" and names[1] == "a_b-1" and names[4] != "a_b-1"


def test_slot_seeds_are_stable_and_distinct():
    seeds = {st.slot_seed(0, c, j) for c in range(10) for j in range(500)}
    assert len(seeds) == 5000
    assert st.slot_seed(0, 3, 7) == st.slot_seed(0, 3, 7) != st.slot_seed(1, 3, 7)
    assert all(0 <= s < 2**31 for s in seeds)
    assert st.slot_seed(0, 0, 0) == 1916312895  # pinned: a change would silently change every store


def _chunks(data: bytes):
    pos, out = 8, []
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        out.append(data[pos + 4:pos + 8].decode())
        pos += 12 + n
    return out


def test_png_bytes_deterministic_roundtrip_no_metadata():
    from io import BytesIO

    from PIL import Image

    g = torch.Generator().manual_seed(0)
    gray = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8, generator=g)
    rgb = torch.randint(0, 256, (3, 8, 5), dtype=torch.uint8, generator=g)
    for img in (gray, rgb):
        a, b = st.png_bytes(img), st.png_bytes(img.clone())
        assert a == b
        assert _chunks(a) == ["IHDR", "IDAT", "IEND"]  # no time stamp, no text
        back = np.asarray(Image.open(BytesIO(a)))
        back = back[None] if back.ndim == 2 else back.transpose(2, 0, 1)
        assert np.array_equal(back, img.numpy())
    with pytest.raises(ValueError):
        st.png_bytes(torch.zeros(2, 4, 4, dtype=torch.uint8))


def test_atomic_write_and_temp_cleanup(tmp_path):
    target = tmp_path / "images" / "a" / "x.png"
    st.atomic_write_bytes(target, b"123")
    assert target.read_bytes() == b"123"
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]
    (target.parent / ".y.png.tmp999").write_bytes(b"half")
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / ".c0000.parquet.tmp999").write_bytes(b"half")
    assert st.clean_temp_files(tmp_path) == 2
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]


def _plan(root, **kw):
    base = dict(root=str(root), classes=["Coat", "Bag"], safe_classes=["Coat", "Bag"], prompts=["a coat"] * 3 + ["a bag"] * 3,
                strategy="template", per_class=3, seed=0, shard_size=2, generator={"name": "embedded", "weights": "tiny"},
                settings={"guidance": 2.0, "steps": 2, "scheduler": "dpm", "batch_size": 8}, identity={"steps": 2})
    base.update(kw)
    return st.StorePlan(**base)


def test_plan_shards_cover_every_slot_once(tmp_path):
    plan = _plan(tmp_path, per_class=5, shard_size=2)
    shards = plan.shards()
    assert [(s.class_index, s.start, s.stop) for s in shards] == [(0, 0, 2), (0, 2, 4), (0, 4, 5), (1, 0, 2), (1, 2, 4), (1, 4, 5)]
    assert sum(len(s) for s in shards) == plan.total == 10
    assert len({s.name for s in shards}) == 6


def test_open_store_checks_config_and_output(tmp_path):
    plan = _plan(tmp_path / "s")
    assert st.open_store(plan) == 0
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    assert meta["config_hash"] == plan.config_hash() and meta["folders"] == ["Coat", "Bag"]
    (tmp_path / "s" / "images" / "Coat").mkdir(parents=True)
    (tmp_path / "s" / "images" / "Coat" / "Coat-000000.png").write_bytes(b"keep me")
    assert st.open_store(plan) == 0  # same config: resumable
    with pytest.raises(UserError, match=r"different config \(changed: steps\)"):
        st.open_store(_plan(tmp_path / "s", identity={"steps": 3}))
    assert (tmp_path / "s" / "images" / "Coat" / "Coat-000000.png").read_bytes() == b"keep me"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        st.check_output(tmp_path / "other")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        st.check_output(tmp_path / "file")
    with pytest.raises(UserError, match="not a writable folder"):
        st.check_output(tmp_path / "file" / "sub" / "store")


def test_load_store_errors(tmp_path):
    with pytest.raises(UserError, match="not a synthetic store"):
        st.load_store(tmp_path)
    st.open_store(_plan(tmp_path / "s"))
    with pytest.raises(UserError, match="unfinished"):
        st.load_store(tmp_path / "s")

"""The tar layout of a store (``generate.store_layout: tar``): one WebDataset-style tar per shard.

The same store is made in both layouts with the tiny random-weight generator (a real generator)
and compared: manifests, decoded pixels, bytes across runs, resume, content hashes, file-backed
reading, unreadable members.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from synthclone.config import GenerateConfig
from synthclone.data.images import ImageSet
from synthclone.data.shards import TarPixels
from synthclone.data.store import COLUMNS, StorePlan, load_store, open_store
from synthclone.distributed.generation import generate_store
from synthclone.errors import UserError

from test_generate import tree_digest

# a class name with a dot: its folder name "Mr._Bag" must not end a WebDataset key early
CLASSES = ["Coat", "T-shirt/top", "Mr. Bag"]


def _cfg(layout: str) -> GenerateConfig:
    # 7 per class in shards of 3: a short last shard; the CLIP quota rejects 2 per class
    return GenerateConfig(model="tiny", prompts=["templates"], per_class=7, steps=2, shard_size=3,
                          filter=["clip", "dedup"], filter_options={"clip": {"tiny": True, "quota": 5}},
                          store_layout=layout)


def _make(out: Path, layout: str):
    return generate_store(_cfg(layout), out, classes=CLASSES)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    for layout in ("folder", "tar"):
        _make(root / layout, layout)
    return root / "folder", root / "tar"


def test_manifests_agree_except_path(stores):
    folder, tar = stores
    a, b = pd.read_parquet(folder / "manifest.parquet"), pd.read_parquet(tar / "manifest.parquet")
    assert list(b.columns) == COLUMNS and len(b) == 21
    pd.testing.assert_frame_equal(a.drop(columns="path"), b.drop(columns="path"))
    assert (~b["kept"]).sum() == 6 and b["sha256"].nunique() > 1
    assert b["path"].iloc[0] == "shards/c0000-0000000.tar#Coat/000000.png"
    assert b["path"].iloc[-1] == "shards/c0002-0000006.tar#Mr._Bag/000006.png"
    assert not (tar / "images").exists() and not (tar / "rejected").exists()  # decisions in the manifest only
    assert sorted(p.name for p in (tar / "shards").glob("*.tar")) == sorted(f"{n}.tar" for n in b["shard"].unique())


def _all(data: ImageSet, workers: int):
    imgs, idx = zip(*data.batches(4, workers=workers))
    return torch.cat(imgs), torch.cat(idx)


@pytest.mark.parametrize("kept_only", [True, False])
def test_same_pixels_in_the_same_order(stores, kept_only):
    folder, tar = stores
    a = load_store(folder, kept_only=kept_only, cache_bytes=0)
    b = load_store(tar, kept_only=kept_only, cache_bytes=0)
    assert isinstance(b.pixels, TarPixels) and not b.in_memory
    assert b.ids == a.ids and b.labels.tolist() == a.labels.tolist() and b.classes == a.classes == CLASSES
    assert b.meta["prompts"] == a.meta["prompts"] and b.shape == a.shape == (1, 28, 28)
    reference, order = _all(a, 0)
    assert reference.float().std() > 5  # real pictures, not a constant
    b.pixels.read(0)  # the parent opens a tar before the workers fork: they must open their own
    for workers in (0, 2):
        images, index = _all(b, workers)
        assert torch.equal(index, order) and torch.equal(images, reference)
    cached = load_store(tar, kept_only=kept_only)  # small: decoded into memory, same pixels
    assert cached.in_memory and torch.equal(cached.images, reference)
    rgb = load_store(tar, kept_only=kept_only, channels=3, size=20, cache_bytes=0)  # the FilePixels rules
    want = load_store(folder, kept_only=kept_only, channels=3, size=20, cache_bytes=0)
    assert rgb.shape == (3, 20, 20) and torch.equal(_all(rgb, 0)[0], _all(want, 0)[0])


def test_tar_members_follow_webdataset_and_hash_the_png_bytes(stores):
    _, tar = stores
    df = pd.read_parquet(tar / "manifest.parquet")
    by_path = dict(zip(df["path"], df["sha256"]))
    ids = dict(zip(df["path"], df["id"]))
    base_plus_ext = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # how WebDataset splits a member name
    seen = 0
    for shard in sorted((tar / "shards").glob("*.tar")):
        groups = []
        with tarfile.open(shard) as tf:
            for info in tf:
                assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, 0, "", "", 0o644)
                key, ext = base_plus_ext.match(info.name).groups()
                if not groups or groups[-1][0] != key:
                    groups.append((key, {}))
                groups[-1][1][ext] = tf.extractfile(info).read()
        for key, sample in groups:
            assert set(sample) == {"png", "cls", "json"}
            path = f"shards/{shard.name}#{key}.png"
            assert hashlib.sha256(sample["png"]).hexdigest() == by_path[path]
            facts = json.loads(sample["json"])
            assert facts["id"] == ids[path] and int(sample["cls"]) == facts["class_index"]
            assert "kept" not in facts and "path" not in facts  # decisions live in the manifest
            seen += 1
    assert seen == len(df) == 21


def test_tar_bytes_are_identical_across_runs(stores, tmp_path):
    _, tar = stores
    again = tmp_path / "again"
    _make(again, "tar")
    assert tree_digest(again) == tree_digest(tar)  # every tar, shard part, manifest and store.json


def test_resume_after_lost_part_and_stray_temp_is_byte_identical(stores, tmp_path):
    _, tar = stores
    out = tmp_path / "resumed"
    shutil.copytree(tar, out)
    (out / "manifest.parquet").unlink()
    (out / "shards" / "c0001-0000003.parquet").unlink()  # its tar stays: remade with the same bytes
    (out / "shards" / "c0002-0000000.tar").unlink()  # a part whose tar is gone: the shard is made again
    half = (tar / "shards" / "c0000-0000003.tar").read_bytes()[:700]
    (out / "shards" / ".c0000-0000003.tar.tmp4242").write_bytes(half)  # what a kill mid-write leaves
    summary = _make(out, "tar")
    assert summary.made == 6 and summary.resumed_shards == 7
    assert tree_digest(out) == tree_digest(tar)
    assert not list(out.rglob(".*.tmp*"))


def test_reading_never_materialises_images(stores, monkeypatch):
    _, tar = stores
    data = load_store(tar, cache_bytes=0)
    assert isinstance(data.pixels, TarPixels)

    def forbidden(self):
        raise AssertionError("a file-backed read touched .images")

    monkeypatch.setattr(ImageSet, "images", property(forbidden))
    for workers in (0, 2):
        assert sum(len(i) for i, _ in data.batches(5, workers=workers)) == 15
    assert data.take([3, 0]).shape == (2, 1, 28, 28)
    assert data.subset([1, 2]).take([0]).shape == (1, 1, 28, 28)


def test_describe_and_unreadable_members(stores, tmp_path):
    _, tar = stores
    out = tmp_path / "broken"
    shutil.copytree(tar, out)
    data = load_store(out, kept_only=False, cache_bytes=0)
    assert data.pixels.describe(1) == f"{out}/shards/c0000-0000000.tar#Coat/000001.png"
    # overwrite one member's PNG bytes in place (offsets unchanged), delete another shard's tar
    pixels = data.pixels
    with open(out / "shards" / "c0000-0000000.tar", "r+b") as fh:
        fh.seek(int(pixels.offset[1]))
        fh.write(b"\0" * int(pixels.nbytes[1]))
    (out / "shards" / "c0002-0000003.tar").unlink()
    data = load_store(out, kept_only=False, cache_bytes=0)
    with pytest.raises(UserError, match=r"c0000-0000000\.tar#Coat/000001\.png \(UnidentifiedImageError\); "
                                         r"delete shards/c0000-0000000\.parquet"):
        list(data.batches(4, workers=0))
    with pytest.raises(UserError, match=r"c0000-0000000\.tar#Coat/000001\.png"):
        list(data.batches(4, workers=2))  # raised in the main process, as the same one line
    with pytest.raises(UserError, match=r"c0002-0000003\.tar#Mr\._Bag/000004\.png \(tar missing\)"):
        data.take([18])
    lenient = load_store(out, kept_only=False, cache_bytes=0, skip_unreadable=True)
    got = torch.cat([i for _, i in lenient.batches(4, workers=2)])
    assert got.tolist() == [i for i in range(21) if i not in (1, 17, 18, 19)]  # class 2's slots 3-5 are 17-19
    assert len(lenient.skipped) == 4 and lenient.skipped[0].endswith("c0000-0000000.tar#Coat/000001.png")


def test_layout_is_part_of_the_config_and_folder_hashes_unchanged(stores):
    from synthclone.distributed.generation import plan_store

    folder, tar = stores
    plan, _, _ = plan_store(_cfg("folder"), folder.parent / "unused-folder", classes=CLASSES)
    assert "layout" not in plan.identity and plan.layout == "folder"  # stores made before layouts still resume
    with pytest.raises(UserError, match=r"different config \(changed: layout, (folder -> tar|tar -> folder)\)"):
        _make(folder, "tar")
    with pytest.raises(UserError, match=r"different config \(changed: layout, (folder -> tar|tar -> folder)\)"):
        _make(tar, "folder")
    with pytest.raises(Exception, match="store_layout"):
        GenerateConfig(store_layout="zip")
    plan.layout = "tar"  # a hand-made plan whose identity does not name the layout is refused too
    plan.root = str(folder)
    with pytest.raises(UserError, match=r"changed: layout, folder -> tar"):
        open_store(plan)
    with pytest.raises(UserError, match="store layout must be one of folder, tar"):
        StorePlan(**{**plan.__dict__, "layout": "zip"})


def test_sigkill_mid_run_then_resume_is_byte_identical(tmp_path, run_cli):
    """A real ``synthclone generate`` process writing a tar store, SIGKILLed once two shards are done."""
    from test_generate_resume import ARGS, _kill_when

    cfg = tmp_path / "tar.yaml"
    cfg.write_text("generate:\n  store_layout: tar\n")
    args = [*ARGS, "--config", str(cfg)]
    reference = tmp_path / "reference"
    code, _, err = run_cli("generate", "--out", reference, *args)
    assert code == 0, err
    out = tmp_path / "killed"
    parts = lambda o: sum(1 for _ in (o / "shards").glob("*.parquet")) if (o / "shards").is_dir() else 0  # noqa: E731
    assert _kill_when(out, lambda o: parts(o) >= 2, args=args), "generate finished before it could be killed"
    assert not (out / "manifest.parquet").exists() and 2 <= parts(out) < 30
    code, _, err = run_cli("generate", "--out", out, *args)
    assert code == 0, err
    assert tree_digest(out) == tree_digest(reference)
    df = pd.read_parquet(out / "manifest.parquet")
    assert len(df) == 120 and df["id"].is_unique and df["path"].str.startswith("shards/").all()
    assert not list(out.rglob(".*.tmp*")) and not (out / "images").exists()


def test_tar_index_matches_tarfile_and_falls_back_for_other_tars(stores, tmp_path):
    from synthclone.data.shards import index_tar, write_tar

    _, tar = stores
    for shard in sorted((tar / "shards").glob("*.tar")):
        with tarfile.open(shard) as tf:
            want = {i.name: (i.offset_data, i.size) for i in tf}
        assert index_tar(shard) == (want, None)
    pax = tmp_path / "pax.tar"  # pax headers (a long non-ASCII name): read by tarfile, same answer
    with tarfile.open(pax, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("a/" + "é" * 120 + ".png", "b.png"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    with tarfile.open(pax) as tf:
        assert index_tar(pax) == ({i.name: (i.offset_data, i.size) for i in tf}, None)
    cut = tmp_path / "cut.tar"
    write_tar(cut, [("k/000000.png", b"x" * 600), ("k/000001.png", b"y" * 10)])
    cut.write_bytes(cut.read_bytes()[:1700])  # inside the second member's header (it starts at 1536)
    members, problem = index_tar(cut)
    assert list(members) == ["k/000000.png"] and problem is None  # tarfile takes a cut header for the end
    with pytest.raises(UserError, match=r"cut\.tar#k/000001\.png \(not in the tar\); delete cut\.parquet"):
        TarPixels(tmp_path, ["cut.tar#k/000001.png"], 1, 8).read(0)
    assert index_tar(tmp_path / "nowhere.tar") == ({}, "missing")

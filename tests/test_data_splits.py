"""User ImageFolders: every split layout, proven leak-free by content hash; file-backed reading."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synthclone.data import dataset_entry, load_dataset
from synthclone.data.folder import split_plan, split_unit
from synthclone.data.images import FilePixels
from synthclone.errors import UserError

CLASSES = ["ant", "bee", "cat"]


def _write(folder: Path, n_per_class: int, size=(12, 12), start: int = 0, mode: str = "RGB") -> None:
    """Distinct images: every file's pixels encode (class, index), so content hashes are unique."""
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + n_per_class):
            rng = np.random.default_rng(1000 * c + i)
            a = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            a[0, 0] = (c, i % 256, i // 256)
            Image.fromarray(a, "RGB").convert(mode).save(folder / name / f"img{i:04d}.png")


def _content(data) -> set:
    out = set()
    for images, _ in data.batches(64):
        out.update(hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in images)
    return out


def _file_hashes(root: Path, data) -> set:
    return {hashlib.sha256((root / i).read_bytes()).hexdigest() for i in data.ids}


LAYOUTS = {
    "given": lambda r: (_write(r / "train", 20), _write(r / "val", 5, start=100), _write(r / "test", 6, start=200)),
    "imagenet": lambda r: (_write(r / "train", 30), _write(r / "val", 6, start=100)),
    "train+test": lambda r: (_write(r / "train", 30), _write(r / "test", 6, start=100)),
    "flat": lambda r: _write(r, 40),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_no_image_is_in_two_splits(layout, tmp_path):
    root = tmp_path / layout
    LAYOUTS[layout](root)
    splits = {s: load_dataset(str(root), s) for s in ("train", "val", "test")}
    files = {s: _file_hashes(root, d) for s, d in splits.items()}
    pixels = {s: _content(d) for s, d in splits.items()}
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not files[a] & files[b], f"{layout}: files in both {a} and {b}"
        assert not pixels[a] & pixels[b], f"{layout}: decoded images in both {a} and {b}"
    assert all(len(d) > 0 for d in splits.values())
    for d in splits.values():
        assert d.classes == CLASSES
    total_files = sum(1 for p in root.rglob("*.png"))
    assert sum(len(d) for d in splits.values()) == total_files  # nothing dropped, nothing twice


def test_layouts_use_given_folders_and_carve_the_rest(tmp_path):
    LAYOUTS["given"](tmp_path / "g")
    LAYOUTS["imagenet"](tmp_path / "i")
    LAYOUTS["flat"](tmp_path / "f")
    g = {s: load_dataset(str(tmp_path / "g"), s) for s in ("train", "val", "test")}
    assert [len(g[s]) for s in ("train", "val", "test")] == [60, 15, 18]
    assert all(i.startswith("test/") for i in g["test"].ids)
    i_test = load_dataset(str(tmp_path / "i"), "test")
    assert all(x.startswith("val/") for x in i_test.ids) and len(i_test) == 18  # ImageNet: test = the given val/
    i_val = load_dataset(str(tmp_path / "i"), "val")
    assert all(x.startswith("train/") for x in i_val.ids) and 0 < len(i_val) < 30  # val carved from train/
    assert split_plan(tmp_path / "i", "val").layout == "train+val"
    assert "hash" in i_val.meta["split_how"]
    f = {s: len(load_dataset(str(tmp_path / "f"), s)) for s in ("train", "val", "test")}
    assert sum(f.values()) == 120 and f["train"] > f["val"] and f["train"] > f["test"]


def test_carving_is_by_path_hash_stable_under_additions(tmp_path):
    _write(tmp_path / "d", 30)
    before = {s: set(load_dataset(str(tmp_path / "d"), s).ids) for s in ("train", "val", "test")}
    _write(tmp_path / "d", 30, start=500)  # new files must not move old ones
    after = {s: set(load_dataset(str(tmp_path / "d"), s).ids) for s in ("train", "val", "test")}
    for s in before:
        assert before[s] <= after[s]
    # the rule itself: a constant function of the relative path
    assert split_unit("ant/img0001.png") == split_unit("ant/img0001.png")
    assert 0 <= split_unit("x") < 1 and split_unit("ant/img0001.png") != split_unit("ant/img0002.png")


def test_fractions_from_the_config(tmp_path):
    _write(tmp_path / "d", 100)
    small = len(load_dataset(str(tmp_path / "d"), "test", test_fraction=0.05))
    large = len(load_dataset(str(tmp_path / "d"), "test", test_fraction=0.4))
    assert small < large and 0.25 < large / 300 < 0.55
    with pytest.raises(UserError, match="sum to less than 1"):
        load_dataset(str(tmp_path / "d"), "train", val_fraction=0.6, test_fraction=0.5)


def test_a_lone_split_folder_is_an_error(tmp_path):
    _write(tmp_path / "d" / "test", 3)
    with pytest.raises(UserError, match="has only test/"):
        load_dataset(str(tmp_path / "d"), "train")


def test_mixed_sizes_are_resized_never_an_error_and_file_backed_is_lazy(tmp_path):
    _write(tmp_path / "d" / "train", 4, size=(20, 30))
    _write(tmp_path / "d" / "train", 4, size=(33, 17), start=50)
    _write(tmp_path / "d" / "test", 2, start=90)
    data = load_dataset(str(tmp_path / "d"), "train", size=16, cache_bytes=0)
    assert isinstance(data.pixels, FilePixels) and not data.in_memory
    with pytest.raises(RuntimeError, match="file-backed"):
        data.images  # noqa: B018  (never materialised implicitly)
    shapes = {tuple(x.shape[1:]) for x, _ in data.batches(5, workers=2)}
    assert shapes == {(3, 16, 16)}
    cached = load_dataset(str(tmp_path / "d"), "train", size=16)
    assert cached.in_memory and torch.equal(cached.images, data.cached().images)
    gray = load_dataset(str(tmp_path / "d"), "train", size=16, channels=1, cache_bytes=0)
    assert gray.shape == (1, 16, 16)


def test_unreadable_image_is_named_or_skipped_and_counted(tmp_path):
    _write(tmp_path / "d", 10)
    bad = tmp_path / "d" / "bee" / "img0003.png"
    bad.write_bytes(b"not a png")
    data = load_dataset(str(tmp_path / "d"), "train", cache_bytes=0)
    if "bee/img0003.png" not in data.ids:  # it hashed into another split: look there
        data = next(load_dataset(str(tmp_path / "d"), s, cache_bytes=0) for s in ("val", "test")
                    if "bee/img0003.png" in load_dataset(str(tmp_path / "d"), s, cache_bytes=0).ids)
    with pytest.raises(UserError, match="img0003.png"):
        for _ in data.batches(4, workers=0):
            pass
    with pytest.raises(UserError, match="img0003.png") as info:
        for _ in data.batches(4, workers=2):
            pass
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)  # one line, also from a worker
    split = data.meta["split"]
    skipping = load_dataset(str(tmp_path / "d"), split, cache_bytes=0, skip_unreadable=True)
    seen = sum(len(i) for _, i in skipping.batches(4, workers=2))
    assert seen == len(skipping) - 1 and skipping.skipped == [str(bad)]


def test_wordnet_id_folders_are_named_apart(tmp_path):
    pytest.importorskip("nltk")
    for wnid in ("n02012849", "n03126707"):  # ImageNet's two "crane" classes: the bird and the machine
        (tmp_path / "d" / wnid).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / "d" / wnid / f"{i}.png")
    names, ids = dataset_entry(str(tmp_path / "d")).classes()
    assert len(set(names)) == 2 and all(n.startswith("crane (") for n in names)
    assert ids == ["n02012849", "n03126707"]
    data = load_dataset(str(tmp_path / "d"), "train")
    assert data.classes == names and data.meta["class_ids"] == ids


def test_data_info_prints_each_split_and_how(tmp_path, run_cli):
    LAYOUTS["imagenet"](tmp_path / "i")
    code, out, _ = run_cli("data", "info", str(tmp_path / "i"))
    assert code == 0
    assert "test" in out and "the given val/ folder" in out and "of train/ by path hash" in out
    code, out, _ = run_cli("data", "info", str(tmp_path / "i"), "--json")
    info = json.loads(out)
    assert sum(info["splits"].values()) == 108 and info["how"]["test"] == "the given val/ folder"


def test_skipped_files_are_counted_in_the_bench_summary(tmp_path, run_cli):
    _write(tmp_path / "d" / "train", 6)
    _write(tmp_path / "d" / "test", 4, start=100)
    bad = tmp_path / "d" / "test" / "cat" / "img0101.png"
    bad.write_bytes(b"\x89PNG broken")
    args = ["bench", "--model", "resnet8", "--data", str(tmp_path / "d"), "--probes", "clean", "--cache-mb", "0",
            "--out", str(tmp_path / "b"), "--workers", "0"]
    code, _, err = run_cli(*args)
    assert code == 2 and "img0101.png" in err and "skip_unreadable" in err
    code, _, _ = run_cli(*args, "--skip-unreadable")
    assert code == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["skipped_unreadable"] == [str(bad)] and summary["evaluation_images"] == 12

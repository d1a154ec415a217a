import gzip
import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from synthclone.data import ImageSet, load_dataset
from synthclone.data import fashion_mnist
from synthclone.data.folder import load_folder
from synthclone.errors import UserError


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(a.astype("int64").tobytes()).hexdigest()[:16]


def test_fashion_mnist_splits_sizes_disjoint_and_stable():
    idx = fashion_mnist.split_indices()
    assert {k: len(v) for k, v in idx.items()} == {"generator": 30_000, "train": 25_000, "val": 5_000}
    sets = [set(v.tolist()) for v in idx.values()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set().union(*sets) == set(range(60_000))
    # The partition is a documented constant: these digests must never change.
    assert _digest(idx["generator"]) == "dfc1514cff6d067c"
    assert _digest(idx["train"]) == "0554069a4559e3bb"
    assert _digest(idx["val"]) == "0d50c9c21b6193df"


def test_fashion_mnist_load_shapes_labels_ids():
    test = load_dataset("fashion-mnist", split="test")
    val = load_dataset("fashion-mnist", split="val")
    assert len(test) == 10_000 and test.images.shape == (10_000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert test.classes[0] == "T-shirt/top" and test.num_classes == 10
    assert sorted(torch.bincount(test.labels).tolist()) == [1000] * 10  # the official test set is balanced
    assert len(val) == 5_000 and val.ids[0].startswith("fmnist-train-")
    train_ids = set(load_dataset("fashion-mnist", split="train").ids)
    assert not train_ids & set(val.ids)
    assert 40 < float(test.images.float().mean()) < 100  # real photos, not zeros


def test_unknown_split_and_dataset():
    with pytest.raises(UserError, match="valid splits"):
        load_dataset("fashion-mnist", split="dev")
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("cifar-99")


def test_missing_fashion_mnist_files_give_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHCLONE_FASHION_MNIST", str(tmp_path))
    with pytest.raises(UserError) as info:
        fashion_mnist.find_files()
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


def test_truncated_idx_file_is_reported(tmp_path):
    bad = tmp_path / "x-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    with pytest.raises(UserError, match="truncated"):
        fashion_mnist._read_idx(bad)


def test_digits_ood_set():
    d = load_dataset("digits")
    assert d.images.shape == (1797, 1, 28, 28) and d.images.dtype == torch.uint8
    assert d.images.max() > 200 and d.classes == [str(i) for i in range(10)]


def _write_folder(root, classes=("cat", "dog"), n=3, size=12, mode="RGB"):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")


def test_image_folder_roundtrip(tmp_path):
    _write_folder(tmp_path)
    data = load_folder(tmp_path)
    assert data.classes == ["cat", "dog"] and data.images.shape == (6, 3, 12, 12)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.ids[0] == "cat/0.png"
    small = load_folder(tmp_path, size=8, channels=1)
    assert small.images.shape == (6, 1, 8, 8)
    # a folder mapped onto a given label space
    mapped = load_folder(tmp_path, classes=["dog", "bird", "cat"])
    assert mapped.labels.tolist() == [2, 2, 2, 0, 0, 0]


def test_image_folder_wordnet_ids(tmp_path):
    _write_folder(tmp_path, classes=("n02084071",), n=1)
    assert load_folder(tmp_path).classes == ["dog"]


def test_image_folder_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_folder(tmp_path / "nope")
    with pytest.raises(UserError, match="no class sub-folders"):
        load_folder(tmp_path)
    _write_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty.*holds no images"):
        load_folder(tmp_path)
    (tmp_path / "empty").rmdir()
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="broken.png"):
        load_folder(tmp_path)


def test_image_set_subset_and_few_shot():
    data = load_dataset("fashion-mnist", split="val")
    few = data.per_class(3, seed=1)
    assert len(few) == 30 and torch.bincount(few.labels).tolist() == [3] * 10
    assert data.per_class(3, seed=1).ids == few.ids  # seeded
    assert data.per_class(3, seed=2).ids != few.ids
    with pytest.raises(ValueError):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2), ["a"], ["x", "y"])  # float images rejected


def test_wordnet_reader_from_debian_package():
    from synthclone.wordnet import describe, wnid_to_name

    info = describe("T-shirt/top")
    assert info is not None and "shirt" in info["definition"]
    assert describe("Ankle boot")["synset"].startswith("boot")
    assert wnid_to_name("n02084071") == "dog"
    with pytest.raises(UserError):
        wnid_to_name("n99999999")

"""Fashion-MNIST, from the Debian package ``dataset-fashion-mnist`` (or torchvision's download).

Splits (fixed, documented, the same on every machine):

==============  =======  ============================================================
split           size     what it is for
==============  =======  ============================================================
``generator``   30,000   the "web data" the embedded text-to-image model and CLIP see
``train``       25,000   the real training set of the recognizers
``val``          5,000   model selection, early stopping, temperature scaling
``test``        10,000   the official test set, evaluation only
==============  =======  ============================================================

``generator``, ``train`` and ``val`` partition the official 60,000 training images. The partition
orders the indices by the SHA-256 of ``"synthclone-fmnist-<index>"``: it depends on no random number
generator, so it is stable across library versions and machines.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import UserError
from ..paths import cache_dir, data_dirs
from .images import ImageSet

CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
SPLIT_SIZES = {"generator": 30_000, "train": 25_000, "val": 5_000, "test": 10_000}
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DEBIAN_PACKAGE = "dataset-fashion-mnist"
HOW_TO_GET = (
    f"install it with 'apt-get install {DEBIAN_PACKAGE}' (Debian/Ubuntu), or set "
    "SYNTHCLONE_FASHION_MNIST to a folder holding the four *-ubyte.gz files, or allow "
    "torchvision's download"
)


def _has_files(folder: Path) -> bool:
    return all((folder / f).is_file() for pair in FILES.values() for f in pair)


def _debian_folder() -> Optional[Path]:
    """The folder the Debian package installed its files to, asked of dpkg itself."""
    if shutil.which("dpkg") is None:
        return None
    try:
        out = subprocess.run(
            ["dpkg", "-L", DEBIAN_PACKAGE], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.endswith(FILES["train"][0]):
            return Path(line).parent
    return None


def find_files(download: bool = True) -> Path:
    """The folder with the four Fashion-MNIST ``*-ubyte.gz`` files.

    Looks in ``$SYNTHCLONE_FASHION_MNIST``, then where dpkg says the Debian package put them, then
    ``$XDG_DATA_DIRS/datasets/fashion-mnist``, then synthclone's cache; finally downloads with
    torchvision into the cache when ``download`` is true and the network allows.
    """
    env = os.environ.get("SYNTHCLONE_FASHION_MNIST")
    if env:
        if _has_files(Path(env)):
            return Path(env)
        raise UserError(f"SYNTHCLONE_FASHION_MNIST={env} does not hold the four Fashion-MNIST *-ubyte.gz files; {HOW_TO_GET}")
    candidates = [_debian_folder()] + [d / "datasets" / "fashion-mnist" for d in data_dirs()]
    cached = cache_dir() / "fashion-mnist"
    candidates += [cached, cached / "FashionMNIST" / "raw"]
    for folder in candidates:
        if folder is not None and _has_files(folder):
            return folder
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(cached), train=True, download=True)
            FashionMNIST(str(cached), train=False, download=True)
        except Exception as exc:  # network refused, no torchvision: say how to get the data
            raise UserError(f"Fashion-MNIST not found and the download failed ({type(exc).__name__}); {HOW_TO_GET}") from None
        if _has_files(cached / "FashionMNIST" / "raw"):
            return cached / "FashionMNIST" / "raw"
    raise UserError(f"Fashion-MNIST not found; {HOW_TO_GET}")


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated or corrupt ({array.size} bytes for shape {dims}); reinstall {DEBIAN_PACKAGE}")
    return array.reshape(dims)


@functools.lru_cache(maxsize=2)
def _official(part: str) -> tuple[torch.Tensor, torch.Tensor]:
    folder = find_files()
    images_file, labels_file = FILES[part]
    images = torch.from_numpy(_read_idx(folder / images_file).copy()).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(folder / labels_file).astype(np.int64))
    return images, labels


@functools.lru_cache(maxsize=1)
def split_indices() -> dict[str, np.ndarray]:
    """Indices into the official training set for ``generator``, ``train`` and ``val``."""
    keys = [hashlib.sha256(f"synthclone-fmnist-{i}".encode()).digest() for i in range(60_000)]
    order = np.array(sorted(range(60_000), key=keys.__getitem__))
    g, t = SPLIT_SIZES["generator"], SPLIT_SIZES["train"]
    return {"generator": np.sort(order[:g]), "train": np.sort(order[g : g + t]), "val": np.sort(order[g + t :])}


def load(split: str = "train") -> ImageSet:
    """One split of Fashion-MNIST as uint8 images (N, 1, 28, 28).

    Sample ids name the official file and index (``"fmnist-train-123"``, ``"fmnist-test-7"``), so
    ids are comparable across splits.
    """
    if split not in SPLIT_SIZES:
        raise UserError(f"unknown Fashion-MNIST split {split!r}; valid splits: {', '.join(SPLIT_SIZES)}")
    if split == "test":
        images, labels = _official("test")
        ids = [f"fmnist-test-{i}" for i in range(len(labels))]
        return ImageSet(images, labels, list(CLASSES), ids, name="fashion-mnist/test")
    images, labels = _official("train")
    idx = split_indices()[split]
    t = torch.from_numpy(idx)
    return ImageSet(images[t], labels[t], list(CLASSES), [f"fmnist-train-{i}" for i in idx], name=f"fashion-mnist/{split}")

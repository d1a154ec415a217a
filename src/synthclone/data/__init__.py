"""Real datasets, the synthetic dataset store and mixing.

``load_dataset(spec, split)`` reads any registered dataset name or an ImageFolder path.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..registry import Registry
from .images import ImageSet

DATASETS: Registry = Registry("dataset")


@DATASETS.register("fashion-mnist")
def _fashion_mnist(split: str = "train", **_: object) -> ImageSet:
    """Fashion-MNIST (Debian dataset-fashion-mnist): 10 classes of 28x28 grayscale product photos."""
    from . import fashion_mnist

    return fashion_mnist.load(split)


@DATASETS.register("digits")
def _digits(split: str = "test", size: int = 28, channels: int = 1, **_: object) -> ImageSet:
    """scikit-learn's real handwritten digits, resized to 28x28 (an out-of-distribution set)."""
    from .digits import load_digits

    return load_digits(size=size, channels=channels)


def load_dataset(spec: str, split: str = "train", **kwargs) -> ImageSet:
    """A registered dataset by name (``fashion-mnist``, ``digits``) or an ImageFolder path.

    A folder that has ``train/``, ``val/`` (or ``validation/``) and ``test/`` sub-folders is read
    per split; any other folder is one ImageFolder whatever the split.
    """
    if spec in DATASETS:
        return DATASETS.create(spec, split=split, **kwargs)
    if "/" in spec or Path(spec).exists():
        from .folder import load_folder

        root = Path(spec)
        if (root / split).is_dir():  # ImageNet-style root with train/ val/ test/ folders
            root = root / split
        elif split == "val" and (root / "validation").is_dir():
            root = root / "validation"
        return load_folder(root, **{k: v for k, v in kwargs.items() if k in ("size", "channels", "class_names", "classes")})
    valid = ", ".join(DATASETS.names())
    raise UserError(f"unknown dataset {spec!r}; use one of {valid} or a path to an ImageFolder directory")


__all__ = ["DATASETS", "ImageSet", "load_dataset"]

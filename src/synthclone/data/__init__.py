"""Real datasets, the synthetic dataset store and mixing.

A dataset is a registry entry (:class:`DatasetEntry`): how to load each split, plus what is
special about it (a generator-corpus split, its default OOD sets). ``load_dataset(spec, split)``
reads a registered name or an ImageFolder path; :func:`dataset_entry` gives the entry of either,
so no stage decides behaviour by a dataset's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import UserError
from ..registry import Registry
from .images import ImageSet

DATASETS: Registry = Registry("dataset")

# options of load_dataset that every loader understands (the data section of the config)
LOAD_OPTIONS = ("size", "channels", "val_fraction", "test_fraction", "skip_unreadable", "workers", "class_names",
                "cache_bytes", "crop_pct")


@dataclass(frozen=True)
class DatasetEntry:
    """What the study needs to know about a dataset.

    Attributes:
        name: registry name (or the folder path of a user dataset).
        loader: ``loader(split, **options) -> ImageSet``.
        splits: the splits it has; ``train``, ``val`` and ``test`` always.
        corpus_split: the split that stands in for the text-to-image model's and CLIP's web data
            (the embedded models learnt from it); listed by ``data info``, never trained on.
        ood: default out-of-distribution sets (registered names or folders) when ``data.ood`` is unset.
        description: one line for ``synthclone list datasets``.
    """

    name: str
    loader: Callable[..., ImageSet]
    splits: Tuple[str, ...] = ("train", "val", "test")
    corpus_split: Optional[str] = None
    ood: Tuple[str, ...] = ()
    description: str = ""
    options: Dict[str, Any] = field(default_factory=dict)
    class_lister: Optional[Callable[..., tuple]] = None
    source: Optional[Callable[[], str]] = None   # where its files are, for ``data info``

    def classes(self, **options) -> tuple:
        """``(class names, WordNet ids or None per class)`` in label order, without decoding images
        where the entry can list them."""
        if self.class_lister is not None:
            return self.class_lister(**options)
        data = self.load("train", **options)
        return list(data.classes), data.meta.get("class_ids") or [None] * len(data.classes)

    def __call__(self, split: str = "train", **options) -> ImageSet:
        return self.load(split, **options)

    def load(self, split: str = "train", **options) -> ImageSet:
        if split not in self.splits:
            raise UserError(f"dataset {self.name} has no split {split!r}; valid splits: {', '.join(self.splits)}")
        from .images import conform

        options = {**self.options, **options}
        data = self.loader(split, **options)
        # a loader that reads at its native size (Fashion-MNIST, digits) is brought to the asked size here
        return conform(data, options.get("channels"), options.get("size"))


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    DATASETS.register(entry.name, help=entry.description)(entry)
    return entry


def _fashion_mnist(split: str = "train", **_: object) -> ImageSet:
    from . import fashion_mnist

    return fashion_mnist.load(split)


def _fashion_mnist_classes(**_: object) -> tuple:
    from .fashion_mnist import CLASSES

    return list(CLASSES), [None] * len(CLASSES)


def _fashion_mnist_source() -> str:
    from .fashion_mnist import find_files

    return str(find_files())


def _digits(split: str = "test", size: Optional[int] = None, channels: Optional[int] = None, **_: object) -> ImageSet:
    from .digits import load_digits

    return load_digits(size=size or 28, channels=channels or 1)


register_dataset(DatasetEntry(
    "fashion-mnist", _fashion_mnist, splits=("generator", "train", "val", "test"), corpus_split="generator",
    ood=("digits",), class_lister=_fashion_mnist_classes, source=_fashion_mnist_source,
    description="Fashion-MNIST (Debian dataset-fashion-mnist): 10 classes of 28x28 grayscale product photos"))
register_dataset(DatasetEntry(
    "digits", _digits, splits=("train", "val", "test"),
    description="scikit-learn's real handwritten digits, resized to 28x28 (an out-of-distribution set)"))


def _folder_loader(root: Path) -> Callable[..., ImageSet]:
    def load(split: str = "train", **options) -> ImageSet:
        from .folder import load_split

        return load_split(root, split, **{k: v for k, v in options.items() if k in LOAD_OPTIONS and v is not None})

    return load


def dataset_entry(spec: str) -> DatasetEntry:
    """The registry entry of a dataset name, or a folder entry for an ImageFolder path."""
    if spec in DATASETS:
        item = DATASETS.get(spec)
        # a plain loader function registered by a user or a test: an entry with no special properties
        return item if isinstance(item, DatasetEntry) else DatasetEntry(spec, item)
    if not spec or not spec.strip():
        raise UserError(f"empty dataset; use one of {', '.join(DATASETS.names())} or a path to an ImageFolder directory")
    if "/" in spec or Path(spec).exists():
        root = Path(spec)

        def classes(class_names=None, **_: object) -> tuple:
            from .folder import _read_name_map, folder_classes, list_class_folders, split_plan

            names, ids = folder_classes(list_class_folders(split_plan(root, "train").folder), _read_name_map(class_names))
            return names, ids

        return DatasetEntry(str(root), _folder_loader(root), description=f"ImageFolder {root}", class_lister=classes,
                            source=lambda: str(root.resolve()))
    raise UserError(f"unknown dataset {spec!r}; use one of {', '.join(DATASETS.names())} or a path to an ImageFolder directory")


def load_dataset(spec: str, split: str = "train", **options) -> ImageSet:
    """Split ``split`` of a registered dataset or an ImageFolder path.

    A folder's splits follow its layout (``train/ val/ test/`` as given, ImageNet's ``train/ val/``
    with validation carved from train, or a flat folder carved in three; see
    :mod:`synthclone.data.folder`). ``options``: ``size``, ``channels``, ``val_fraction``,
    ``test_fraction``, ``skip_unreadable``, ``workers``, ``class_names``, ``cache_bytes``, ``crop_pct``.
    """
    unknown = sorted(set(options) - set(LOAD_OPTIONS))
    if unknown:
        raise TypeError(f"load_dataset: unknown options {unknown}")
    return dataset_entry(spec).load(split, **options)


def data_options(data_cfg, **override) -> Dict[str, Any]:
    """``load_dataset`` options from the ``data`` section of a run config."""
    opts = {
        "size": getattr(data_cfg, "image_size", None),
        "val_fraction": getattr(data_cfg, "val_fraction", None),
        "test_fraction": getattr(data_cfg, "test_fraction", None),
        "skip_unreadable": getattr(data_cfg, "skip_unreadable", None),
        "workers": getattr(data_cfg, "workers", None),
        "class_names": getattr(data_cfg, "class_names", None),
        "cache_bytes": None if getattr(data_cfg, "cache_mb", None) is None else int(data_cfg.cache_mb) * 2 ** 20,
    }
    opts.update(override)
    return {k: v for k, v in opts.items() if v is not None}


__all__ = ["DATASETS", "DatasetEntry", "ImageSet", "LOAD_OPTIONS", "data_options", "dataset_entry", "load_dataset",
           "register_dataset"]

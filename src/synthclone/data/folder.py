"""Any ImageFolder directory (``root/<class>/<image>``), file-backed, with splits that never leak.

Layouts of a dataset root and how each split is made (:func:`split_plan`):

=====================================  ==================================================================
layout                                 splits
=====================================  ==================================================================
``train/ val/ test/`` (or validation/)  used as given
``train/ val/`` (ImageNet)             test = the given ``val/``; val carved from ``train/``
``train/ test/``                       test as given; val carved from ``train/``
flat ``root/<class>/``                 train / val / test all carved from the one folder
=====================================  ==================================================================

Carving is by a stable hash (SHA-256) of each file's path relative to the folder it is carved
from, never by a random generator: the same file lands in the same split on every machine, with
any number of files added or removed around it, and no file is in two splits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..errors import UserError
from .images import DEFAULT_CACHE_BYTES, FilePixels, ImageSet, nbytes, probe_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SPLITS = ("train", "val", "test")
VAL_NAMES = ("val", "validation")


def folder_classes(folders: Sequence[str], names: Optional[Dict[str, str]] = None) -> tuple:
    """``(class names, WordNet ids or None)`` of class folders: the map's name, WordNet's for
    WordNet ids (synsets whose lemmas collide, two called "crane", get names that tell them apart),
    else the folder name. WordNet is opened only when a folder is named by a WordNet id."""
    from ..wordnet import folder_classes as wordnet_folder_classes

    return wordnet_folder_classes(folders, names)


def list_class_folders(root: Path) -> List[str]:
    """The class folder names under ``root`` (sorted), without listing their images."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist; pass a directory laid out as <root>/<class>/<image>")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise UserError(f"image folder {root} has no class sub-folders; lay it out as <root>/<class>/<image>")
    return folders


def list_images(root: Path) -> tuple[List[str], List[List[Path]]]:
    """Class folder names (sorted) and each one's image files (sorted)."""
    root = Path(root)
    folders = [root / f for f in list_class_folders(root)]
    files = []
    for folder in folders:
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise UserError(f"class folder {folder} holds no images; add images or remove the folder")
        files.append(found)
    return [f.name for f in folders], files


def split_unit(relpath: str) -> float:
    """A number in [0, 1) from a file's relative path: SHA-256, the same on every machine."""
    digest = hashlib.sha256(f"synthclone-split:{relpath}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


@dataclass
class SplitPlan:
    """How one split of a dataset root is made.

    Attributes:
        folder: the ImageFolder the split's files come from.
        band: ``(lo, hi)``: keep files whose :func:`split_unit` is in [lo, hi); None keeps all.
        how: one line for ``synthclone data info``.
        layout: ``given``, ``train+val``, ``train+test`` or ``flat``.
    """

    folder: Path
    band: Optional[tuple]
    how: str
    layout: str


def _child(root: Path, names: Sequence[str]) -> Optional[Path]:
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def split_plan(root: str | Path, split: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> SplitPlan:
    """Where split ``split`` of the dataset at ``root`` comes from (see the module docstring)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist; pass a directory laid out as <root>/<class>/<image>")
    train, val, test = _child(root, ["train"]), _child(root, VAL_NAMES), _child(root, ["test"])
    v = f"{val_fraction:.0%}"
    if train is not None and val is not None and test is not None:
        return SplitPlan({"train": train, "val": val, "test": test}[split], None, f"the given {split}/ folder", "given")
    if train is not None and (val is not None or test is not None):
        held = val if val is not None else test
        layout = "train+val" if val is not None else "train+test"
        if split == "test":
            return SplitPlan(held, None, f"the given {held.name}/ folder", layout)
        if split == "val":
            return SplitPlan(train, (0.0, val_fraction), f"{v} of train/ by path hash", layout)
        return SplitPlan(train, (val_fraction, 1.0), f"train/ less the {v} carved for val", layout)
    if train is not None or val is not None or test is not None:
        present = [p.name for p in (train, val, test) if p is not None]
        raise UserError(f"dataset folder {root} has only {'/, '.join(present)}/; give train/ (with val/ and/or test/) "
                        "or a flat <root>/<class>/ folder")
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise UserError(f"data.val_fraction ({val_fraction}) and data.test_fraction ({test_fraction}) must be in (0, 1) "
                        "and sum to less than 1")
    t = f"{test_fraction:.0%}"
    bands = {"test": (0.0, test_fraction), "val": (test_fraction, test_fraction + val_fraction),
             "train": (test_fraction + val_fraction, 1.0)}
    how = {"test": f"{t} of the folder by path hash", "val": f"{v} of the folder by path hash",
           "train": f"the folder less the {t} test and {v} val carved by path hash"}
    return SplitPlan(root, bands[split], how[split], "flat")


def _read_name_map(class_names) -> Optional[Dict[str, str]]:
    if isinstance(class_names, (str, Path)):
        try:
            class_names = json.loads(Path(class_names).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read class-name map {class_names} ({exc.__class__.__name__}); "
                            "give a JSON object folder -> name") from None
        if not isinstance(class_names, dict):
            raise UserError("the class-name map must be a JSON object folder -> name")
    return class_names


def load_folder(
    root: str | Path,
    size: Optional[int] = None,
    channels: Optional[int] = None,
    class_names: Optional[Dict[str, str] | str | Path] = None,
    classes: Optional[Sequence[str]] = None,
    band: Optional[tuple] = None,
    id_prefix: str = "",
    skip_unreadable: bool = False,
    workers: Optional[int] = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    crop_pct: float = 1.0,
) -> ImageSet:
    """The images under ``root/<class>/`` as a file-backed :class:`ImageSet` (small ones cached).

    Args:
        root: the ImageFolder directory.
        size: every image is brought to ``size`` x ``size`` (shorter side resized, centre crop);
            default: the first image's shorter side, so mixed sizes never fail.
        channels: 1 (grayscale) or 3 (RGB); default: 1 if the first image is grayscale, else 3.
        class_names: folder name -> class name, as a dict or a JSON file; WordNet ids
            (``n01440764``) are named from WordNet when not mapped.
        classes: the label space to use (e.g. a model's or the train split's); folders map onto it by name.
        band: keep only files whose path hash (:func:`split_unit`) lies in ``[lo, hi)``.
        id_prefix: prepended to each file's relative path to make its sample id.
        skip_unreadable: leave unreadable files out (counted in ``skipped``) instead of failing.
        workers: DataLoader workers for decoding (None: the machine's cores).
        cache_bytes: decode the whole set into memory when its pixels take at most this many bytes.
        crop_pct: the shorter side is resized to ``size / crop_pct`` before the centre crop (a
            model's evaluation transform, e.g. 0.875 for a timm ResNet; 1 for training data).
    """
    root = Path(root)
    name_map = _read_name_map(class_names)
    folders, files = list_images(root)
    names, ids = folder_classes(folders, name_map)
    wnids = {n: i for n, i in zip(names, ids) if i is not None}
    if classes is None:
        classes = names
    index = {c: i for i, c in enumerate(classes)}
    missing = [n for n in names if n not in index]
    if missing:
        raise UserError(f"folders {missing[:5]} of {root} are not in the label space {list(classes)[:10]}; "
                        "rename them or pass a class-name map")
    paths, labels = [], []
    for name, found in zip(names, files):
        for p in found:
            rel = p.relative_to(root).as_posix()
            if band is not None and not band[0] <= split_unit(rel) < band[1]:
                continue
            paths.append(rel)
            labels.append(index[name])
    if not paths:
        raise UserError(f"no images of {root} fall in this split; add images or change data.val_fraction / test_fraction")
    probed = None
    for rel in paths[: 50 if skip_unreadable else 1]:  # the first readable image sets the defaults
        try:
            probed = probe_image(root / rel)
            break
        except UserError:
            if not skip_unreadable:
                raise
    if probed is None:
        raise UserError(f"none of the first images under {root} can be read; check the folder")
    channels = probed[0] if channels is None else channels
    size = probed[1] if size is None else size
    pixels = FilePixels(root, paths, channels, size, skip_unreadable=skip_unreadable, crop_pct=crop_pct)
    class_ids = [wnids.get(c) for c in classes] if wnids else None
    data = ImageSet(pixels, torch.tensor(labels, dtype=torch.long), list(classes), [id_prefix + p for p in paths],
                    name=str(root), meta={"root": str(root), "class_ids": class_ids} if class_ids else {"root": str(root)},
                    workers=workers)
    if nbytes(len(data), data.shape) <= cache_bytes:
        data = data.cached()
        if len(data) == 0:
            raise UserError(f"no readable images under {root}; replace the unreadable files")
    return data


def load_split(root: str | Path, split: str, val_fraction: float = 0.1, test_fraction: float = 0.1, **kwargs) -> ImageSet:
    """Split ``split`` of the dataset root ``root`` (see :func:`split_plan`); the label space is train's."""
    root = Path(root)
    plan = split_plan(root, split, val_fraction, test_fraction)
    label_root = plan.folder
    if plan.layout != "flat" and split != "train":
        label_root = split_plan(root, "train", val_fraction, test_fraction).folder
    if kwargs.get("classes") is None and label_root != plan.folder:
        # the label space (and the names of WordNet ids) is train's, whatever this folder holds
        folders, _ = list_images(label_root)
        given = _read_name_map(kwargs.get("class_names")) or {}
        names = folder_classes(folders, given)[0]
        kwargs["classes"] = names
        kwargs["class_names"] = {**dict(zip(folders, names)), **given}
    prefix = "" if plan.folder == root else plan.folder.relative_to(root).as_posix() + "/"
    data = load_folder(plan.folder, band=plan.band, id_prefix=prefix, **kwargs)
    data.name = f"{root.name}/{split}"
    data.meta.update({"split": split, "split_how": plan.how, "layout": plan.layout})
    return data

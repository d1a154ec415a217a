"""Any ImageFolder directory (``root/<class>/<image>``) as an :class:`ImageSet`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from .images import ImageSet

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def _is_wnid(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def _class_name(folder: str, names: Optional[Dict[str, str]]) -> str:
    if names and folder in names:
        return names[folder]
    if _is_wnid(folder):
        from ..wordnet import wnid_to_name

        return wnid_to_name(folder)
    return folder


def list_images(root: Path) -> tuple[List[str], List[List[Path]]]:
    """Class folder names (sorted) and each one's image files (sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist; pass a directory laid out as <root>/<class>/<image>")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise UserError(f"image folder {root} has no class sub-folders; lay it out as <root>/<class>/<image>")
    files = []
    for folder in folders:
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise UserError(f"class folder {folder} holds no images; add images or remove the folder")
        files.append(found)
    return [f.name for f in folders], files


def _read(path: Path, mode: str, size: Optional[int]) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            array = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot read image {path} ({exc.__class__.__name__}); delete or replace the file") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_folder(
    root: str | Path,
    size: Optional[int] = None,
    channels: Optional[int] = None,
    class_names: Optional[Dict[str, str] | str | Path] = None,
    classes: Optional[Sequence[str]] = None,
) -> ImageSet:
    """Read every image under ``root/<class>/`` into memory.

    Args:
        root: the ImageFolder directory.
        size: resize to ``size`` x ``size`` (needed when the images differ in size).
        channels: 1 (grayscale) or 3 (RGB); default: 1 if the first image is grayscale, else 3.
        class_names: folder name -> class name, as a dict or a JSON file; WordNet ids
            (``n01440764``) are named from WordNet when not mapped.
        classes: the label space to use (e.g. a model's); folders map onto it by name.
    """
    root = Path(root)
    if isinstance(class_names, (str, Path)):
        try:
            class_names = json.loads(Path(class_names).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read class-name map {class_names} ({exc.__class__.__name__}); give a JSON object folder -> name") from None
    folders, files = list_images(root)
    names = [_class_name(f, class_names) for f in folders]
    if classes is None:
        classes = names
    index = {c: i for i, c in enumerate(classes)}
    missing = [n for n in names if n not in index]
    if missing:
        raise UserError(f"folders {missing[:5]} of {root} are not in the label space {list(classes)[:10]}; rename them or pass a class-name map")
    if channels is None:
        with Image.open(files[0][0]) as im:
            channels = 1 if im.mode in ("L", "1", "I", "I;16", "F") else 3
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise UserError(f"channels must be 1 or 3, got {channels}")
    arrays, labels, ids = [], [], []
    for folder, name, paths in zip(folders, names, files):
        for p in paths:
            arrays.append(_read(p, mode, size))
            labels.append(index[name])
            ids.append(str(p.relative_to(root)))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise UserError(f"images under {root} differ in size ({sorted(shapes)[:3]}); pass size=N to resize them")
    images = torch.from_numpy(np.stack(arrays))
    return ImageSet(images, torch.tensor(labels), list(classes), ids, name=str(root))

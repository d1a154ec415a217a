"""Image grids (PNG) for the report and the model cards."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw


def make_grid(images: torch.Tensor, rows: int, scale: int = 2, pad: int = 1,
              row_labels: Optional[Sequence[str]] = None, label_width: int = 90) -> Image.Image:
    """Tile uint8 images (N, C, H, W) into ``rows`` rows (row-major), upscaled by ``scale``.

    With ``row_labels`` a white margin on the left carries one label per row.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"make_grid needs uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    n, c, h, w = images.shape
    cols = max(1, -(-n // rows))
    arr = images.permute(0, 2, 3, 1).numpy()
    if c == 1:
        arr = np.repeat(arr, 3, axis=3)
    cell_h, cell_w = h * scale + pad, w * scale + pad
    left = label_width if row_labels else 0
    canvas = np.full((rows * cell_h + pad, left + cols * cell_w + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        tile = arr[i].repeat(scale, axis=0).repeat(scale, axis=1)
        y, x = pad + r * cell_h, left + pad + col * cell_w
        canvas[y : y + h * scale, x : x + w * scale] = tile
    img = Image.fromarray(canvas)
    if row_labels:
        draw = ImageDraw.Draw(img)
        for r, label in enumerate(row_labels[:rows]):
            draw.text((4, pad + r * cell_h + cell_h // 2 - 6), str(label)[:14], fill=(0, 0, 0))
    return img


def first_per_class(labels: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """Positions (int64) of the first ``per_class`` samples of each class, class by class."""
    return torch.cat([torch.nonzero(labels == k).flatten()[:per_class] for k in range(num_classes)])


def set_grid(data, per_class: int = 8, scale: int = 2) -> Image.Image:
    """:func:`class_grid` of an :class:`~synthclone.data.images.ImageSet`: reads only the images it shows."""
    idx = first_per_class(data.labels, data.num_classes, per_class)
    return class_grid(data.take(idx), data.labels[idx], data.classes, per_class=per_class, scale=scale)


def _class_rows(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """(num_classes * per_class, C, H, W): each class's first ``per_class`` images, short rows padded white."""
    picks = []
    for k in range(num_classes):
        row = images[torch.nonzero(labels == k).flatten()[:per_class]]
        if len(row) < per_class:
            row = torch.cat([row, torch.full((per_class - len(row), *images.shape[1:]), 255, dtype=torch.uint8)])
        picks.append(row)
    return torch.cat(picks)


def class_grid(images: torch.Tensor, labels: torch.Tensor, classes: List[str], per_class: int = 8, scale: int = 2) -> Image.Image:
    """One row per class with up to ``per_class`` of its images (first ones in order); images uint8 (N, C, H, W)."""
    return make_grid(_class_rows(images, labels, len(classes), per_class), rows=len(classes), scale=scale,
                     row_labels=list(classes))


def save_png(img: Image.Image, path: str | Path) -> Path:
    """Save atomically, without metadata (so equal images give equal bytes)."""
    from ..paths import atomic_write

    return atomic_write(path, lambda p: img.save(p, format="PNG"))


def png_data_uri(path_or_img) -> str:
    """``data:image/png;base64,...`` for a PNG file or a PIL image (self-contained HTML)."""
    if isinstance(path_or_img, Image.Image):
        buf = io.BytesIO()
        path_or_img.save(buf, format="PNG")
        data = buf.getvalue()
    else:
        data = Path(path_or_img).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def side_by_side(panels: Sequence[tuple], per_class: int = 4, scale: int = 2, gap: int = 8) -> Image.Image:
    """Image sets side by side: one panel per ``(label, ImageSet)``, one row per class (the first set's
    classes) with that set's first ``per_class`` images of the class, the label above each panel and the
    class names on the left once."""
    grids = []
    for _, data in panels:
        idx = first_per_class(data.labels, data.num_classes, per_class)  # decodes only the images shown
        rows = _class_rows(data.take(idx), data.labels[idx], data.num_classes, per_class)
        grids.append(make_grid(rows, rows=data.num_classes, scale=scale))
    classes = panels[0][1].classes
    header, left = 14, 90
    canvas = Image.new("RGB", (left + sum(g.width + gap for g in grids), header + max(g.height for g in grids)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    cell_h = (grids[0].height - 1) / len(classes)  # make_grid: one pixel of padding above each row
    for r, name in enumerate(classes):
        draw.text((4, header + 1 + r * cell_h + cell_h / 2 - 6), str(name)[:14], fill=(0, 0, 0))
    x = left
    for (label, _), g in zip(panels, grids):
        canvas.paste(g, (x, header))
        draw.text((x + 2, 1), str(label)[: max(4, g.width // 6)], fill=(0, 0, 0))
        x += g.width + gap
    return canvas

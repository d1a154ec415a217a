"""The image set every part of synthclone passes around: an index in memory, pixels from a source.

An :class:`ImageSet` holds labels, class names and ids in memory; its pixels come from a
:class:`Pixels` source: a uint8 tensor (small sets such as Fashion-MNIST), image files decoded on
demand (any ImageFolder, a synthetic store), or views of those (subsets, concatenations) that copy
nothing. Consumers read pixels in batches with :meth:`ImageSet.batches`, which decodes file-backed
sets in ``torch.utils.data.DataLoader`` workers, so peak memory does not grow with the number of
images.
"""

from __future__ import annotations

import abc
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np
import torch

from ..errors import UserError

# a set whose decoded pixels take at most this many bytes is cached in memory by the loaders
DEFAULT_CACHE_BYTES = 256 * 2 ** 20


def default_workers() -> int:
    """DataLoader workers when ``data.workers`` is not set: the machine's cores (at most 8)."""
    return max(1, min(8, os.cpu_count() or 1))


# ----------------------------------------------------------------------------------- pixel sources


class Pixels(abc.ABC):
    """Where the pixels of an image set come from: ``len``, ``read(i)``, ``take(index)``.

    ``read(i)`` returns one uint8 (C, H, W) image, or None when the file cannot be decoded and the
    source was told to skip unreadable files (otherwise it raises :class:`UserError` naming it).
    """

    in_memory = False

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @property
    @abc.abstractmethod
    def shape(self) -> tuple:
        """(C, H, W) of every image."""

    @abc.abstractmethod
    def read(self, i: int) -> Optional[torch.Tensor]:
        """Sample ``i`` as uint8 (C, H, W), or None (an unreadable file the source skips)."""

    def describe(self, i: int) -> str:
        """What sample ``i`` is, for error messages (a file path)."""
        return f"sample {i}"

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 (len(index), C, H, W), decoded on the calling thread (small selections only)."""
        out = []
        for i in index.tolist():
            img = self.read(i)
            if img is None:
                raise UserError(f"cannot read image {self.describe(i)}; delete or replace the file")
            out.append(img)
        return torch.stack(out) if out else torch.zeros((0, *self.shape), dtype=torch.uint8)

    def view(self, index: torch.Tensor) -> "Pixels":
        return IndexPixels(self, index)


class TensorPixels(Pixels):
    """Pixels held as one uint8 tensor (N, C, H, W)."""

    in_memory = True

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"image tensor must be uint8 (N, C, H, W); got {images.dtype} {tuple(images.shape)}")
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple:
        return tuple(self.images.shape[1:])

    def read(self, i: int) -> torch.Tensor:
        return self.images[i]

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return self.images[index]

    def view(self, index: torch.Tensor) -> "Pixels":
        return TensorPixels(self.images[index])


class IndexPixels(Pixels):
    """Samples ``index`` of another source, in that order (no copy)."""

    def __init__(self, base: Pixels, index: torch.Tensor):
        self.base, self.index = base, torch.as_tensor(index, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple:
        return self.base.shape

    def read(self, i: int):
        return self.base.read(int(self.index[i]))

    def describe(self, i: int) -> str:
        return self.base.describe(int(self.index[i]))

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return self.base.take(self.index[index])

    def view(self, index: torch.Tensor) -> "Pixels":
        return IndexPixels(self.base, self.index[torch.as_tensor(index, dtype=torch.long)])


class ConcatPixels(Pixels):
    """Several sources of one shape one after another (no copy)."""

    def __init__(self, parts: Sequence[Pixels]):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple:
        return self.parts[0].shape

    def _locate(self, i: int) -> tuple:
        p = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return p, i - int(self.offsets[p])

    def read(self, i: int):
        p, j = self._locate(i)
        return self.parts[p].read(j)

    def describe(self, i: int) -> str:
        p, j = self._locate(i)
        return self.parts[p].describe(j)

    def take(self, index: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(index, dtype=torch.long)
        out = torch.empty((len(index), *self.shape), dtype=torch.uint8)
        part = torch.as_tensor(np.searchsorted(self.offsets, index.numpy(), side="right") - 1, dtype=torch.long)
        for p in part.unique().tolist():
            sel = torch.nonzero(part == p).flatten()
            out[sel] = self.parts[p].take(index[sel] - int(self.offsets[p]))
        return out


class FilePixels(Pixels):
    """Image files decoded on demand to ``channels`` x ``size`` x ``size``.

    Each image is converted to grayscale or RGB, its shorter side resized to ``size`` (bilinear,
    antialiased) and centre-cropped to a square, so folders of mixed sizes and aspect ratios read
    as one shape; an image already ``size`` x ``size`` is returned as it is.
    """

    def __init__(self, root: str | Path, paths: Sequence[str], channels: int, size: int, skip_unreadable: bool = False,
                 crop_pct: float = 1.0):
        if channels not in (1, 3):
            raise UserError(f"channels must be 1 or 3, got {channels}")
        if not 0 < crop_pct <= 1:
            raise UserError(f"crop_pct must be in (0, 1], got {crop_pct}")
        self.root, self.paths = str(root), list(paths)
        self.channels, self.size, self.skip_unreadable = channels, int(size), skip_unreadable
        self.crop_pct = float(crop_pct)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple:
        return (self.channels, self.size, self.size)

    def describe(self, i: int) -> str:
        return os.path.join(self.root, self.paths[i])

    def with_shape(self, channels: int, size: int) -> "FilePixels":
        """The same files decoded at another shape."""
        return FilePixels(self.root, self.paths, channels, size, self.skip_unreadable, self.crop_pct)

    def native_shape(self, i: int) -> tuple:
        """``(channels, shorter side)`` of sample ``i`` as stored, from the file's header."""
        return probe_image(self.describe(i))

    def read(self, i: int) -> Optional[torch.Tensor]:
        from PIL import Image, UnidentifiedImageError

        path = self.describe(i)
        try:
            with Image.open(path) as im:
                im = im.convert("L" if self.channels == 1 else "RGB")
                im = fit_square(im, self.size, self.crop_pct)
                array = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            if self.skip_unreadable:
                return None
            raise UserError(f"cannot read image {path} ({exc.__class__.__name__}); delete or replace the file, "
                            "or set data.skip_unreadable: true") from None
        t = torch.from_numpy(array.copy())
        return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def probe_image(path) -> tuple:
    """``(channels, shorter side)`` of an image file, from its header; a one-line error when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return (1 if im.mode in ("L", "1", "I", "I;16", "F", "LA") else 3), min(im.size)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot read image {path} ({exc.__class__.__name__}); delete or replace the file") from None


def fit_square(im, size: int, crop_pct: float = 1.0):
    """A PIL image with its shorter side resized to ``size / crop_pct`` and centre-cropped to
    ``size`` x ``size`` (timm's and torchvision's evaluation transform; ``crop_pct`` 1 keeps the
    whole shorter side)."""
    from PIL import Image

    w, h = im.size
    if (w, h) == (size, size):
        return im
    short = max(size, int(math.floor(size / crop_pct)))
    scale = short / min(w, h)
    nw, nh = max(short, round(w * scale)), max(short, round(h * scale))
    im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


class ConformPixels(Pixels):
    """Another source brought to ``channels`` x ``size`` x ``size`` sample by sample (no copy)."""

    def __init__(self, base: Pixels, channels: int, size: int):
        self.base, self.channels, self.size = base, int(channels), int(size)

    def __len__(self) -> int:
        return len(self.base)

    @property
    def shape(self) -> tuple:
        return (self.channels, self.size, self.size)

    def read(self, i: int):
        img = self.base.read(i)
        return None if img is None else conform_tensor(img[None], self.channels, self.size)[0]

    def describe(self, i: int) -> str:
        return self.base.describe(i)

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return conform_tensor(self.base.take(index), self.channels, self.size)


def conform_tensor(images: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, channels, size, size): grayscale <-> RGB, shorter side resized
    (bilinear, antialiased) and centre-cropped, as :func:`fit_square` does for files."""
    import torch.nn.functional as F

    x = images
    if x.shape[1] != channels:
        if channels == 1:  # ITU-R 601-2 luma, as PIL's convert("L")
            w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).view(1, 3, 1, 1)
            x = (x.float() * w).sum(1, keepdim=True).round().clamp_(0, 255).to(torch.uint8)
        else:
            x = x.expand(-1, 3, -1, -1)
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        y = F.interpolate(x.float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = y[..., top:top + size, left:left + size].round().clamp_(0, 255).to(torch.uint8)
    return x.contiguous()


def conform(data: "ImageSet", channels: Optional[int] = None, size: Optional[int] = None) -> "ImageSet":
    """``data`` with images of ``channels`` x ``size`` x ``size`` (None keeps that property).

    In-memory sets are converted at once, file-backed ones re-decoded at the new shape, views
    converted as they are read; a set already of that shape is returned as it is.
    """
    c, h, w = data.shape
    channels, size = channels or c, size or (h if h == w else min(h, w))
    if (c, h, w) == (channels, size, size):
        return data
    p = data.pixels
    if isinstance(p, TensorPixels):
        pixels: Pixels = TensorPixels(conform_tensor(p.images, channels, size))
    elif isinstance(p, FilePixels):  # files (or a tar store's members): decoded at the new shape
        pixels = p.with_shape(channels, size)
    else:
        pixels = ConformPixels(p, channels, size)
    out = data.like(pixels, data.labels, list(data.ids))
    out.meta = dict(data.meta)
    return out


# ----------------------------------------------------------------------------------- batches


class _Samples(torch.utils.data.Dataset):
    """One decoded sample per index, for DataLoader workers."""

    def __init__(self, pixels: Pixels):
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int):
        try:
            return i, self.pixels.read(i)
        except UserError as exc:  # sent back as a value: raised in the main process as the same one line
            return i, exc


def _collate(items):
    for _, img in items:
        if isinstance(img, UserError):
            return img
    idx = torch.tensor([i for i, _ in items], dtype=torch.long)
    ok = [img is not None for _, img in items]
    imgs = [img for _, img in items if img is not None]
    return idx, torch.tensor(ok, dtype=torch.bool), (torch.stack(imgs) if imgs else None)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding is per-process work; torch threads would only contend


@dataclass
class ImageSet:
    """Labelled images: index in memory, pixels from a :class:`Pixels` source.

    Attributes:
        pixels: the source (a uint8 tensor (N, C, H, W) given here is wrapped in :class:`TensorPixels`).
        labels: ``int64`` tensor of shape (N,), indices into ``classes``.
        classes: class names, index = label.
        ids: one stable string id per sample (e.g. ``"fmnist-test-17"``, a file's relative path).
        name: what the set is (``"fashion-mnist/test"``).
        meta: facts that travel with the set (``prompts`` of a store, ``class_ids``, ``split``).
        workers: DataLoader workers for file-backed sets (None: :func:`default_workers`).
    """

    pixels: Pixels | torch.Tensor
    labels: torch.Tensor
    classes: List[str]
    ids: List[str]
    name: str = ""
    meta: dict = field(default_factory=dict)
    workers: Optional[int] = None
    skipped: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.pixels, torch.Tensor):
            self.pixels = TensorPixels(self.pixels)
        n = len(self.pixels)
        if self.labels.shape != (n,) or len(self.ids) != n:
            raise ValueError(f"ImageSet: {n} images but {tuple(self.labels.shape)} labels and {len(self.ids)} ids")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self.pixels.shape)

    @property
    def in_memory(self) -> bool:
        return self.pixels.in_memory

    @property
    def images(self) -> torch.Tensor:
        """All pixels as one uint8 tensor (N, C, H, W): only for sets held in memory.

        A file-backed set is never materialised implicitly; read it with :meth:`batches`, or
        :meth:`cached` when it is known to be small.
        """
        if not self.pixels.in_memory:
            raise RuntimeError(f"{self.name or 'image set'} is file-backed ({len(self)} images); read it with .batches()")
        return self.pixels.images

    def take(self, index: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """uint8 (len(index), C, H, W) of the samples at ``index`` (decoded here: small selections)."""
        return self.pixels.take(torch.as_tensor(index, dtype=torch.long))

    def float(self) -> torch.Tensor:
        """Images as float32 in [0, 1], shape (N, C, H, W) (in-memory sets)."""
        return self.images.float().div_(255.0)

    def like(self, pixels: Pixels | torch.Tensor, labels: torch.Tensor, ids: List[str], name: Optional[str] = None,
             meta: Optional[dict] = None) -> "ImageSet":
        # the same list: a file skipped while reading a subset is counted in the set it came from
        return ImageSet(pixels, labels, list(self.classes), ids, name=name or self.name,
                        meta=dict(self.meta) if meta is None else meta, workers=self.workers, skipped=self.skipped)

    def subset(self, index: Sequence[int] | torch.Tensor, name: Optional[str] = None) -> "ImageSet":
        """A new set with the samples at ``index`` (in that order); file-backed sets are not decoded."""
        idx = torch.as_tensor(index, dtype=torch.long)
        meta = {k: v for k, v in self.meta.items() if k != "manifest"}
        if "prompts" in self.meta:
            meta["prompts"] = [self.meta["prompts"][i] for i in idx.tolist()]
        return self.like(self.pixels.view(idx), self.labels[idx], [self.ids[i] for i in idx.tolist()],
                         name=name, meta=meta)

    def per_class(self, k: int, seed: int = 0) -> "ImageSet":
        """``k`` samples of every class, chosen with ``seed`` (few-shot subsets)."""
        g = torch.Generator().manual_seed(seed)
        picks = []
        for c in range(self.num_classes):
            members = torch.nonzero(self.labels == c).flatten()
            if len(members) < k:
                raise ValueError(f"class {self.classes[c]!r} has {len(members)} samples, fewer than k={k}")
            picks.append(members[torch.randperm(len(members), generator=g)[:k]])
        return self.subset(torch.cat(picks), name=f"{self.name}[{k}-shot,seed={seed}]")

    def batches(self, batch_size: int = 256, index: Optional[Sequence[int] | torch.Tensor] = None,
                workers: Optional[int] = None, chunks: Optional[Sequence[torch.Tensor]] = None) -> Iterator[tuple]:
        """Yield ``(images uint8 (B, C, H, W), index int64 (B,))`` over the set in order.

        ``index`` (default: every sample) selects and orders the samples; batches follow it.
        ``chunks`` (a list of index tensors, e.g. a training epoch's batches) gives the batches
        themselves instead; an empty chunk yields an empty batch, so steps stay aligned. A
        file-backed set is decoded in ``workers`` DataLoader processes (default ``self.workers``,
        else the machine's cores); an in-memory one is sliced. Unreadable files raise
        :class:`UserError` naming the file, or, when the source skips them, are left out of their
        batch (the yielded index says which samples came) and recorded in :attr:`skipped`.
        """
        if chunks is None:
            order = torch.arange(len(self)) if index is None else torch.as_tensor(index, dtype=torch.long)
            chunks = list(order.split(max(1, int(batch_size))))
        else:
            chunks = [torch.as_tensor(c, dtype=torch.long) for c in chunks]
        empty = torch.zeros((0, *self.shape), dtype=torch.uint8)
        if self.pixels.in_memory:
            for chunk in chunks:
                yield self.pixels.take(chunk), chunk
            return
        n_workers = self.workers if workers is None else workers
        n_workers = default_workers() if n_workers is None else int(n_workers)
        n_workers = min(n_workers, len(chunks))
        loader = torch.utils.data.DataLoader(
            _Samples(self.pixels), batch_sampler=[c.tolist() for c in chunks], num_workers=n_workers,
            collate_fn=_collate, worker_init_fn=_worker_init if n_workers else None,
            prefetch_factor=4 if n_workers else None)
        for item in loader:
            if isinstance(item, UserError):
                raise item
            idx, ok, imgs = item
            if not bool(ok.all()):
                for i in idx[~ok].tolist():
                    self.skipped.append(self.pixels.describe(i))
                idx = idx[ok]
            yield (imgs if imgs is not None else empty), idx

    def cached(self, workers: Optional[int] = None) -> "ImageSet":
        """The same set with every image decoded into memory (a no-op for in-memory sets)."""
        if self.pixels.in_memory:
            return self
        parts, kept = [], []
        for imgs, idx in self.batches(256, workers=workers):
            if not len(idx):
                continue
            parts.append(imgs)
            kept.append(idx)
        keep = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long)
        images = torch.cat(parts) if parts else torch.zeros((0, *self.shape), dtype=torch.uint8)
        if len(keep) == len(self):
            return self.like(images, self.labels, list(self.ids))
        sub = self.subset(keep)
        sub.pixels = TensorPixels(images)
        return sub


def nbytes(n: int, shape: Sequence[int]) -> int:
    """Bytes of ``n`` uint8 images of ``shape``."""
    return int(n) * int(np.prod(shape))


__all__ = ["ImageSet", "Pixels", "TensorPixels", "FilePixels", "IndexPixels", "ConcatPixels", "ConformPixels",
           "conform", "conform_tensor", "fit_square", "probe_image",
           "default_workers", "DEFAULT_CACHE_BYTES", "nbytes"]

"""``dedup``: drop near-duplicate images within a class by perceptual-hash distance.

Each image gets a difference hash (dHash): the grayscale image resized with PIL to
``(hash_size + 1) x hash_size``, one bit per horizontally adjacent pixel pair ("is the right one
brighter"). Going through a class in slot order, an image is a duplicate when its hash is within
``max_distance`` bits (Hamming) of an image already kept.

Defaults: ``hash_size=16`` (256 bits) and ``max_distance=4``. The common 64-bit hash (8x8) is too
coarse for 28x28 product silhouettes: on 100 real Fashion-MNIST validation images per class it gives
40 of 100 trousers the very same hash, while 256 bits within 4 bits flags 2 of 1,000 images.
The hash (hex) goes to the manifest column ``phash``, the distance to the nearest earlier kept image
to ``dedup_distance`` (``hash bits`` when it is the first of its class).
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

from ..errors import UserError
from . import FILTERS
from .base import FilterResult, ImageFilter


def dhash(images: torch.Tensor, hash_size: int = 16) -> np.ndarray:
    """Difference hashes of uint8 images (N, C, H, W) as hex strings (N,) of ``hash_size**2`` bits."""
    from PIL import Image

    gray = images.float().mean(dim=1).round().clamp(0, 255).to(torch.uint8).numpy()
    out = []
    for g in gray:
        small = np.asarray(Image.fromarray(g, mode="L").resize((hash_size + 1, hash_size), Image.BILINEAR), dtype=np.int16)
        out.append(np.packbits(small[:, 1:] > small[:, :-1]).tobytes().hex())
    return np.array(out, dtype=object)


def hash_bits(hashes) -> np.ndarray:
    """Hex hashes (N,) -> bool bit matrix (N, bits)."""
    return np.stack([np.unpackbits(np.frombuffer(bytes.fromhex(h), dtype=np.uint8)).astype(bool) for h in hashes])


def hamming(a: str, b: str) -> int:
    """Bit distance between two hex hashes of equal length."""
    return int((hash_bits([a]) != hash_bits([b])).sum())


class DedupFilter(ImageFilter):
    name = "dedup"

    def __init__(self, max_distance: int = 4, hash_size: int = 16):
        if not 4 <= int(hash_size) <= 64:
            raise UserError(f"dedup hash_size must be in 4..64, got {hash_size}")
        bits = int(hash_size) ** 2
        if not 0 <= int(max_distance) < bits:
            raise UserError(f"dedup max_distance must be in 0..{bits - 1} bits, got {max_distance}")
        self.max_distance = int(max_distance)
        self.hash_size = int(hash_size)

    def identity(self) -> Dict[str, Any]:
        return {"name": self.name, "max_distance": self.max_distance, "hash_size": self.hash_size}

    def score(self, images, labels, classes):
        return {"phash": dhash(images, self.hash_size)}

    def select(self, manifest, labels, num_classes, candidates=None) -> FilterResult:
        hashes = manifest["phash"].tolist()
        n = len(hashes)
        index = manifest["index"].to_numpy() if "index" in manifest else np.arange(n)
        labels = np.asarray(labels)
        candidates = np.ones(n, bool) if candidates is None else np.asarray(candidates, bool)
        nbits = self.hash_size ** 2
        keep = np.zeros(n, bool)
        distance = np.full(n, nbits, dtype=np.int64)
        for c in range(num_classes):
            members = np.nonzero((labels == c) & candidates)[0]
            members = members[np.argsort(index[members], kind="stable")]
            if not len(members):
                continue
            bits = hash_bits([hashes[i] for i in members])
            kept_rows: list = []
            for row, i in enumerate(members):
                if kept_rows:
                    distance[i] = int((bits[kept_rows] != bits[row]).sum(axis=1).min())
                if distance[i] > self.max_distance:
                    keep[i] = True
                    kept_rows.append(row)
        return FilterResult(keep=keep, scores=distance.astype(np.float64), name=self.name,
                            columns={"dedup_distance": distance})


@FILTERS.register("dedup")
def dedup_filter(**options) -> DedupFilter:
    """Drop near-duplicates within a class: 256-bit perceptual hash within max_distance bits."""
    return DedupFilter(**options)

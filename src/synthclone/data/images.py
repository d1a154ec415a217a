"""The in-memory image set every part of synthclone passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch


@dataclass
class ImageSet:
    """Labelled images held in memory.

    Attributes:
        images: ``uint8`` tensor of shape (N, C, H, W), values in [0, 255].
        labels: ``int64`` tensor of shape (N,), indices into ``classes``.
        classes: class names, index = label.
        ids: one stable string id per sample (e.g. ``"fashion-mnist/test/17"``).
        name: what the set is (``"fashion-mnist/test"``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: List[str]
    ids: List[str]
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"ImageSet.images must be uint8 (N, C, H, W); got {self.images.dtype} {tuple(self.images.shape)}"
            )
        n = self.images.shape[0]
        if self.labels.shape != (n,) or len(self.ids) != n:
            raise ValueError(
                f"ImageSet: {n} images but {tuple(self.labels.shape)} labels and {len(self.ids)} ids"
            )
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def subset(self, index: Sequence[int] | torch.Tensor, name: Optional[str] = None) -> "ImageSet":
        """A new set with the samples at ``index`` (in that order)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(
            images=self.images[idx],
            labels=self.labels[idx],
            classes=list(self.classes),
            ids=[self.ids[i] for i in idx.tolist()],
            name=name or self.name,
            meta=dict(self.meta),
        )

    def float(self) -> torch.Tensor:
        """Images as float32 in [0, 1], shape (N, C, H, W)."""
        return self.images.float().div_(255.0)

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

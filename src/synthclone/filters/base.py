"""The filter interface and its result."""

from __future__ import annotations

import abc

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch


@dataclass
class FilterResult:
    """What a filter decided.

    Attributes:
        keep: bool array (N,), True for images the filter keeps.
        scores: float array (N,), the filter's per-image score (CLIP: confidence of the intended
            class in [0, 1]; dedup: Hamming distance to the nearest earlier kept image, 0..64).
        name: the filter's name.
        columns: manifest columns the decision adds or updates (name -> array (N,)).
    """

    keep: np.ndarray
    scores: np.ndarray
    name: str
    columns: Dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return int(self.keep.sum())


class ImageFilter(abc.ABC):
    """Base class: subclasses set ``name`` and implement :meth:`score` and :meth:`select`."""

    name = "filter"

    def identity(self) -> Dict[str, Any]:
        """What determines the filter's decisions (hashed into a store's config)."""
        return {"name": self.name}

    def prepare(self) -> None:
        """Load what the filter needs (models) now, so a missing file fails before any work starts."""

    @abc.abstractmethod
    def score(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> Dict[str, np.ndarray]:
        """Per-image manifest columns for ``images`` uint8 (N, C, H, W) of intended classes ``labels`` (N,)."""

    @abc.abstractmethod
    def select(self, manifest, labels: np.ndarray, num_classes: int, candidates: Optional[np.ndarray] = None) -> FilterResult:
        """Decide over a whole manifest (DataFrame with this filter's score columns)."""

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]) -> FilterResult:
        """Score and decide on an in-memory batch: uint8 (N, C, H, W), labels (N,)."""
        import pandas as pd

        cols = self.score(images, labels, classes)
        df = pd.DataFrame({"index": np.arange(len(labels)), **cols})
        return self.select(df, np.asarray(labels), len(classes))

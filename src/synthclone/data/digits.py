"""scikit-learn's bundled handwritten digits (real, offline) resized to 28x28: an OOD set."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .images import ImageSet


def load_digits(size: int = 28, channels: int = 1) -> ImageSet:
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits`` as uint8 (N, C, size, size)."""
    from sklearn.datasets import load_digits as sk_load

    bunch = sk_load()
    x = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
    images = (x * 255).round().to(torch.uint8).expand(-1, channels, -1, -1).contiguous()
    labels = torch.from_numpy(bunch.target).long()
    return ImageSet(images, labels, [str(d) for d in range(10)], [f"digits-{i}" for i in range(len(labels))], name="digits")

"""Small ResNets sized for 28x28 / 32x32 images (He et al. 2016, the CIFAR variants).

``resnet8`` (78 k parameters) and ``resnet20`` (272 k) are the embedded world's recognizers.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from . import MODELS
from .base import Classifier, ModelSpec


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Three stages of ``depth`` basic blocks at widths ``widths``; global pool; linear head."""

    def __init__(self, depth: int, num_classes: int, in_chans: int = 1, widths: Sequence[int] = (16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers: List[nn.Module] = []
        cin = widths[0]
        for i, w in enumerate(widths):
            for j in range(depth):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.num_features = cin
        self.head = nn.Linear(cin, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _build(name: str, depth: int, num_classes: int, in_chans: int, classes: Optional[List[str]],
           mean: Optional[Tuple[float, ...]], std: Optional[Tuple[float, ...]], input_size=(28, 28)) -> Classifier:
    if classes is not None and len(classes) != num_classes:
        raise ValueError(f"{len(classes)} class names for num_classes={num_classes}")
    spec = ModelSpec(
        name=name, num_classes=num_classes, in_chans=in_chans, input_size=tuple(input_size),
        mean=tuple(mean) if mean else (0.2860,) * in_chans if in_chans == 1 else (0.5,) * in_chans,
        std=tuple(std) if std else (0.3530,) * in_chans if in_chans == 1 else (0.25,) * in_chans,
        classes=list(classes) if classes else None,
    )
    return Classifier(ResNet(depth, num_classes, in_chans), spec)


@MODELS.register("resnet8")
def resnet8(num_classes: int = 10, in_chans: int = 1, classes=None, mean=None, std=None, input_size=(28, 28)) -> Classifier:
    """ResNet-8 for small images: 3 stages x 1 block, 78 k parameters."""
    return _build("resnet8", 1, num_classes, in_chans, classes, mean, std, input_size)


@MODELS.register("resnet20")
def resnet20(num_classes: int = 10, in_chans: int = 1, classes=None, mean=None, std=None, input_size=(28, 28)) -> Classifier:
    """ResNet-20 for small images: 3 stages x 3 blocks, 272 k parameters."""
    return _build("resnet20", 3, num_classes, in_chans, classes, mean, std, input_size)

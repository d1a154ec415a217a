"""The classifier contract: pixels in [0, 1] in, logits over a named label space out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn


@dataclass
class ModelSpec:
    """What travels with a model: preprocessing and label space (cf. timm's pretrained cfg)."""

    name: str
    num_classes: int
    in_chans: int = 1
    input_size: Tuple[int, int] = (28, 28)
    mean: Tuple[float, ...] = (0.2860,)
    std: Tuple[float, ...] = (0.3530,)
    classes: Optional[List[str]] = None
    kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Classifier(nn.Module):
    """Wraps a network that expects normalised input.

    ``forward(x)`` takes ``x`` float in [0, 1] of shape (N, C, H, W) and returns logits (N, K).
    ``features(x)`` returns the penultimate features (N, D) when the network exposes them.
    """

    def __init__(self, net: nn.Module, spec: ModelSpec):
        super().__init__()
        self.net = net
        self.spec = spec
        c = spec.in_chans
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1).expand(1, c, 1, 1).clone())
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1).expand(1, c, 1, 1).clone())

    @property
    def classes(self) -> Optional[Sequence[str]]:
        return self.spec.classes

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self.net, "forward_features"):
            raise AttributeError(f"{self.spec.name} exposes no features()")
        return self.net.forward_features(self.normalize(x))

"""Models built from other models: a linear probe on a frozen backbone, a contrastive image tower.

Each composite records a *recipe* (plain JSON: how to rebuild the architecture without weights) so
a checkpoint can be loaded back with no pickle and no training code.
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, ModelSpec


def _freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class LinearProbe(Classifier):
    """A linear head on a backbone's ``features()``.

    ``forward(x)``: float [0, 1] (N, C, H, W) -> logits (N, K). The backbone stays in eval mode
    (frozen BatchNorm statistics) while the probe trains when ``freeze`` is true.
    """

    def __init__(self, backbone: Classifier, num_classes: int, classes: Optional[List[str]] = None,
                 feature_dim: Optional[int] = None, freeze: bool = True, norm: bool = False):
        spec = ModelSpec(**{**backbone.spec.to_dict(), "num_classes": num_classes,
                            "classes": list(classes) if classes else None})
        spec.name = f"probe({backbone.spec.name})"
        super().__init__(nn.Identity(), spec)
        self.backbone = _freeze(backbone) if freeze else backbone
        self.frozen = freeze
        if feature_dim is None:
            with torch.no_grad():
                was = backbone.training
                backbone.eval()
                c = backbone.spec.in_chans
                h, w = backbone.spec.input_size
                feature_dim = int(backbone.features(torch.zeros(1, c, h, w)).shape[-1])
                backbone.train(was)
        self.feature_dim = feature_dim
        # StableRep's probe (--use_bn): a BatchNorm without affine parameters before the linear head
        self.norm = nn.BatchNorm1d(feature_dim, affine=False, eps=1e-6) if norm else None
        self.head = nn.Linear(feature_dim, num_classes)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # Frozen means parameters without gradients (see _freeze), not torch.no_grad(): gradients
        # must still flow to the input, or attacks (FGSM, PGD) cannot differentiate the model. With
        # neither the input nor the parameters requiring grad, autograd records nothing anyway.
        return self.backbone.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).float()
        return self.head(self.norm(f) if self.norm is not None else f)


class ContrastiveTower(nn.Module):
    """Backbone features -> linear projection -> L2-normalised embedding (N, dim).

    The image side of the ``clip`` regime; ``encode_image`` takes float [0, 1] (N, C, H, W).
    """

    def __init__(self, backbone: Classifier, dim: int, feature_dim: Optional[int] = None):
        super().__init__()
        self.backbone = backbone
        if feature_dim is None:
            c = backbone.spec.in_chans
            h, w = backbone.spec.input_size
            with torch.no_grad():
                was = backbone.training
                backbone.eval()
                feature_dim = int(backbone.features(torch.zeros(1, c, h, w)).shape[-1])
                backbone.train(was)
        self.feature_dim = feature_dim
        self.proj = nn.Linear(feature_dim, dim)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.backbone.features(x)).float(), dim=-1)


class ProjectionMLP(nn.Module):
    """SimCLR's projection head: Linear -> BN -> ReLU -> Linear (not kept after pre-training)."""

    def __init__(self, dim_in: int, hidden: int = 256, dim_out: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

"""The denoiser of the embedded text-to-image model: a small UNet with FiLM conditioning.

Conditioning is one vector per image: the sum of an MLP of the sinusoidal timestep embedding and an MLP
of the prompt's sentence embedding (384-d from all-MiniLM-L6-v2). Every residual block scales and shifts
its normalised activations with it (FiLM), which is far cheaper on a CPU than cross-attention over
tokens and enough for one-sentence prompts. A learned ``null_embedding`` stands for "no prompt": training
swaps it in for a share of captions (caption dropout), so classifier-free guidance works at sampling.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps ``t`` (N,) (any float range, here 0..T-1) -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, c), c)  # 8 groups whenever the width allows


class FiLMResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv -> GroupNorm -> FiLM(emb) -> SiLU -> conv, plus a skip connection."""

    def __init__(self, cin: int, cout: int, emb_dim: int):
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stable early training
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the pixels of the coarsest (7x7) feature map."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """Denoiser ``forward(x, t, text) -> prediction``.

    Args (forward):
        x: noisy images, float (N, C, H, W), H and W divisible by 4 (28x28 for Fashion-MNIST).
        t: timesteps, (N,) ints or floats in [0, T).
        text: sentence embeddings, float (N, text_dim) (use ``null_embedding`` for "no prompt").
    Returns:
        float (N, C, H, W): the v- or eps-prediction, as the noise schedule says.
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32, 64), blocks: int = 1,
                 text_dim: int = 384, emb_dim: int = 128, attention: bool = True):
        super().__init__()
        channels = list(channels)
        self.config = {"in_channels": in_channels, "channels": channels, "blocks": blocks,
                       "text_dim": text_dim, "emb_dim": emb_dim, "attention": attention}
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.text_mlp = nn.Sequential(nn.Linear(text_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # "no prompt": a learned point in the sentence-embedding space, swapped in by caption dropout
        self.null_embedding = nn.Parameter(torch.zeros(text_dim))
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [channels[0]]
        c = channels[0]
        for level, width in enumerate(channels):
            blocks_here = nn.ModuleList()
            for _ in range(blocks):
                blocks_here.append(FiLMResBlock(c, width, emb_dim))
                c = width
                skips.append(c)
            self.down.append(blocks_here)
            if level < len(channels) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = FiLMResBlock(c, c, emb_dim)
        self.mid_attn = SelfAttention(c) if attention else nn.Identity()
        self.mid2 = FiLMResBlock(c, c, emb_dim)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, width in reversed(list(enumerate(channels))):
            blocks_here = nn.ModuleList()
            for _ in range(blocks + 1):
                blocks_here.append(FiLMResBlock(c + skips.pop(), width, emb_dim))
                c = width
            self.up.append(blocks_here)
            if level > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.norm_out = _norm(c)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embed(self, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(timestep_embedding(t, self.emb_dim)) + self.text_mlp(text)

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        emb = self.embed(t, text.to(x.dtype) if text.dtype != x.dtype else text)
        h = self.conv_in(x)
        hs = [h]
        for level, blocks_here in enumerate(self.down):
            for block in blocks_here:
                h = block(h, emb)
                hs.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for i, blocks_here in enumerate(self.up):
            for block in blocks_here:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))

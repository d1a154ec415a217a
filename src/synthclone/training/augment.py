"""Batched, seeded augmentations on float pixels in [0, 1] (N, C, H, W).

Every function takes an explicit ``torch.Generator`` so a batch's augmentation depends only on the
(seed, epoch, step, rank) the trainer derives it from: that is what makes a resumed run identical
to an uninterrupted one. The random numbers are drawn on the CPU from that generator and moved to
the batch's device, so a batch on a GPU gets the same crops and flips as on the CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def crop_flip(x: torch.Tensor, g: torch.Generator, pad: int = 2, flip: bool = True) -> torch.Tensor:
    """Random crop after zero-padding by ``pad`` pixels, then a random horizontal flip (p=0.5).

    The standard augmentation for 28x28 / 32x32 images. ``x``: float (N, C, H, W) in [0, 1].
    """
    n, c, h, w = x.shape
    if n == 0:
        return x
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
        rows = (dy[:, None] + torch.arange(h))[:, :, None].to(x.device)  # (N, H, 1)
        cols = (dx[:, None] + torch.arange(w))[:, None, :].to(x.device)  # (N, 1, W)
        x = xp[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()
    if flip:
        mask = (torch.rand(n, generator=g) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


def _random_resized_crop(x: torch.Tensor, g: torch.Generator, scale, ratio, flip: bool) -> torch.Tensor:
    """A random crop of area ``scale`` and aspect ``ratio`` per image, resized back to (H, W) (bilinear),
    then (with ``flip``) a random horizontal flip; one batched ``grid_sample``."""
    n, c, h, w = x.shape
    area = torch.empty(n).uniform_(scale[0], scale[1], generator=g)
    logr = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g)
    r = logr.exp()
    sw = (area * r).sqrt().clamp(max=1.0)
    sh = (area / r).sqrt().clamp(max=1.0)
    tx = (torch.rand(n, generator=g) * 2 - 1) * (1 - sw)
    ty = (torch.rand(n, generator=g) * 2 - 1) * (1 - sh)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = sw * sign
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = sh
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), (n, c, h, w), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_resized_crop_flip(x: torch.Tensor, g: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                             flip: bool = True) -> torch.Tensor:
    """The ImageNet training augmentation (torchvision / timm ``RandomResizedCrop`` + flip) on a batch.

    Defaults are torchvision's (scale (0.08, 1), ratio (3/4, 4/3)); a crop that does not fit is
    clamped to the image. Each crop is an integer box resized back to (H, W) with bilinear
    interpolation, image by image: on uint8 input that runs about 10x faster than one batched
    float ``grid_sample`` here (2,630 vs 235 images/s at 224 px, one thread). The crop is taken from
    the decoded image (shorter side at the model's input size, centre square), not from the original
    file. ``x``: uint8 or float (N, C, H, W) in [0, 255] / [0, 1]; returns the same dtype.
    """
    n, c, h, w = x.shape
    if n == 0:
        return x
    area = torch.empty(n).uniform_(scale[0], scale[1], generator=g)
    logr = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g)
    r = logr.exp()
    bw = ((area * r).sqrt().clamp(max=1.0) * w).round().clamp(min=1).long()
    bh = ((area / r).sqrt().clamp(max=1.0) * h).round().clamp(min=1).long()
    left = (torch.rand(n, generator=g) * (w - bw + 1)).floor().long().clamp(max=w - 1)
    top = (torch.rand(n, generator=g) * (h - bh + 1)).floor().long().clamp(max=h - 1)
    mirror = (torch.rand(n, generator=g) < 0.5) if flip else torch.zeros(n, dtype=torch.bool)
    out = torch.empty_like(x)
    for i in range(n):
        t, lft, hh, ww = int(top[i]), int(left[i]), int(bh[i]), int(bw[i])
        crop = x[i:i + 1, :, t:t + hh, lft:lft + ww]
        if (hh, ww) != (h, w):
            crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
        out[i] = crop[0].flip(-1) if mirror[i] else crop[0]
    return out


# random_resized_crop_flip works on the uint8 batch (the engine converts to float afterwards)
random_resized_crop_flip.takes_uint8 = True


def simclr_views(x: torch.Tensor, g: torch.Generator, scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3),
                 jitter: float = 0.4, flip: bool = True) -> torch.Tensor:
    """One SimCLR-style view per image: random resized crop, flip, brightness/contrast jitter.

    (Colour jitter reduces to brightness/contrast for grayscale data; RGB input also gets a random
    grayscale conversion with p=0.2.) Returns float (N, C, H, W) in [0, 1].
    """
    n, c, h, w = x.shape
    if n == 0:
        return x
    out = _random_resized_crop(x, g, scale, ratio, flip)
    b = (1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * jitter).to(out.device)
    k = (1 + (torch.rand(n, 1, 1, 1, generator=g) * 2 - 1) * jitter).to(out.device)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * k + mean) * b
    if c == 3:
        gray = (torch.rand(n, generator=g) < 0.2)[:, None, None, None].to(out.device)
        out = torch.where(gray, out.mean(1, keepdim=True).expand_as(out), out)
    return out.clamp_(0, 1)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image separable Gaussian blur of standard deviation ``sigma`` (N,) pixels, reflect padding."""
    n, c, h, w = x.shape
    radius = int(math.ceil(3 * float(sigma.max()))) if n else 0
    if radius < 1:
        return x
    radius = min(radius, (min(h, w) - 1) // 2) or 1
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t[None] / sigma.to(x.device, x.dtype)[:, None].clamp_min(1e-3)) ** 2)
    k = k / k.sum(1, keepdim=True)                                   # (N, 2r+1)
    y = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="reflect")
    kk = k.repeat_interleave(c, 0)
    y = F.conv2d(y, kk[:, None, None, :], groups=n * c)             # along the width
    y = F.conv2d(y, kk[:, None, :, None], groups=n * c)             # along the height
    return y.reshape(n, c, h, w)


def stablerep_views(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One view per image with StableRep's strong augmentation (google-research/syn-rep-learn,
    ``main_stablerep.py``; SimCLR's): random resized crop of scale (0.08, 1) and a horizontal flip; with
    p=0.8 a colour jitter of brightness, contrast and saturation 0.4 and hue 0.1 (in this fixed order; the
    hue turns the chroma in YIQ space); with p=0.2 grayscale; with p=0.5 a Gaussian blur of sigma
    U(0.1, 2.0) pixels at 224 px, scaled to the image's size. Saturation, hue and grayscale need RGB and
    are skipped on one-channel images. Returns float (N, C, H, W) in [0, 1]."""
    n, c, h, w = x.shape
    if n == 0:
        return x
    out = _random_resized_crop(x, g, (0.08, 1.0), (3 / 4, 4 / 3), True)
    dev = out.device

    def u(lo, hi, shape=(n, 1, 1, 1)):
        return (lo + (hi - lo) * torch.rand(shape, generator=g)).to(dev)

    jitter = (torch.rand(n, generator=g) < 0.8)[:, None, None, None].to(dev)
    b, k, s, hue = u(0.6, 1.4), u(0.6, 1.4), u(0.6, 1.4), u(-0.1, 0.1)
    j = out * b
    if c == 3:
        gray = (0.299 * j[:, 0:1] + 0.587 * j[:, 1:2] + 0.114 * j[:, 2:3])
        j = (j - gray.mean(dim=(2, 3), keepdim=True)) * k + gray.mean(dim=(2, 3), keepdim=True)
        gray = (0.299 * j[:, 0:1] + 0.587 * j[:, 1:2] + 0.114 * j[:, 2:3])
        j = gray + (j - gray) * s
        yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=dev)
        v = torch.einsum("ij,njhw->nihw", yiq, j)
        ang = hue.flatten() * 2 * math.pi
        cos, sin = torch.cos(ang)[:, None, None], torch.sin(ang)[:, None, None]
        i_, q_ = v[:, 1] * cos - v[:, 2] * sin, v[:, 1] * sin + v[:, 2] * cos
        v = torch.stack([v[:, 0], i_, q_], 1)
        j = torch.einsum("ij,njhw->nihw", torch.linalg.inv(yiq), v)
    else:
        j = (j - j.mean(dim=(1, 2, 3), keepdim=True)) * k + j.mean(dim=(1, 2, 3), keepdim=True)
    out = torch.where(jitter, j.clamp(0, 1), out)
    if c == 3:
        to_gray = (torch.rand(n, generator=g) < 0.2)[:, None, None, None].to(dev)
        gray = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3]).expand_as(out)
        out = torch.where(to_gray, gray, out)
    blur = (torch.rand(n, generator=g) < 0.5).to(dev)
    sigma = (0.1 + 1.9 * torch.rand(n, generator=g)) * (h / 224)
    blurred = _gaussian_blur(out, torch.where(blur.cpu(), sigma, torch.zeros(n)))
    out = torch.where(blur[:, None, None, None], blurred, out)
    return out.clamp_(0, 1)

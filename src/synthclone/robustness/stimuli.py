"""Foreground masks, texture patches and composites for the embedded world's shape and background probes.

Fashion-MNIST photographs products on a black background (pixel value 0), so the foreground mask is
a threshold: ``mask = x > 10/255`` on the luminance, closed (dilate then erode, 3x3) so thin dark
seams inside an object stay foreground. ``texture_from`` cuts the central part of an object's
bounding box (half its size, at least 4 px) and tiles it, with a random shift, over the whole frame:
the object's surface texture, free of its outline.

Every function computes on its input's device (``procedural_textures`` on the one it is given); the
random numbers come from the CPU generator ``g`` and are moved, as in :mod:`.corruption_ops`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import rand_on, randint_on
from .corruption_ops import _fractal

THRESHOLD = 10 / 255


def foreground_mask(x: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """Float (N, 1, H, W) in {0, 1}: where the object is. ``x`` float (N, C, H, W) in [0, 1]."""
    lum = x.mean(1, keepdim=True)
    m = (lum > threshold).float()
    m = F.max_pool2d(m, 3, 1, 1)               # dilate
    m = -F.max_pool2d(-m, 3, 1, 1)             # erode: together a closing
    return m


def texture_from(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Tile each image's central object patch over the frame; float (N, C, H, W) in [0, 1]."""
    n, c, h, w = x.shape
    masks = foreground_mask(x)[:, 0] > 0
    out = torch.empty_like(x)
    shifts = torch.randint(0, max(h, w), (n, 2), generator=g)  # stays on the CPU: read one by one below
    for i in range(n):
        ys, xs = torch.nonzero(masks[i], as_tuple=True)
        if len(ys) == 0:
            out[i] = x[i]
            continue
        y0, y1, x0, x1 = ys.min().item(), ys.max().item() + 1, xs.min().item(), xs.max().item() + 1
        ph, pw = max(4, (y1 - y0) // 2), max(4, (x1 - x0) // 2)
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        ty0 = max(0, min(h - ph, cy - ph // 2))
        tx0 = max(0, min(w - pw, cx - pw // 2))
        patch = x[i, :, ty0:ty0 + ph, tx0:tx0 + pw]
        reps = (h // ph + 2, w // pw + 2)
        tiled = patch.repeat(1, *reps)
        sy, sx = shifts[i, 0].item() % ph, shifts[i, 1].item() % pw
        out[i] = tiled[:, sy:sy + h, sx:sx + w]
    return out


def cue_conflict(shape_images: torch.Tensor, texture_images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Silhouettes of ``shape_images`` filled with textures of ``texture_images``; black elsewhere.

    Both float (N, C, H, W) in [0, 1]; returns the same shape and range.
    """
    mask = foreground_mask(shape_images)
    return (mask * texture_from(texture_images, g)).clamp(0, 1)


def procedural_textures(n: int, channels: int, size: int, g: torch.Generator, device="cpu") -> torch.Tensor:
    """Texture-like images (N, C, size, size) in [0, 1] on ``device``: fractal noise, ridged veins, and noisy gratings.

    Stand-ins for real texture photographs (DTD) where none ship: each image mixes a random-orientation
    grating warped by fractal noise with fractal noise of a random roughness.
    """
    kinds = randint_on(0, 3, (n,), g, device)
    rough = _fractal(n, size, 1.4, g, device)
    smooth = _fractal(n, size, 2.2, g, device)
    t = torch.linspace(0, 1, size, device=device)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    theta = rand_on(n, g, device) * torch.pi
    freq = 2 + rand_on(n, g, device) * 8
    phase = (xx * torch.cos(theta).view(-1, 1, 1) + yy * torch.sin(theta).view(-1, 1, 1)) * freq.view(-1, 1, 1)
    grating = 0.5 + 0.5 * torch.sin(2 * torch.pi * (phase.unsqueeze(1) + 0.8 * smooth))
    veins = (1 - (2 * rough - 1).abs()) ** 4
    out = torch.where((kinds == 0).view(-1, 1, 1, 1), grating, torch.where((kinds == 1).view(-1, 1, 1, 1), veins, rough))
    if channels == 3:
        tint = 0.4 + 0.6 * rand_on((n, 3, 1, 1), g, device)
        out = out * tint
    contrast = 0.5 + 0.5 * rand_on((n, 1, 1, 1), g, device)
    return (out * contrast).clamp(0, 1)


def wallpaper(x: torch.Tensor, g: torch.Generator, dim: float = 0.6) -> torch.Tensor:
    """A background made of another image's content: the image at half scale, tiled 2x2, shifted, dimmed.

    ``x`` float (N, C, H, W) in [0, 1]; returns the same shape. Fashion-MNIST backgrounds are black,
    so a "background" that carries class information has to be built from other images' objects.
    """
    n, c, h, w = x.shape
    half = F.interpolate(x, size=(max(1, h // 2), max(1, w // 2)), mode="area")
    tiled = half.repeat(1, 1, 3, 3)
    out = torch.empty_like(x)
    shifts = torch.randint(0, max(1, h // 2), (n, 2), generator=g)  # CPU: read as Python ints
    for i in range(n):
        sy, sx = shifts[i].tolist()
        out[i] = tiled[i, :, sy:sy + h, sx:sx + w]
    return out * dim


def composite(foreground: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The object of ``foreground`` (its mask) pasted over ``background``; float (N, C, H, W) in [0, 1]."""
    m = foreground_mask(foreground)
    return m * foreground + (1 - m) * background

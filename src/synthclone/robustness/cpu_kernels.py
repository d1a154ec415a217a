"""OpenCV's image kernels for the corruptions' CPU path on large images.

The corruptions are written in batched torch (:mod:`.corruption_ops`) so that they run on any device.
On the CPU, above 64 px, several of their steps are plain image filters that OpenCV has as
hand-vectorised kernels: a separable filter, a DFT convolution, a sparse 2-D filter (the line
blur's shifted copies), area resizing, JPEG coding, Canny edges, box blur, histogram equalisation.
These functions run them plane by plane (one (H, W) float32 image per channel, in cache) on CPU
tensors; each computes what its torch twin in :mod:`.corruption_ops` computes, up to float rounding (the integer steps exactly; JPEG bit for bit
like PIL), which ``tests/test_robustness_corruption_fast_paths.py`` checks pair by pair. Measured at
224 px on one thread (AMD EPYC, 3 images in cache): the separable Gaussian 1.8-3.3x torch's shifted
adds at sigma 0.7-6, Canny 2.8x, the drops' shading steps 2x; for whole corruptions at batch 64
(benchmarks/RESULTS.md, section 1) gaussian_blur about 2.3x, pixelate and jpeg_compression about
1.5x, defocus_blur's DFT 1.1x.

OpenCV keeps its own thread pool; every call here first sets it to torch's thread count, so
``OMP_NUM_THREADS`` / ``torch.set_num_threads`` govern both. OpenCV is imported on first use.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch

REFLECT_101 = "reflect"  # d c b | a b c d (torch's F.pad 'reflect', scipy 'mirror')
REPLICATE = "replicate"  # a a a | a b c d (scipy 'nearest')
CONSTANT = "constant"  # 0 0 0 | a b c d


@functools.lru_cache(maxsize=1)
def _cv2():
    import cv2  # opencv-python-headless, a core dependency

    return cv2


def _ready():
    cv2 = _cv2()
    cv2.setNumThreads(max(1, torch.get_num_threads()))
    return cv2


def _border(mode: str) -> int:
    cv2 = _cv2()
    borders = {REFLECT_101: cv2.BORDER_REFLECT_101, REPLICATE: cv2.BORDER_REPLICATE, CONSTANT: cv2.BORDER_CONSTANT}
    if mode not in borders:
        raise ValueError(f"border mode must be one of {sorted(borders)}, got {mode!r}")
    return borders[mode]


def _planes(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float32 CPU tensor -> (N * C, H, W) numpy view of its (contiguous) values."""
    x = x.contiguous()
    return x.numpy().reshape(-1, *x.shape[-2:])


def _output(x: torch.Tensor, out) -> torch.Tensor:
    """``out`` (contiguous float32 of ``x``'s shape, written in place), or a fresh tensor."""
    if out is None:
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    if not out.is_contiguous() or out.shape != x.shape or out.dtype != torch.float32:
        raise ValueError(f"out must be contiguous float32 {tuple(x.shape)}, got {out.dtype} {tuple(out.shape)}")
    return out


def separable_filter(x: torch.Tensor, taps: Sequence[float], mode: str = REFLECT_101, out=None) -> torch.Tensor:
    """Correlate every (H, W) plane of float32 (N, C, H, W) ``x`` with the odd 1-D kernel ``taps``
    along the rows, then along the columns, borders extended by ``mode``; 'same' output (into ``out``
    when given). An ``x`` stored channels last (a permuted view of (N, H, W, C), C <= 4) is filtered
    as it lies, one OpenCV call per image, and the result is stored the same way."""
    cv2 = _ready()
    k = np.asarray(taps, dtype=np.float32)
    border = _border(mode)
    nhwc = x.permute(0, 2, 3, 1)
    if out is None and x.shape[1] <= 4 and not x.is_contiguous() and nhwc.is_contiguous():
        result = torch.empty_like(nhwc)
        for src, dst in zip(nhwc.numpy(), result.numpy()):
            cv2.sepFilter2D(src, -1, k, k, dst=dst, borderType=border)
        return result.permute(0, 3, 1, 2)
    out = _output(x, out)
    for src, dst in zip(_planes(x), _planes(out)):
        cv2.sepFilter2D(src, -1, k, k, dst=dst, borderType=border)
    return out


@functools.lru_cache(maxsize=32)
def _spectrum(key: bytes, kh: int, kw: int, fh: int, fw: int) -> np.ndarray:
    """OpenCV's packed DFT (fh, fw) of the (kh, kw) float32 kernel in ``key``, flipped (the DFT convolves)."""
    buf = np.zeros((fh, fw), dtype=np.float32)
    buf[:kh, :kw] = np.frombuffer(key, dtype=np.float32).reshape(kh, kw)[::-1, ::-1]
    return _cv2().dft(buf)


def correlate_dft(x: torch.Tensor, kernel: torch.Tensor, size: tuple, mode: str = REFLECT_101, out=None) -> torch.Tensor:
    """Correlate every plane of float32 (N, C, H, W) ``x`` with the odd (kh, kw) ``kernel``, borders extended
    by ``mode``, 'same' output, through OpenCV's DFT of ``size`` = (fh, fw) >= the padded plane (so no
    output pixel wraps around): what :func:`~.corruption_ops._conv_same_fft` computes with torch.fft."""
    cv2 = _ready()
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    h, w = x.shape[-2:]
    fh, fw = size
    if fh < h + 2 * ph or fw < w + 2 * pw:
        raise ValueError(f"DFT size {size} is smaller than the padded plane {(h + 2 * ph, w + 2 * pw)}")
    spec = _spectrum(kernel.detach().float().cpu().contiguous().numpy().tobytes(), kh, kw, fh, fw)
    out = _output(x, out)
    border = _border(mode)
    buf = np.zeros((fh, fw), dtype=np.float32)  # zero beyond the padded plane, which every plane overwrites
    padded = buf[:h + 2 * ph, :w + 2 * pw]
    for src, dst in zip(_planes(x), _planes(out)):
        padded[...] = cv2.copyMakeBorder(src, ph, ph, pw, pw, border)
        spectrum = cv2.mulSpectrums(cv2.dft(buf, nonzeroRows=h + 2 * ph), spec, 0)
        dst[...] = cv2.idft(spectrum, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE)[kh - 1:kh - 1 + h, kw - 1:kw - 1 + w]
    return out


# OpenCV's filter2D takes its DFT for float kernels of 130 cells or more (dftFilter2D); below that its
# direct path visits only the kernel's non-zero cells
_DIRECT_CELLS = 129


def _compact_kernels(taps: dict) -> list:
    """``taps`` {(dy, dx): weight}, in order along the line, as kernels of at most :data:`_DIRECT_CELLS`
    cells: [(dy0, dx0, kernel)], each kernel's cell (i, j) the weight of offset (dy0 + i, dx0 + j)."""
    groups, group, box = [], [], None
    for (dy, dx), w in taps.items():
        grown = (dy, dx, dy, dx) if box is None else (min(box[0], dy), min(box[1], dx), max(box[2], dy), max(box[3], dx))
        if group and (grown[2] - grown[0] + 1) * (grown[3] - grown[1] + 1) > _DIRECT_CELLS:
            groups.append((box, group))
            group, grown = [], (dy, dx, dy, dx)
        group.append((dy, dx, w))
        box = grown
    groups.append((box, group))
    kernels = []
    for (y0, x0, y1, x1), group in groups:
        kernel = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.float32)
        for dy, dx, w in group:
            kernel[dy - y0, dx - x0] += w
        kernels.append((y0, x0, kernel))
    return kernels


def shifted_sum(x: torch.Tensor, taps: Sequence[dict], out=None) -> torch.Tensor:
    """For every image j of float32 (N, C, H, W) ``x``: the sum over ``taps[j]`` = {(dy, dx): weight} of
    weight * x[j] read at (y + dy, x + dx), borders replicated (into ``out`` when given). A line blur's
    shifted copies as OpenCV's direct 2-D filter, per plane, on as few kernels of at most 129 cells as the
    taps' spread needs (one or two for a 26-tap line): its sparse inner loop instead of one pass over the
    plane per tap. Equal up to float rounding to the shifted, weighted copies of
    :func:`~.corruption_ops._motion_blur`."""
    cv2 = _ready()
    n, c, h, w = x.shape
    out = _output(x, out)
    planes, results = _planes(x).reshape(n, c, h, w), _planes(out).reshape(n, c, h, w)
    for j in range(n):
        kernels = _compact_kernels(taps[j])
        pad = max(max(abs(dy), abs(dx)) for dy, dx in taps[j])
        for src, dst in zip(planes[j], results[j]):
            padded = cv2.copyMakeBorder(src, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            for k, (y0, x0, kernel) in enumerate(kernels):
                kh, kw = kernel.shape
                # every output pixel reads its whole window inside the padded plane: anchor at the top left
                window = padded[pad + y0:pad + y0 + h + kh - 1, pad + x0:pad + x0 + w + kw - 1]
                part = cv2.filter2D(window, -1, kernel, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)[:h, :w]
                if k == 0:
                    dst[...] = part
                else:
                    np.add(dst, part, out=dst)
    return out


def pixelate(x: torch.Tensor, size: tuple, out=None) -> torch.Tensor:
    """Every plane of float32 (N, C, H, W) ``x`` area-downsampled to ``size`` = (h, w) and upsampled
    back to (H, W) by nearest neighbour with pixel centres aligned (into ``out`` when given)."""
    cv2 = _ready()
    h, w = x.shape[-2:]
    out = _output(x, out)
    small = np.empty(size, dtype=np.float32)
    for src, dst in zip(_planes(x), _planes(out)):
        cv2.resize(src, (size[1], size[0]), dst=small, interpolation=cv2.INTER_AREA)
        cv2.resize(small, (w, h), dst=dst, interpolation=cv2.INTER_NEAREST_EXACT)
    return out


def jpeg_roundtrip(x: torch.Tensor, quality: int, out=None) -> torch.Tensor:
    """Float32 (N, C, H, W) in [0, 1], C = 1 or 3 (RGB), rounded to uint8, JPEG-encoded at ``quality``
    (libjpeg's defaults: 4:2:0 chroma subsampling, the integer DCT) and decoded, as float in [0, 1]
    (into ``out`` when given)."""
    cv2 = _ready()
    n, c, h, w = x.shape
    out = _output(x, out)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    pixels = np.empty((h, w, c), dtype=np.float32)
    levels = np.empty((h, w, c) if c > 1 else (h, w), dtype=np.uint8)
    decode = cv2.IMREAD_COLOR if c == 3 else cv2.IMREAD_GRAYSCALE
    for src, dst in zip(x.contiguous().numpy(), out.numpy()):
        if c == 3:
            # OpenCV codes BGR: the planes are merged in reverse order and split back the same way
            cv2.merge([src[2], src[1], src[0]], dst=pixels)
            cv2.convertScaleAbs(pixels, dst=levels, alpha=255.0)  # round to nearest, saturate to 0..255
        else:
            cv2.convertScaleAbs(src[0], dst=levels, alpha=255.0)
        ok, code = cv2.imencode(".jpg", levels, params)
        if not ok:
            raise RuntimeError("OpenCV's JPEG encoder failed")
        decoded = cv2.imdecode(code, decode)
        for ch, plane in enumerate(cv2.split(decoded)[::-1] if c == 3 else [decoded]):
            np.divide(plane, np.float32(255.0), out=dst[ch])  # in float32, cast and divided in one pass
    return out


_EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)


def canny_edges(levels: torch.Tensor, high: float) -> torch.Tensor:
    """OpenCV's Canny edges, bool (N, 1, H, W), of ``levels`` (N, 1, H, W), integer-valued float in
    0..255, with both thresholds at ``high`` (so without hysteresis, as
    :func:`~.corruption_ops._drop_edges`, which it equals)."""
    cv2 = _ready()
    out = torch.empty(levels.shape, dtype=torch.bool)
    u8 = np.empty(levels.shape[-2:], dtype=np.uint8)
    for src, dst in zip(_planes(levels), out.numpy().reshape(-1, *levels.shape[-2:])):
        np.copyto(u8, src, casting="unsafe")
        np.copyto(dst, cv2.Canny(u8, high, high), casting="unsafe")
    return out


def edge_distance(edges: torch.Tensor, r: int) -> torch.Tensor:
    """OpenCV's distance transform (DIST_L2, the 5x5 mask), float (N, 1, H, W), from every pixel to the
    nearest of the bool ``edges`` (N, 1, H, W), cut at ``r``: the reference's step, which
    :func:`~.corruption_ops._edge_distance` computes with torch."""
    cv2 = _ready()
    out = torch.empty(edges.shape, dtype=torch.float32)
    not_edge = np.empty(edges.shape[-2:], dtype=np.uint8)
    for src, dst in zip(edges.contiguous().numpy().reshape(-1, *edges.shape[-2:]), _planes(out)):
        np.logical_not(src, out=not_edge.view(bool))  # 1 off the edges, 0 on them
        cv2.distanceTransform(not_edge, cv2.DIST_L2, 5, dst=dst)
        np.minimum(dst, np.float32(r), out=dst)
    return out


def drop_shading(dist: torch.Tensor) -> torch.Tensor:
    """The water drops' shading (N, 1, H, W), integer-valued float in 0..255, from the distance to the
    drop edges ``dist`` (N, 1, H, W), float, already cut: the reference's OpenCV steps after its
    distance transform (3x3 box blur truncated to uint8, histogram equalisation, the emboss filter
    saturated to uint8, 3x3 box blur rounded to uint8), equal to the torch steps of
    :func:`~.corruption_ops._water_drops`."""
    cv2 = _ready()
    out = torch.empty_like(dist, memory_format=torch.contiguous_format)
    u8 = np.empty(dist.shape[-2:], dtype=np.uint8)
    for src, dst in zip(_planes(dist), _planes(out)):
        np.copyto(u8, cv2.blur(src, (3, 3)), casting="unsafe")  # truncation, as the reference's astype(np.uint8)
        np.copyto(dst, cv2.blur(cv2.filter2D(cv2.equalizeHist(u8), cv2.CV_8U, _EMBOSS), (3, 3)))
    return out

"""The fast paths of the corruptions compute what the plain definitions compute.

Each fast path (chunked batches, FFT / matrix / shifted-sum convolutions, the dyadic fractal, the
table Poisson sampler, geometric-gap impulse positions) is checked against a direct implementation
written here, or against the exact distribution.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import synthclone.robustness.corruption_ops as C


def _direct_conv(x, kernel, mode="reflect"):
    """Depthwise 'same' correlation with F.conv2d, the definition the fast paths must match."""
    c = x.shape[1]
    kh, kw = kernel.shape
    xp = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode=mode)
    return F.conv2d(xp, kernel.view(1, 1, kh, kw).repeat(c, 1, 1, 1), groups=c)


def test_fft_convolution_equals_the_direct_one():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 90, 77, generator=g)
    kernel = torch.rand(13, 11, generator=g)  # asymmetric: catches a missing flip
    for mode in ("reflect", "replicate"):
        direct = _direct_conv(x, kernel, mode)
        assert C._cpu_large(x)  # OpenCV's DFT
        assert torch.allclose(C._conv_same_fft(x, kernel, mode), direct, atol=2e-5)
        # torch.fft, the GPU's path, at the same and at a longer transform
        for size in [(C._fft_len(90 + 12), C._fft_len(77 + 10)), (128, 96)]:
            assert torch.allclose(C._conv_same_fft_torch(x, kernel, mode, size), direct, atol=2e-5)


@pytest.mark.parametrize("sigma", [0.7, 3.0, 9.0])  # torch: shifted sums, shifted sums, matrix products
def test_gaussian_filter_equals_the_direct_separable_convolution(sigma):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 2, 96, 80, generator=g)
    k = C._gauss1d(sigma, max_radius=79)
    direct = _direct_conv(x, torch.outer(k, k))
    assert C._cpu_large(x)  # OpenCV's kernel
    assert torch.allclose(C.gaussian_filter(x, sigma), direct, atol=2e-5)
    assert torch.allclose(C._gaussian_filter_torch(x, sigma), direct, atol=2e-5)  # the GPU's path
    small = x[..., :40, :40]
    assert not C._cpu_large(small)
    k = C._gauss1d(sigma, max_radius=39)
    assert torch.allclose(C.gaussian_filter(small, sigma), _direct_conv(small, torch.outer(k, k)), atol=2e-5)


def test_opencv_kernels_equal_the_torch_steps():
    # every step OpenCV runs on the CPU at large sizes against the torch steps the GPU and small images run
    from synthclone.robustness import cpu_kernels

    g = torch.Generator().manual_seed(7)
    x = torch.rand(2, 3, 96, 80, generator=g)
    sigma = 2.5
    r = int(math.ceil(4 * sigma))
    replicated = C._gaussian_filter_torch(F.pad(x, (r, r, r, r), mode="replicate"), sigma)[..., r:-r, r:-r]
    assert torch.allclose(C._blur_replicated(x, sigma), replicated, atol=2e-6)
    field = torch.rand(2, 96, 80, 2, generator=g)
    taps = C._gauss1d(sigma, 3.0).tolist()
    by_plane = C._gaussian_filter_torch(field.permute(0, 3, 1, 2), sigma, 3.0).permute(0, 2, 3, 1)
    channels_last = cpu_kernels.separable_filter(field.permute(0, 3, 1, 2), taps).permute(0, 2, 3, 1)
    assert channels_last.is_contiguous()  # filtered as it lies
    assert torch.allclose(channels_last, by_plane, atol=2e-6)
    for size in [(57, 40), (48, 40), (13, 11)]:  # fractional, integer and coarse footprints
        small = torch.matmul(C._area_matrix(size[0], 96), torch.matmul(x, C._area_matrix(size[1], 80).T))
        torch_path = F.interpolate(small, size=(96, 80), mode="nearest-exact")
        assert torch.allclose(cpu_kernels.pixelate(x, size), torch_path, atol=1e-6)
    noise = C._blur_replicated(torch.randn(2, 1, 96, 128, generator=g) * 0.3 + 0.65, 3.0)
    u = (noise * (noise >= 0.68)).mul(255).floor()
    edges = C._drop_edges(u)
    assert edges.sum() > 100 and torch.equal(cpu_kernels.canny_edges(u, C._CANNY_HIGH), edges)
    dist = C._edge_distance(edges, 20)
    assert torch.allclose(cpu_kernels.edge_distance(edges, 20), dist, atol=1e-5)  # float path sums
    shade = C._box3(C._emboss(C._equalize(C._box3(dist).floor_(), 21))).round_()
    assert torch.equal(cpu_kernels.drop_shading(dist), shade)


def test_jpeg_is_pils():
    # the reference's JPEG is PIL's save / open at the same quality: bit for bit (both libjpeg-turbo)
    import io

    import numpy as np
    from PIL import Image

    g = torch.Generator().manual_seed(8)
    levels = F.interpolate(torch.rand(2, 3, 24, 20, generator=g), size=(96, 80), mode="bilinear")
    x = levels.mul(255).round_().div_(255)
    for i in range(2):
        for channels in (3, 1):
            pixels = x[i, :channels].mul(255).round().byte().permute(1, 2, 0).squeeze(-1).numpy()
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, "JPEG", quality=15)  # severity 3
            theirs = np.asarray(Image.open(buf)).astype(np.float32) / 255
            one = x[i:i + 1, :channels]
            assert C._cpu_large(one)  # OpenCV's codec; torchvision's runs small and GPU images
            ours = C.jpeg_compression(one, 3, g)[0].permute(1, 2, 0).squeeze(-1).numpy()
            assert np.array_equal(ours, theirs)
            small = one[..., :40, :40]
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(pixels[:40, :40])).save(buf, "JPEG", quality=80)  # small table, severity 1
            theirs = np.asarray(Image.open(buf)).astype(np.float32) / 255
            assert np.array_equal(C.jpeg_compression(small, 1, g)[0].permute(1, 2, 0).squeeze(-1).numpy(), theirs)


@pytest.mark.parametrize("radius, sigma", [(9.0, 4.0), (15.0, 8.0)])  # 14 and 26 taps
def test_motion_blur_shifted_sums_equal_the_dense_line_kernels(radius, sigma):
    from synthclone.robustness import cpu_kernels

    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 3, 80, 72, generator=g)  # above 64 x 64: the shifted-sum paths
    angles = torch.tensor([-45.0, 7.3, 21.0, 45.0])
    assert C._cpu_large(x)  # OpenCV's sparse filter
    fast = C._motion_blur(x, radius, sigma, angles)
    on_gpu_path = C._motion_blur(x.double(), radius, sigma, angles)  # torch's shifted copies
    kernels = C._motion_kernels(radius, sigma, angles)
    for i in range(4):
        dense = _direct_conv(x[i:i + 1], kernels[i], mode="replicate")
        assert torch.allclose(fast[i:i + 1], dense, atol=2e-6)
        assert torch.allclose(on_gpu_path[i:i + 1].float(), dense, atol=2e-6)
    if radius == 15.0:  # the 45-degree line spans 19 x 19 cells: more than one direct kernel
        w, dy, dx = C._motion_taps(radius, sigma, angles[-1:])
        taps = {(-a, -b): float(wi) for wi, a, b in zip(w.tolist(), dy[0].tolist(), dx[0].tolist())}
        assert len(cpu_kernels._compact_kernels(taps)) > 1


@pytest.mark.parametrize("cells", [2, 3, 9, 129])
def test_dyadic_refinement_is_bilinear_upsampling(cells):
    c = torch.rand(2, 1, cells, cells + 4, generator=torch.Generator().manual_seed(cells))
    size = (2 * cells - 1, 2 * cells + 7)
    exact = F.interpolate(c.double(), size=size, mode="bilinear", align_corners=True)
    assert torch.allclose(C._refine_dyadic(c).double(), exact, rtol=0, atol=1.5e-7)  # float32 rounding


def test_dyadic_fractal_equals_the_sum_of_upsampled_octaves():
    size, decay = 40, 1.7
    fast = C._fractal(2, size, decay, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    out = torch.zeros(2, 1, size, size)
    grids = [2 ** k + 1 for k in range(int(math.ceil(math.log2(size))) + 1)]
    nodes = C._uniform16((2, sum(c * c for c in grids)), g, -1.0, 1.0)  # all octaves in one draw, per image
    amp, start = 1.0, 0
    for cells in grids:
        noise = nodes[:, start:start + cells * cells].reshape(2, 1, cells, cells) * amp
        start += cells * cells
        out += F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=True)
        amp /= decay
    lo, hi = out.amin(dim=(2, 3), keepdim=True), out.amax(dim=(2, 3), keepdim=True)
    assert torch.allclose(fast, (out - lo) / (hi - lo + 1e-8), atol=1e-5)


@pytest.mark.parametrize("name", ["defocus_blur", "zoom_blur", "contrast", "saturate", "pixelate"])
def test_chunking_leaves_deterministic_corruptions_unchanged(monkeypatch, name):
    x = torch.rand(5, 3, 72, 72, generator=torch.Generator().manual_seed(4))
    whole = C.corrupt(x, name, 3, torch.Generator().manual_seed(0))
    monkeypatch.setattr(C, "CHUNK_VALUES", 2 * x[0].numel())  # chunks of 2, 2, 1 images
    chunked = C.corrupt(x, name, 3, torch.Generator().manual_seed(0))
    assert torch.allclose(whole, chunked, atol=1e-6)


def test_chunked_random_corruptions_are_deterministic_and_differ_per_image(monkeypatch):
    monkeypatch.setattr(C, "CHUNK_VALUES", 1)  # one image per chunk
    x = torch.full((4, 1, 72, 72), 0.5)
    a = C.corrupt(x, "gaussian_noise", 3, torch.Generator().manual_seed(5))
    b = C.corrupt(x, "gaussian_noise", 3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # each chunk draws its own noise


@pytest.mark.parametrize("c", [3.0, 60.0])
def test_two_level_poisson_table_is_inversion_at_every_16_bit_step(c):
    cells, rows = C._poisson_table(c)
    K = int(c + 12 * math.sqrt(c) + 30)
    mids = (torch.arange(2 ** 16, dtype=torch.float64) + 0.5) / 2 ** 16
    for lvl in [0, 1, 128, 255]:
        lam = lvl * c / 255
        ks = torch.arange(K, dtype=torch.float64)
        pmf = torch.exp(ks * math.log(max(lam, 1e-300)) - lam - torch.lgamma(ks + 1))
        cdf = (pmf / pmf.sum()).cumsum(0) if lvl else torch.ones(K, dtype=torch.float64)
        cdf[-1] = 1.0
        step = torch.arange(2 ** 16, dtype=torch.int32) + lvl * 2 ** 16
        got = rows[cells[step >> 6] + (step & 63)]
        assert torch.equal(got.long(), torch.searchsorted(cdf, mids, right=True))


@pytest.mark.parametrize("c", [3.0, 12.0, 60.0, 500.0])
def test_table_poisson_sampler_is_poisson(c):
    g = torch.Generator().manual_seed(6)
    for lvl in [1, 77, 255]:
        lam = lvl * c / 255
        s = C._poisson_on_grid(torch.full((200_000,), float(lvl)), c, g).double()
        assert s.mean().item() == pytest.approx(lam, abs=5 * math.sqrt(lam / 200_000))
        # the sample variance's relative standard error is about sqrt((2 + 1 / lam) / n)
        assert s.var().item() == pytest.approx(lam, rel=5 * math.sqrt((2 + 1 / lam) / len(s)))
        # chi-square against the exact pmf over the well-populated values
        ks = torch.arange(int(lam + 12 * math.sqrt(lam) + 30), dtype=torch.float64)
        pmf = torch.exp(ks * math.log(lam) - lam - torch.lgamma(ks + 1))
        counts = torch.bincount(s.long(), minlength=len(ks))[:len(ks)].double()
        expected = pmf * len(s)
        m = expected >= 20
        chi2 = float(((counts[m] - expected[m]) ** 2 / expected[m]).sum())
        dof = int(m.sum()) - 1
        assert chi2 < dof + 6 * math.sqrt(2 * dof) + 10, (c, lvl, chi2, dof)


def test_shot_noise_uses_the_table_on_the_uint8_grid_and_poisson_off_it():
    on = torch.full((1, 1, 100, 100), 128 / 255)
    off = torch.full((1, 1, 100, 100), 0.5 + 1e-4)
    for x in (on, off):
        y = C.corrupt(x, "shot_noise", 1, torch.Generator().manual_seed(7))  # 100 px: c = 60, no clipping to speak of
        counts = y * 60
        assert torch.allclose(counts, counts.round(), atol=1e-4)  # integer photon counts
        assert counts.mean().item() == pytest.approx(60 * float(x[0, 0, 0, 0]), rel=0.01)
        assert counts.var().item() == pytest.approx(60 * float(x[0, 0, 0, 0]), rel=0.06)


def test_coarse_uniforms_and_coin_flips_are_uniform():
    g = torch.Generator().manual_seed(13)
    u = C._uniform16((400_000,), g, -2.0, 2.0)
    assert float(u.min()) > -2 and float(u.max()) < 2
    assert len(torch.unique(u)) > 60_000  # 2^16 levels, nearly all hit
    counts = torch.histc(u, bins=64, min=-2, max=2)
    expected = len(u) / 64
    assert float(((counts - expected) ** 2 / expected).sum()) < 63 + 6 * math.sqrt(2 * 63)  # chi-square, 63 dof
    assert float(u.mean()) == pytest.approx(0.0, abs=5 * (4 / math.sqrt(12)) / math.sqrt(len(u)))
    for lane in range(4):  # each 16-bit field of the words on its own
        part = u[lane::4]
        assert abs(float((part > 0).float().mean()) - 0.5) < 5 * 0.5 / math.sqrt(len(part))
    flips = C._coin_flips(100_003, g).float()
    assert flips.shape == (100_003,) and float(flips.mean()) == pytest.approx(0.5, abs=5 * 0.5 / math.sqrt(len(flips)))
    assert float((flips[1:] == flips[:-1]).float().mean()) == pytest.approx(0.5, abs=0.01)  # neighbours independent
    assert float(flips[63::64].mean()) == pytest.approx(0.5, abs=0.03)  # the top (sign) bit of each word too


def test_bernoulli_positions():
    g = torch.Generator().manual_seed(8)
    n, p = 300_000, 0.09
    pos = C._bernoulli_positions(n, p, g)
    assert torch.all(pos[1:] > pos[:-1]) and int(pos[0]) >= 0 and int(pos[-1]) < n
    assert abs(len(pos) - n * p) < 5 * math.sqrt(n * p * (1 - p))
    # hits are independent: the gaps are geometric with mean 1/p
    gaps = (pos[1:] - pos[:-1]).double()
    assert gaps.mean().item() == pytest.approx(1 / p, rel=0.02)
    assert gaps.var().item() == pytest.approx((1 - p) / p ** 2, rel=0.05)
    assert len(C._bernoulli_positions(1000, 0.0, g)) == 0
    assert len(C._bernoulli_positions(1000, 1.0, g)) == 1000


def test_impulse_noise_fractions():
    x = torch.full((1, 3, 200, 200), 0.5)
    y = C.corrupt(x, "impulse_noise", 5, torch.Generator().manual_seed(9))  # c = 0.27 at > 64 px
    zeros, ones = float((y == 0).float().mean()), float((y == 1).float().mean())
    assert zeros == pytest.approx(0.135, abs=0.006) and ones == pytest.approx(0.135, abs=0.006)


@pytest.mark.parametrize("size", [28, 72])
def test_no_corruption_writes_into_its_input(size):
    # the fast paths work in place on their own buffers; corrupt() hands float32 input through as is
    for channels in (1, 3):
        x = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(10))
        before = x.clone()
        for name in C.ALL:
            C.corrupt(x, name, 4, torch.Generator().manual_seed(0))
            assert torch.equal(x, before), name


def test_empty_output_is_a_plain_writable_tensor():
    small = C.empty_output((2, 3, 8, 8))
    big = C.empty_output((40, 3, 224, 224))  # 24 MB: takes the huge-page advice path on Linux
    for t in (small, big):
        assert t.dtype == torch.float32 and t.is_contiguous()
        t.fill_(0.25)
        assert float(t.sum()) == pytest.approx(0.25 * t.numel())


@pytest.mark.parametrize("size", [40, 72])  # torch's paths; OpenCV's (on the CPU above 64 px)
@pytest.mark.parametrize("n", [1, 5])  # one chunk, and several (chunks of 2, 2, 1)
def test_corrupt_into_a_given_buffer_equals_a_fresh_result(monkeypatch, n, size):
    # the corruptions in WRITES_OUT write straight into corrupt()'s buffer, the others are copied there;
    # a buffer that is x itself (in place) or not contiguous takes the copy
    monkeypatch.setattr(C, "CHUNK_VALUES", 2 * 3 * size * size)
    assert C.WRITES_OUT >= set(C.ALL) - {"shot_noise", "defocus_blur", "elastic_transform"}
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(12)).mul_(255).round_().div_(255)
    for name in C.ALL:
        fresh = C.corrupt(x, name, 2, torch.Generator().manual_seed(1))
        buf = torch.full_like(x, -1.0)
        assert C.corrupt(x, name, 2, torch.Generator().manual_seed(1), out=buf) is buf
        assert torch.equal(buf, fresh), name
        strided = torch.full((n, 3, size, size + 1), -1.0)[..., :size]
        C.corrupt(x, name, 2, torch.Generator().manual_seed(1), out=strided)
        assert torch.equal(strided, fresh), name
        same = x.clone()
        C.corrupt(same, name, 2, torch.Generator().manual_seed(1), out=same)
        assert torch.equal(same, fresh), name
    with pytest.raises(ValueError, match="out must be float32"):
        C.corrupt(x, "contrast", 1, torch.Generator(), out=torch.empty(n, 3, size, size + 1))


def test_fogs_field_is_the_top_left_of_the_references_map_size_scaled_over_the_whole_map():
    # ImageNet-C cuts its 256-px plasma map to 224 px after scaling the map to [0, 1]; 200 px still takes 256
    def scaled(h, w):
        field, lo, span = C._fractal_map(2, h, w, 1.7, torch.Generator().manual_seed(5))
        return (field - lo) / span

    whole = scaled(256, 256)
    for h, w in [(224, 224), (200, 256), (129, 140)]:
        cut = scaled(h, w)
        assert cut.shape == (2, 1, h, w)
        assert torch.equal(cut, whole[..., :h, :w])
    assert whole.amin().item() == 0.0 and abs(whole.amax().item() - 1.0) < 1e-6


def test_random_words_follow_the_generator_and_carry_64_fair_bits():
    from synthclone.robustness.core import random_bits_on

    words = random_bits_on(50_000, torch.Generator().manual_seed(1))
    assert words.dtype == torch.int64 and torch.equal(words, random_bits_on(50_000, torch.Generator().manual_seed(1)))
    g = torch.Generator().manual_seed(1)
    assert not torch.equal(random_bits_on(1000, g), random_bits_on(1000, g))  # each call moves g on
    bits = torch.bitwise_right_shift(words.view(-1, 1), torch.arange(64)).bitwise_and_(1).double()
    per_position = bits.mean(0)
    assert float((per_position - 0.5).abs().max()) < 5 * 0.5 / math.sqrt(len(words))  # every bit, the sign too
    pairs = (bits[:, :-1] == bits[:, 1:]).double().mean(0)  # neighbouring bits independent
    assert float((pairs - 0.5).abs().max()) < 5 * 0.5 / math.sqrt(len(words))


def test_the_table_normal_is_the_normal_at_16_bits():
    g = torch.Generator().manual_seed(11)
    z = C._normal((400_000,), g).double()
    n = len(z)
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert float(z.var()) == pytest.approx(1.0, abs=5 * math.sqrt(2 / n))
    assert float(z.abs().max()) <= 4.34  # the quantile of the last step's midpoint
    for t in (-3.0, -2.0, -1.0, -0.3, 0.0, 0.5, 1.0, 2.0, 3.0):
        phi = 0.5 * math.erfc(-t / math.sqrt(2))
        assert float((z <= t).double().mean()) == pytest.approx(phi, abs=5 * math.sqrt(phi * (1 - phi) / n) + 2 ** -16)
    table = C._normal_table(0.0, 1.0)
    assert len(torch.unique(table)) == 2 ** 16 and bool(torch.all(table[1:] > table[:-1]))
    shifted = C._normal((1000, 3), torch.Generator().manual_seed(2), 3.0, 2.0)
    assert torch.allclose(shifted, 3.0 + 2.0 * C._normal((1000, 3), torch.Generator().manual_seed(2)), atol=1e-6)


def test_the_first_word_of_a_fresh_state_is_uniform_in_its_top_bits():
    # the state comes from 63-bit draws: without the warm-up rounds the first word would be a + b + 1 of
    # two 63-bit uniforms, whose top two bits are 11 an eighth of the time instead of a quarter
    from synthclone.robustness.core import random_bits_on

    first = torch.cat([random_bits_on(1, torch.Generator().manual_seed(s)) for s in range(4000)])
    top2 = torch.bitwise_right_shift(first, 62).bitwise_and_(3)
    counts = torch.bincount(top2, minlength=4).double()
    assert float((counts - 1000).abs().max()) < 5 * math.sqrt(4000 * 0.25 * 0.75)


def test_glass_offsets_table_keeps_every_probability_within_2_to_the_minus_16():
    offsets, cdf = C._glass_offsets(2, 3, 96, 96, copy=True)
    same, table = C._glass_table(2, 3, 96, 96, copy=True)
    assert torch.equal(same, offsets)
    probs = torch.diff(cdf.double(), prepend=torch.zeros(1, dtype=torch.float64))
    from_table = torch.bincount(table.long(), minlength=len(offsets)).double() / 2 ** 16
    assert float((from_table - probs).abs().max()) <= 2 ** -16 + 1e-7

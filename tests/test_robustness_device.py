"""Probes, corruptions and attacks compute on the model's device, without a GPU to test on.

A device bug is a tensor left on the CPU that meets one on the GPU (a kernel, a grid, a table, a
random draw, an index), a generator used on the wrong device, or a result that lands elsewhere.
On a CPU-only machine these tests make the GPU up: :class:`_OnGPU` is a dispatch mode under which
``device="cuda"`` tensors are :class:`_GPUTensor` wrappers of real CPU tensors that report
``cuda:0``. Every op runs on the real data (so data-dependent code runs too) after the mode checked
what CUDA checks: no CPU tensor of one or more dimensions meets a device tensor (except in copies;
a little stricter than CUDA, which also takes CPU index tensors), and no CPU generator drives a
device op. So the code runs exactly its GPU path (pinned buffers and all), raises where a GPU
would raise, and gives numbers that must equal the CPU run's bit for bit: the random numbers are
drawn on the CPU in the same order either way (up to float rounding for the corruptions whose CPU run
takes OpenCV's kernels, ``corruption_ops.OPENCV_ON_CPU``, on large images). (FakeTensorMode checks devices too but has no data,
so it cannot run ``.tolist()``, ``nonzero`` or the JPEG codec.)

Limits: the autograd engine insists on a real GPU, so in the attack test the one call into it
(:func:`~synthclone.robustness.adversarial._grad`) takes the gradient on the CPU data after checking
that model, images and labels are all on the device. Speed and float differences of real GPU
kernels are not tested here (benchmarks/bench_corruptions.py --device cuda measures them).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_leaves, tree_map

import synthclone.device as device_mod
from synthclone.data.images import ImageSet
from synthclone.device import module_device
from synthclone.models import create_model
from synthclone.robustness import BenchSettings, run_probes
from synthclone.robustness import adversarial as A
from synthclone.robustness import corruption_ops as C
from synthclone.robustness import corruptions as CS
from synthclone.robustness.background import build_backgrounds
from synthclone.robustness.core import cpu_chunk, predict
from synthclone.robustness.shape_bias import build_cue_conflict
from synthclone.robustness.stimuli import procedural_textures

GPU = torch.device("cuda", 0)
aten = torch.ops.aten


class DeviceMismatch(AssertionError):
    pass


class _GPUTensor(torch.Tensor):
    """A real CPU tensor (``.elem``) that reports ``cuda:0``."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        r = torch.Tensor._make_wrapper_subclass(cls, elem.size(), strides=elem.stride(),
                                                storage_offset=elem.storage_offset(), dtype=elem.dtype,
                                                layout=elem.layout, device=GPU, requires_grad=elem.requires_grad)
        r.elem = elem
        return r

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __repr__(self):
        return f"_GPUTensor({self.elem!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        # reached outside the mode (e.g. a parameter used after the test); the same rules apply
        return _OnGPU().__torch_dispatch__(func, types, args, kwargs)


class _OnGPU(TorchDispatchMode):
    """Runs every op on CPU data with CUDA's device rules; logs host-to-device copies."""

    pinned: dict = {}  # data_ptr -> the pinned tensor, held so that no other tensor gets its address
    copies: list = []  # (dtype, shape, from pinned memory, non_blocking) of every CPU -> cuda copy

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        leaves = tree_leaves((args, kwargs))
        tensors = [a for a in leaves if isinstance(a, torch.Tensor)]
        any_gpu = any(isinstance(a, _GPUTensor) for a in tensors)
        dev = kwargs.get("device")
        dev = None if dev is None else torch.device(dev)
        to_gpu = dev is not None and dev.type == "cuda"
        if func in (aten._pin_memory.default,):
            out = args[0].clone()
            _OnGPU.pinned[out.data_ptr()] = out
            return out
        if func in (aten.is_pinned.default,):
            return args[0].data_ptr() in _OnGPU.pinned
        cpu = [a for a in tensors if not isinstance(a, _GPUTensor) and a.dim() > 0]
        if any_gpu and cpu and func not in (aten._to_copy.default, aten.copy_.default):
            raise DeviceMismatch(f"{func}: a CPU tensor of shape {tuple(cpu[0].shape)} meets a cuda tensor")
        if (any_gpu or to_gpu) and any(isinstance(a, torch.Generator) and a.device.type == "cpu" for a in leaves):
            raise DeviceMismatch(f"{func}: a CPU generator drives an op on the cuda device")
        pin = bool(kwargs.pop("pin_memory", False))
        if to_gpu:
            kwargs["device"] = torch.device("cpu")
            if func is aten._to_copy.default and not isinstance(args[0], _GPUTensor):
                _OnGPU.copies.append((args[0].dtype, tuple(args[0].shape), args[0].data_ptr() in _OnGPU.pinned,
                                      bool(kwargs.get("non_blocking"))))
        first = args[0] if args else None
        out = func(*tree_map(lambda a: a.elem if isinstance(a, _GPUTensor) else a, args),
                   **tree_map(lambda a: a.elem if isinstance(a, _GPUTensor) else a, kwargs))
        if func is aten.copy_.default:
            return first
        if pin and isinstance(out, torch.Tensor):
            _OnGPU.pinned[out.data_ptr()] = out
        wrap = to_gpu or (any_gpu and dev is None)
        return tree_map(lambda t: _GPUTensor(t) if wrap and type(t) is torch.Tensor else t, out)


@pytest.fixture
def on_gpu(monkeypatch):
    """A context manager: inside it ``cuda:0`` exists (see the module docstring)."""

    @contextlib.contextmanager
    def spoof():
        monkeypatch.setattr(torch.cuda, "_lazy_init", lambda: None)
        torch._C._ensureCUDADeviceGuardSet()
        lift = torch._C._only_lift_cpu_tensors()
        overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
        torch._C._set_only_lift_cpu_tensors(True)  # torch.tensor(data, device=cuda) builds on the CPU, then copies
        torch.__future__.set_overwrite_module_params_on_conversion(True)  # Module.to wraps parameters anew
        _OnGPU.pinned.clear()
        _OnGPU.copies.clear()
        try:
            with torch.backends.cudnn.flags(enabled=False), _OnGPU():
                yield
        finally:
            _OnGPU.pinned.clear()
            torch._C._set_only_lift_cpu_tensors(lift)
            torch.__future__.set_overwrite_module_params_on_conversion(overwrite)

    return spoof


def _images(n, c, size, seed=0):
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


# 28 px grey takes the small-image paths (dense kernels), 160 px RGB the large ones (FFT, matrix
# products, shifted sums)
@pytest.mark.parametrize("shape", [(3, 1, 28), (2, 3, 160)])
def test_every_corruption_runs_on_the_device_and_matches_the_cpu(on_gpu, shape):
    u8 = _images(*shape)
    x = u8.float().div(255.0)
    failures = []
    for name in C.ALL:
        for sev in (1, 5):
            cpu = C.corrupt(x, name, sev, torch.Generator().manual_seed(sev))
            try:
                with on_gpu():
                    out = C.corrupt(x.to("cuda"), name, sev, torch.Generator().manual_seed(sev))
                    where, dtype, back = out.device, out.dtype, out.cpu()
            except Exception as e:  # noqa: BLE001 — every op's failure is listed, not just the first
                failures.append(f"{name} {sev}: {type(e).__name__}: {str(e)[:200]}")
                continue
            same = torch.equal(back, cpu)
            if not same and name in C.OPENCV_ON_CPU and shape[-1] > 64:
                # OpenCV's kernels on the CPU, torch's on the GPU: equal up to float rounding, which a
                # floor to uint8 levels (glass_blur) can turn into one level on a few values
                d = (back - cpu).abs()
                same = float(d.mean()) < 1e-6 and float(d.max()) <= 1.01 / 255 and float((d > 1e-4).float().mean()) < 1e-3
            if where != GPU or dtype != torch.float32 or not same:
                failures.append(f"{name} {sev}: on {where}, {dtype}, same values: {same}")
    assert not failures, "\n".join(failures)


def test_off_grid_shot_noise_and_chunked_batches_on_the_device(on_gpu, monkeypatch):
    x = torch.rand(4, 3, 72, 72, generator=torch.Generator().manual_seed(1))  # not uint8 levels: torch.poisson
    cpu = C.corrupt(x, "shot_noise", 3, torch.Generator().manual_seed(0))
    monkeypatch.setattr(C, "CHUNK_VALUES", 2 * x[0].numel())  # chunks of 2 images into one output
    chunked = C.corrupt(x, "gaussian_noise", 2, torch.Generator().manual_seed(0))
    with on_gpu():
        assert torch.equal(C.corrupt(x.to("cuda"), "shot_noise", 3, torch.Generator().manual_seed(0)).cpu(), cpu)
        out = C.corrupt(x.to("cuda"), "gaussian_noise", 2, torch.Generator().manual_seed(0))
        assert out.device == GPU and torch.equal(out.cpu(), chunked)


def test_corrupted_sets_and_stimuli_are_built_on_the_device(on_gpu):
    u8 = _images(6, 1, 28, seed=2)
    data = ImageSet(u8, torch.arange(6) % 3, ["a", "b", "c"], [f"s{i}" for i in range(6)])
    cpu_set = CS.corrupt_set(u8, "glass_blur", 3, torch.Generator().manual_seed(0), batch_size=4)
    cpu_cue = build_cue_conflict(data, 5, torch.Generator().manual_seed(0))
    cpu_bg = build_backgrounds(data, torch.Generator().manual_seed(0))
    cpu_tex = procedural_textures(3, 3, 20, torch.Generator().manual_seed(0))
    with on_gpu():
        dev_set = CS.corrupt_set(u8, "glass_blur", 3, torch.Generator().manual_seed(0), batch_size=4, device="cuda:0")
        dev_cue = build_cue_conflict(data, 5, torch.Generator().manual_seed(0), device="cuda:0")
        dev_bg = build_backgrounds(data, torch.Generator().manual_seed(0), device="cuda:0")
        dev_tex = procedural_textures(3, 3, 20, torch.Generator().manual_seed(0), device="cuda:0")
        made = [dev_set, dev_cue[0], dev_tex] + [x for x, _ in dev_bg.values()]
        assert all(t.device == GPU for t in made)
        assert torch.equal(dev_set.cpu(), cpu_set) and torch.equal(dev_tex.cpu(), cpu_tex)
        assert torch.equal(dev_cue[0].cpu(), cpu_cue[0]) and dev_cue[3] == cpu_cue[3]
        assert all(torch.equal(dev_bg[v][0].cpu(), cpu_bg[v][0]) for v in cpu_bg)
    # the uint8 batches went to the device from pinned memory, asynchronously
    batches = [c for c in _OnGPU.copies if c[0] == torch.uint8]
    assert batches and all(pinned and non_blocking for _, _, pinned, non_blocking in batches)


_IN_STANDIN = []


@contextlib.contextmanager
def _standin():
    _IN_STANDIN.append(True)
    try:
        yield
    finally:
        _IN_STANDIN.pop()


def _grad_on_cpu_data(model, x, y):
    """:func:`adversarial._grad` for the made-up GPU: check the devices, then differentiate the CPU data."""
    if not (x.device == y.device == module_device(model) == GPU):
        raise DeviceMismatch(f"gradient of a model on {module_device(model)} at x on {x.device}, y on {y.device}")
    with _disable_current_modes(), _standin():
        state = {k: v.elem for k, v in [*model.named_parameters(), *model.named_buffers()]}
        xc = x.elem.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = torch.func.functional_call(model, state, (xc,))
            grad = torch.autograd.grad(F.cross_entropy(logits, y.elem, reduction="sum"), xc)[0]
    return _GPUTensor(grad)


@pytest.fixture(scope="module")
def probe_setup():
    from synthclone.data import load_dataset

    test = load_dataset("fashion-mnist", split="test")
    val = load_dataset("fashion-mnist", split="val")
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, classes=test.classes).eval()

    def settings(device):
        return BenchSettings(data=test, val=val.subset(range(120)), train=val.subset(range(120, 320)), limit=48,
                             batch_size=16, corruption_limit=24, corruptions=["gaussian_noise", "motion_blur", "frost"],
                             severities=[2], adversarial_limit=12, epsilons=[4 / 255], l2_epsilons=[0.5],
                             pgd_steps=2, pgd_restarts=2, shape_limit=16, background_limit=16, ood_limit=16,
                             device=device)

    return model, settings


def test_run_probes_moves_the_model_and_every_probe_runs_there(on_gpu, monkeypatch, probe_setup):
    model, settings = probe_setup
    probes = "clean,calibration,corruptions,adversarial,shape-bias,background,ood"
    cpu_rows = run_probes(model, "r8", probes, settings("cpu"))
    assert cpu_rows.attrs["device"]["device"] == "cpu"

    monkeypatch.setattr(device_mod, "cuda_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "made-up GPU")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(A, "_grad", _grad_on_cpu_data)
    seen = []
    hook = model.register_forward_pre_hook(
        lambda m, inputs: None if _IN_STANDIN else seen.append((module_device(m), inputs[0].device)))
    CS._CACHE.clear()
    try:
        with on_gpu():
            rows = run_probes(model, "r8", probes, settings("cuda"))
    finally:
        hook.remove()
        CS._CACHE.clear()
    assert rows.attrs["device"] == {"device": "cuda:0", "torch": torch.__version__, "gpu": "made-up GPU",
                                    "cuda": torch.version.cuda}
    assert seen and set(seen) == {(GPU, GPU)}  # every forward pass: the model and its input on the device
    assert module_device(model) == torch.device("cpu") and type(next(model.parameters()).data) is torch.Tensor
    assert rows.drop(columns="extra").equals(cpu_rows.drop(columns="extra"))
    assert rows["extra"].equals(cpu_rows["extra"])
    # images and image-sized random draws went to the device from pinned memory, asynchronously
    # (parameters, kernels and labels need not)
    images = [c for c in _OnGPU.copies if c[1][-2:] == (28, 28)]
    assert any(c[0] == torch.uint8 for c in images) and any(c[0] == torch.float32 for c in images)
    assert all(pinned and non_blocking for _, _, pinned, non_blocking in images)


def test_cpu_chunk_takes_the_batch_as_it_is_on_a_gpu():
    x = torch.zeros(300, 3, 224, 224)
    assert cpu_chunk(x, 256, "cuda:0") == 256
    assert cpu_chunk(x, None, "cuda:1") == 300
    assert cpu_chunk(x, 256, "cpu") == 8


def test_a_capped_cell_too_large_for_the_cache_is_streamed_with_the_same_rows(monkeypatch, probe_setup):
    model, settings = probe_setup
    s = settings("cpu")
    s.corruptions, s.batch_size = ["gaussian_noise", "zoom_blur"], 10  # 24 images: batches of 10, 10, 4
    CS._CACHE.clear()
    held = run_probes(model, "r8", "corruptions", s)
    assert len(CS._CACHE) == 2
    CS._CACHE.clear()
    monkeypatch.setattr(CS, "_CACHE_LIMIT", 1000)  # below one cell (24 x 784 x 4 bytes)

    def whole_cell(*args, **kwargs):
        raise AssertionError("a cell the cache cannot hold was made whole")

    monkeypatch.setattr(CS, "corrupt_set", whole_cell)
    streamed = run_probes(model, "r8", "corruptions", s)
    assert not CS._CACHE
    assert streamed.equals(held)


def test_predict_on_a_model_on_the_device(on_gpu, probe_setup):
    model, _ = probe_setup
    u8 = _images(20, 1, 28, seed=5)
    cpu = predict(model, u8, batch_size=8)
    with on_gpu():
        model.to("cuda:0")
        try:
            p = predict(model, u8, batch_size=8, device="cuda:0", features=True)
        finally:
            model.to("cpu")
    assert p.logits.device.type == "cpu" and p.features.device.type == "cpu"
    assert type(p.logits) is torch.Tensor and torch.equal(p.logits, cpu.logits)

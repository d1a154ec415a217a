"""GPU check: a tiny study end to end on CUDA, asserting that every model and batch lived there.

    python benchmarks/gpu_check.py [--device cuda] [--out DIR] [--json FILE] [--no-throughput]

On a machine with CUDA it makes its own data (an ImageFolder of drawn shapes, 4 classes), builds a
tiny random-weight Stable Diffusion pipeline and runs ``synthclone run`` on it with
``device: cuda``: generation (diffusers, fp16), training (a tiny timm model, bf16, channels-last)
of the real / synthetic / mixed / SSL / few-shot-guided (img2img) arms, a tiny open_clip model as
the CLIP filter, the zero-shot arm and classifier tuning, every robustness probe and the report. A forward pre-hook
on every ``torch.nn.Module`` records where each module's parameters and input tensors were; the
check fails if any forward ran with either off the device. It prints per-stage seconds and peak
GPU memory, then (unless ``--no-throughput``) the throughput figures of issue 14: tiny-pipeline
images/s, training images/s of a timm ResNet-50 at 224 px with bf16 + channels-last, and PGD and
corruption images/s. Without CUDA it says so and exits 0; ``--device cpu`` runs the same study on
the CPU (what the test suite does).

It needs torch, timm, transformers, pandas, pyarrow, scipy, scikit-learn, matplotlib, pillow,
pyyaml and tqdm, plus the wheels ``benchmarks/gpu_check_prepare.sh`` downloads (pydantic,
diffusers, open_clip, nltk, ...); it needs no network and no downloaded model or dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

SHAPES = ["circle", "square", "triangle", "cross"]


def make_shapes(root: Path, per_class: int = 60, size: int = 48, seed: int = 0) -> Path:
    """An ImageFolder of coloured shapes on textured backgrounds: ``root/<shape>/<i>.png``."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for name in SHAPES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            bg = rng.integers(0, 256, 3)
            noise = rng.integers(-30, 30, (size, size, 3))
            im = Image.fromarray(np.clip(bg + noise, 0, 255).astype(np.uint8), "RGB")
            d = ImageDraw.Draw(im)
            r = int(rng.integers(size // 6, size // 3))
            cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            if name == "circle":
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
            elif name == "square":
                d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
            elif name == "triangle":
                d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
            else:
                w = max(2, r // 3)
                d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
                d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
            im.save(root / name / f"{i:03d}.png")
    return root


class DeviceLog:
    """Where every ``nn.Module`` forward found its parameters and input tensors."""

    def __init__(self, device: str):
        self.kind = torch.device(device).type
        self.seen: Counter = Counter()
        self.off: Counter = Counter()
        self._handle = None

    def _tensors(self, obj, depth: int = 0):
        if isinstance(obj, torch.Tensor):
            yield obj
        elif depth < 3 and isinstance(obj, (list, tuple)):
            for o in obj:
                yield from self._tensors(o, depth + 1)
        elif depth < 3 and isinstance(obj, dict):
            for o in obj.values():
                yield from self._tensors(o, depth + 1)
        elif depth < 3 and hasattr(obj, "__dataclass_fields__"):
            for name in obj.__dataclass_fields__:
                yield from self._tensors(getattr(obj, name), depth + 1)

    def hook(self, module, args, kwargs=None):
        where = {t.device.type for t in self._tensors((args, kwargs or {})) if t.is_floating_point() or t.dtype == torch.uint8}
        param = next(module.parameters(recurse=False), None)
        if param is not None:
            where.add(param.device.type)
        if not where:
            return
        self.seen[type(module).__name__] += 1
        if where != {self.kind}:
            self.off[type(module).__name__] += 1

    def __enter__(self):
        from torch.nn.modules.module import register_module_forward_pre_hook

        self._handle = register_module_forward_pre_hook(lambda m, a: self.hook(m, a))
        return self

    def __exit__(self, *exc):
        self._handle.remove()


TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


def tiny_open_clip(folder: Path) -> tuple:
    """``(clip.model, clip.pretrained)`` of a tiny random-weight open_clip model written to ``folder``."""
    import open_clip
    from safetensors.torch import save_file

    from synthclone.models.external import register_open_clip_config

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "gpu-check-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = open_clip.create_model(register_open_clip_config(config))
    weights = folder / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    return f"open_clip:{config}", str(weights)


def study_config(data: Path, pipe: Path, clip: tuple, device: str) -> dict:
    return {
        "name": "gpu-check", "device": device,
        "data": {"dataset": str(data), "image_size": 64, "val_limit": 40, "workers": 2},
        "generate": {"generator": "diffusers", "model": str(pipe), "filter": ["clip"], "prompts": ["template"],
                     "per_class": 16, "steps": 4, "guidance": 2.0, "scheduler": "ddim", "batch_size": 16,
                     "shard_size": 16, "generator_options": {"dtype": "auto"}},
        "clip": {"model": clip[0], "pretrained": clip[1]},
        "train": {"model": "timm:test_resnet", "epochs": 2, "batch_size": 32, "lr": 0.05,
                  "channels_last": device != "cpu"},
        "study": {"arms": ["real", "synthetic", "mixed", "zero-shot", "classifier-tuning", "ssl", "few-shot-guided"],
                  "few_shot_k": 2, "few_shot_epochs": 2, "ssl_epochs": 1},
        "bench": {"limit": 48, "severities": [1, 3], "epsilons": [2 / 255],
                  "options": {"pgd_steps": 3, "ood_limit": 32, "shape_limit": 32, "background_limit": 32,
                              "corruption_limit": 32, "adversarial_limit": 32}},
        "report": {"guidance_grid": [1.0, 3.0]},
    }


def run_study(work: Path, device: str) -> dict:
    from synthclone.config import validate
    from synthclone.generators.tiny import tiny_diffusers_pipeline
    from synthclone.pipeline import run_stages
    from synthclone.study import build_stages, check

    data = make_shapes(work / "shapes")
    pipe = tiny_diffusers_pipeline(work / "tiny-sd")
    cfg = validate(study_config(data, pipe, tiny_open_clip(work / "tiny-clip"), device))
    check(cfg)
    stages = build_stages(cfg)
    memory: dict = {}
    cuda = torch.device(device).type == "cuda"

    def measured(stage):
        fn = stage.fn

        def wrapped(folder, inputs):
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            out = fn(folder, inputs)
            if cuda:
                torch.cuda.synchronize()
                memory[stage.name] = torch.cuda.max_memory_allocated() / 2 ** 20
            return out

        stage.fn = wrapped
        return stage

    run_dir = work / "run"
    with DeviceLog(device) as log:
        outputs = run_stages([measured(s) for s in stages], run_dir)
    timings = json.loads((run_dir / "stages.json").read_text())
    gen = next(v for k, v in outputs.items() if k.startswith("generate-"))
    rows = json.loads(next(run_dir.glob("generate-*")).joinpath("summary.json").read_text())
    return {"stages": [{**t, "peak_mib": round(memory.get(t["stage"], 0.0), 1)} for t in timings],
            "forwards": sum(log.seen.values()), "forwards_off_device": dict(log.off),
            "modules": dict(log.seen), "report": outputs["report"]["html"],
            "tiny_pipeline_images_per_s": round(rows.get("images_per_second", 0.0), 1), "made": gen["made"]}


def throughput(device: str) -> dict:
    """Training images/s of a timm ResNet-50 at 224 px (bf16 + channels-last), PGD and corruption images/s."""
    from synthclone.data.images import ImageSet
    from synthclone.device import synchronize
    from synthclone.models import load_any_model
    from synthclone.training import train_model

    out: dict = {}
    n, size = 1024, 224
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    data = ImageSet(tensor=images, labels=labels, classes=[f"c{i}" for i in range(10)], name="random-224")
    with tempfile.TemporaryDirectory() as tmp:
        result = train_model("supervised", data, None, "timm:resnet50", Path(tmp) / "r50", epochs=2, batch_size=128,
                             precision="bf16", device=device, channels_last=True, augment="none")
    out["resnet50_train_images_per_s_224px_bf16_channels_last"] = round(result.history[-1]["images_per_s"], 1)

    from synthclone.robustness.adversarial import pgd
    from synthclone.robustness.corruption_ops import corrupt

    model = load_any_model("timm:resnet50", classes=data.classes, in_chans=3, input_size=(size, size)).to(device).eval()
    x = images[:256].float().div(255).to(device)
    y = labels[:256].to(device)

    def rate(fn) -> float:
        fn()  # warm-up (kernels, cuDNN autotuning)
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        return round(len(x) / (time.perf_counter() - t0), 1)

    out["pgd10_linf_images_per_s_224px"] = rate(lambda: pgd(model, x, y, 4 / 255, steps=10,
                                                           generator=torch.Generator().manual_seed(0)))
    from synthclone.robustness.corruption_ops import corruption_names

    for name in corruption_names("all"):  # every corruption on the device (issue 20 item 4)
        out[f"{name}_s3_images_per_s_224px"] = rate(lambda: corrupt(x, name, 3, torch.Generator().manual_seed(0)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (the same study on the CPU)")
    parser.add_argument("--out", help="keep the run here (default: a temporary folder)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--no-throughput", action="store_true", help="skip the ResNet-50 / PGD / corruption figures")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU on this machine (torch {torch.__version__}); nothing to check")
        return 0
    from synthclone.device import device_record, resolve_device
    from synthclone.progress import set_quiet

    set_quiet(True)
    device = resolve_device(args.device)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out) if args.out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        doc = {"hardware": device_record(device), **run_study(work, device)}
        if not args.no_throughput:
            doc["throughput"] = throughput(device)
    doc["total_seconds"] = round(time.perf_counter() - start, 1)
    print(f"gpu_check on {doc['hardware']}")
    for s in doc["stages"]:
        print(f"  {s['stage']:<28} {s['seconds']:>7.1f} s  peak {s['peak_mib']:>8.1f} MiB")
    print(f"  forwards recorded: {doc['forwards']}, off {device}: {sum(doc['forwards_off_device'].values())}")
    for k, v in doc.get("throughput", {}).items():
        print(f"  {k}: {v}")
    print(f"  tiny pipeline: {doc['tiny_pipeline_images_per_s']} images/s; total {doc['total_seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str))
    if doc["forwards_off_device"] or not doc["forwards"]:
        print(f"gpu_check: FAILED: forwards off {device}: {doc['forwards_off_device']}", file=sys.stderr)
        return 1
    print("gpu_check: OK: every model and batch lived on", device)
    return 0


if __name__ == "__main__":
    sys.exit(main())

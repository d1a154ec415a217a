"""The ``diffusers`` backend: any diffusers text-to-image pipeline by hub id or local folder.

``create_generator("diffusers", model="stabilityai/sd-turbo" | "/path/to/pipeline", dtype="auto",
device="cuda:0", scheduler="dpm", attention_slicing=True)``. Text-to-image uses
``AutoPipelineForText2Image``; image-to-image (``init_images`` + ``strength``) reuses the same components
through ``AutoPipelineForImage2Image.from_pipe``, so nothing is loaded twice. Each image gets its own
``torch.Generator`` seeded with its seed on the CPU (diffusers draws per-image latents from a list of
generators and moves them to the device), so an image depends neither on the rest of its batch nor on
the device's random number generator. diffusers is an extra: ``pip install 'synthclone[diffusers]'``.

Options (``generate.generator_options`` in a config, flags of ``synthclone generate``):

* ``dtype``: ``auto`` (float16 on CUDA, float32 on the CPU), ``float32``, ``float16``, ``bfloat16``.
* ``variant``: which weight files to load. ``auto``: the ``fp16`` files (``*.fp16.safetensors``, half
  the download) when the dtype is float16 and the folder or repository has them, else the default
  files cast to the dtype, with a note in ``config["variant_note"]`` (a local folder saved with
  ``variant="fp16"`` alone loads its fp16 files at any dtype, noted likewise); ``none``: always the
  default files; any other name (``fp16``, ``ema``): those files, a one-line error when they are absent.
* memory: ``cpu_offload`` (``enable_model_cpu_offload``: each model moves to the GPU only while it
  runs; needs CUDA and accelerate), ``attention_slicing``, ``vae_slicing`` (decode a batch one image
  at a time), ``vae_tiling`` (decode large images in overlapping tiles; changes the pixels of images
  larger than the VAE's tile, so it belongs to a store's identity, the others do not). The batch size
  is the call's ``batch_size`` (``generate.batch_size``): prompts go to the pipeline in chunks of it.

The safety checker: a pipeline that has one (Stable Diffusion 1.x/2.x from the hub) blacks out the
images it flags; :class:`~synthclone.generators.base.GeneratorOutput` carries its per-image flags as
``nsfw`` so the store records them (manifest column ``nsfw``) and drops those images rather than keep
black squares. ``config["safety_checker"]`` says whether a checker ran.

Guidance follows diffusers: ``guidance_scale <= 1`` turns classifier-free guidance off. Image-to-image
runs ``int(steps * strength)`` denoising steps; fewer than one is refused before anything runs.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..errors import MissingExtraError, UserError
from .base import GeneratorOutput, check_request

# our scheduler names -> diffusers scheduler classes (swapped in with from_config, keeping the model's schedule)
SCHEDULER_CLASSES = {
    "default": None,
    "dpm": "DPMSolverMultistepScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
# the weight files written by save_pretrained(variant=...) hold these dtypes; "auto" loads them for that dtype
VARIANT_OF_DTYPE = {"float16": "fp16"}
WEIGHT_SUFFIXES = ("safetensors", "bin")


def _import_diffusers():
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(getattr(exc, "name", None) or "diffusers", "diffusers", "the diffusers generator") from None
    return diffusers


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or os.sep + os.sep in model or model.count("/") > 1 or Path(model).exists()


def resolve_dtype(dtype: str, device: str) -> str:
    """The dtype name a pipeline is loaded in: ``auto`` is float16 on CUDA, float32 on the CPU."""
    from ..device import is_cuda

    name = DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
    if name == "auto":
        return "float16" if is_cuda(device) else "float32"
    if name not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r} for the diffusers generator; valid: auto, {', '.join(DTYPES)} "
                        f"(or {', '.join(DTYPE_ALIASES)})")
    return name


def weight_variants(folder: Path) -> dict:
    """Per component folder of the pipeline ``folder`` that holds weights: the variants of its weight
    files, ``""`` for the default ones (``unet/diffusion_pytorch_model.fp16.safetensors`` -> ``"fp16"``).

    Follows the rule diffusers applies to a local folder (``pipeline_loading_utils._identify_model_variants``):
    the variant is the second dot-separated part of a weight file's name.
    """
    import json

    components = json.loads((folder / "model_index.json").read_text())
    out: dict = {}
    for sub in sorted(folder.iterdir()):
        if not (sub.is_dir() and sub.name in components):
            continue
        for f in sub.iterdir():
            parts = f.name.split(".")
            if len(parts) < 2 or not (parts[-1] in WEIGHT_SUFFIXES or f.name.endswith(".index.json")):
                continue
            out.setdefault(sub.name, set()).add("" if parts[1] in WEIGHT_SUFFIXES else parts[1].split("-")[0])
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def denoising_steps(steps: int, strength: float) -> int:
    """Denoising steps diffusers' image-to-image pipelines run: ``min(int(steps * strength), steps)``."""
    return min(int(int(steps) * float(strength)), int(steps))


def check_img2img(steps: int, strength: Optional[float]) -> None:
    """Refuse image-to-image settings that cannot make an image: ``int(steps * strength) < 1`` gives
    zero denoising steps (diffusers would fail mid-run). Nothing to check without a strength."""
    if strength is None:
        return
    if float(strength) <= 0:
        raise UserError(f"strength {strength} gives no denoising step in diffusers image-to-image; "
                        "use a strength above 0")
    if denoising_steps(steps, strength) < 1:
        need = math.ceil(1 / float(strength) - 1e-9)
        raise UserError(f"steps {steps} x strength {strength} = {steps * strength:g} < 1 denoising step; "
                        f"raise steps to at least {need} (generate.steps / --steps) or raise the strength")


class DiffusersGenerator:
    """``gen(prompts, seeds, guidance=7.5, steps=25, scheduler="default", init_images=None, strength=None,
    batch_size=8) -> GeneratorOutput`` with uint8 RGB images (N, 3, H, W) and, when the pipeline has a
    safety checker, its flags ``nsfw`` (bool (N,)).

    Args:
        model: hub id or local folder of a diffusers pipeline (``model_index.json``).
        dtype: ``auto`` / ``float32`` / ``float16`` / ``bfloat16`` (see the module doc).
        device: ``cpu`` or ``cuda[:N]`` (checked with :func:`synthclone.device.resolve_device`).
        variant: ``auto`` / ``none`` / a variant name (see the module doc).
        height, width: output size (default: the pipeline's).
        attention_slicing, vae_slicing, vae_tiling, cpu_offload: memory options (see the module doc).
        negative_prompt: one negative prompt for all images, or None.
        local_files_only: never download (default: for local folders and when ``HF_HUB_OFFLINE`` is set).
    """

    name = "diffusers"

    def __init__(self, model: str, dtype: str = "auto", device: str = "cpu", scheduler: str = "default",
                 height: Optional[int] = None, width: Optional[int] = None, attention_slicing: bool = False,
                 vae_slicing: bool = False, vae_tiling: bool = False, cpu_offload: bool = False,
                 variant: Optional[str] = "auto", negative_prompt: Optional[str] = None,
                 local_files_only: Optional[bool] = None):
        from ..device import is_cuda, resolve_device

        diffusers = _import_diffusers()
        if not model:
            raise UserError("the diffusers generator needs model=<hub id or pipeline folder> (generate.model in the config)")
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        if cpu_offload:
            if not is_cuda(device):
                raise UserError(f"cpu_offload needs a CUDA device, but the device is {device}; drop cpu_offload "
                                "(generate.generator_options / --cpu-offload) or use device: cuda")
            try:
                import accelerate  # noqa: F401
            except ImportError:
                raise MissingExtraError("accelerate", "diffusers", "cpu_offload") from None
        path = Path(model).expanduser()
        local = path.exists()
        if local:
            if not (path / "model_index.json").is_file():
                raise UserError(f"{model} is not a diffusers pipeline folder (no model_index.json); give a folder written "
                                "by save_pretrained or a hub id")
        elif _looks_like_path(model):
            raise UserError(f"diffusers pipeline folder {model} does not exist; check the path or give a hub id")
        if local_files_only is None:
            local_files_only = local or os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true", "yes")
        want, explicit, note = self._choose_variant(model, path if local else None, variant, dtype)
        source = str(path) if local else model
        try:
            self.pipe = self._load(diffusers, source, dtype, want, local_files_only)
        except ValueError as exc:
            # a hub repository without the variant's files (diffusers: "no such modeling files are available")
            if not want or explicit or f"variant={want}" not in str(exc):
                raise UserError(f"could not load diffusers pipeline {model!r}: {_first_line(exc)}") from None
            note = f"no {want} weights in {model}; loaded the default weights as {dtype}"
            want = None
            try:
                self.pipe = self._load(diffusers, source, dtype, None, local_files_only)
            except ValueError as again:
                raise UserError(f"could not load diffusers pipeline {model!r}: {_first_line(again)}") from None
        if cpu_offload:  # components stay on the CPU; each moves to the GPU while it runs
            self.pipe.enable_model_cpu_offload(device=device)
        else:
            self.pipe = self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        if attention_slicing:
            self.pipe.enable_attention_slicing()
        for option, wanted, method in (("vae_slicing", vae_slicing, "enable_slicing"),
                                       ("vae_tiling", vae_tiling, "enable_tiling")):
            if wanted:
                vae = getattr(self.pipe, "vae", None)
                try:
                    getattr(vae, method)()
                except (AttributeError, NotImplementedError):
                    raise UserError(f"{option}: the VAE of {model} ({type(vae).__name__}) does not support it; "
                                    f"drop {option}") from None
        self._img2img = None
        self._set_scheduler(scheduler)
        self.device = device
        self.model = model
        self.height, self.width = height, width
        self.negative_prompt = negative_prompt
        self.cpu_offload = bool(cpu_offload)
        self.config = {"generator": "diffusers", "model": model, "dtype": dtype, "variant": want, "variant_note": note,
                       "device": device, "scheduler": scheduler, "pipeline": type(self.pipe).__name__,
                       "height": height, "width": width, "safety_checker": self.has_safety_checker,
                       "attention_slicing": bool(attention_slicing), "vae_slicing": bool(vae_slicing),
                       "vae_tiling": bool(vae_tiling), "cpu_offload": bool(cpu_offload)}

    @staticmethod
    def _choose_variant(model: str, folder: Optional[Path], variant: Optional[str], dtype: str) -> tuple:
        """``(variant to load or None, asked for by name, note)``; ``folder`` is None for a hub id
        (whose files are known only when loading: a missing fp16 variant falls back there)."""
        text = "none" if variant is None else str(variant).strip()
        if text.lower() in ("none", ""):
            return None, False, None
        auto = text.lower() == "auto"
        want = VARIANT_OF_DTYPE.get(dtype) if auto else text
        if folder is None:
            return want, not auto, None
        files = weight_variants(folder)
        present = {v for found in files.values() for v in found}
        if want and want not in present:
            if not auto:
                raise UserError(f"{model} has no {want!r} weights (no *.{want}.* files in its component folders); "
                                "set variant: auto (or none) to load the default weights")
            return None, False, f"no {want} weights in {model}; loaded the default weights as {dtype}"
        lacking = sorted(c for c, found in files.items() if "" not in found)
        if auto and not want and lacking and "fp16" in present:  # a folder saved with variant="fp16" alone
            return "fp16", False, f"only fp16 weights in {model} ({', '.join(lacking)}); loaded them as {dtype}"
        return want, not auto, None

    @staticmethod
    def _load(diffusers, source: str, dtype: str, variant: Optional[str], local_files_only: bool):
        kw = {"variant": variant} if variant else {}
        try:
            with warnings.catch_warnings():  # newer diffusers renamed torch_dtype to dtype; both work
                warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
                return diffusers.AutoPipelineForText2Image.from_pretrained(
                    source, torch_dtype=DTYPES[dtype], local_files_only=local_files_only, **kw)
        except (OSError, EnvironmentError) as exc:
            raise UserError(f"could not load diffusers pipeline {source!r}: {_first_line(exc)}") from None

    @property
    def has_safety_checker(self) -> bool:
        return getattr(self.pipe, "safety_checker", None) is not None

    @property
    def image_shape(self) -> tuple:
        """(3, H, W) of the images it makes: ``height`` / ``width`` or the pipeline's default resolution."""
        unet = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer", None)
        sample = getattr(getattr(unet, "config", None), "sample_size", None) or 64
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        default = int(sample) * int(getattr(self.pipe, "vae_scale_factor", 8))
        return (3, int(self.height or default), int(self.width or default))

    def check_settings(self, steps: int, strength: Optional[float] = None) -> None:
        """Refuse settings that cannot make an image, before any work (:func:`check_img2img`)."""
        check_img2img(steps, strength)

    def _set_scheduler(self, scheduler: str) -> None:
        if scheduler not in SCHEDULER_CLASSES:
            raise UserError(f"unknown scheduler {scheduler!r} for diffusers; valid: {', '.join(SCHEDULER_CLASSES)}")
        cls_name = SCHEDULER_CLASSES[scheduler]
        self.scheduler = scheduler
        if cls_name is None:
            return
        import diffusers

        current = type(self.pipe.scheduler).__name__
        if current != cls_name:
            self.pipe.scheduler = getattr(diffusers, cls_name).from_config(self.pipe.scheduler.config)
        if self._img2img is not None:
            self._img2img.scheduler = self.pipe.scheduler

    def _image_to_image(self):
        if self._img2img is None:
            import diffusers

            try:
                self._img2img = diffusers.AutoPipelineForImage2Image.from_pipe(self.pipe)
            except (ValueError, KeyError) as exc:
                raise UserError(f"{self.model} has no image-to-image counterpart in diffusers ({exc}); "
                                "use a Stable Diffusion family pipeline for real-guided generation") from None
            self._img2img.set_progress_bar_config(disable=True)
            if self.cpu_offload:  # from_pipe shares the modules; the new pipeline places its own hooks
                self._img2img.enable_model_cpu_offload(device=self.device)
        return self._img2img

    def __call__(self, prompts: Sequence[str], seeds: Sequence[int], guidance: float = 7.5, steps: int = 25,
                 scheduler: Optional[str] = None, init_images: Optional[torch.Tensor] = None,
                 strength: Optional[float] = None, batch_size: int = 8) -> GeneratorOutput:
        """Generate one image per (prompt, seed): uint8 (N, 3, H, W), in chunks of ``batch_size`` prompts."""
        prompts, seeds = check_request(prompts, seeds, guidance, steps, init_images, strength, batch_size)
        if init_images is not None and init_images.shape[1] not in (1, 3):
            raise UserError(f"init_images must have 1 or 3 channels for a diffusers pipeline (got {init_images.shape[1]})")
        if scheduler is not None and scheduler != self.scheduler:
            self._set_scheduler(scheduler)
        if init_images is not None and strength is None:
            strength = 0.75
        self.check_settings(steps, strength if init_images is not None else None)
        chunks, flags = [], []
        for start in range(0, len(prompts), batch_size):
            p = prompts[start : start + batch_size]
            gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds[start : start + batch_size]]
            kw = dict(prompt=p, num_inference_steps=int(steps), guidance_scale=float(guidance), generator=gens,
                      output_type="pt")
            if self.negative_prompt:
                kw["negative_prompt"] = [self.negative_prompt] * len(p)
            if init_images is None:
                if self.height:
                    kw["height"] = self.height
                if self.width:
                    kw["width"] = self.width
                result = self.pipe(**kw)
            else:
                init = init_images[start : start + batch_size].float() / 255.0
                if init.shape[1] == 1:
                    init = init.expand(-1, 3, -1, -1)
                result = self._image_to_image()(image=init, strength=float(strength), **kw)
            img = result.images  # float (n, 3, H, W) in [0, 1]; a flagged image is black
            chunks.append((img.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu())
            # output_type="pt" keeps the checker's flags (None when the pipeline has no checker; SDXL has none)
            flags.append(getattr(result, "nsfw_content_detected", None))
        nsfw = None if any(f is None for f in flags) else torch.tensor([bool(x) for f in flags for x in f])
        settings = {"generator": self.name, "model": self.model, "guidance": float(guidance), "steps": int(steps),
                    "scheduler": self.scheduler, "strength": strength, "dtype": self.config["dtype"],
                    "device": self.device}
        return GeneratorOutput(images=torch.cat(chunks), settings=settings, nsfw=nsfw)


OPTIONS = [name for name in inspect.signature(DiffusersGenerator.__init__).parameters if name not in ("self", "model")]


def create_diffusers(model: Optional[str] = None, weights: Optional[str] = None, **kwargs) -> DiffusersGenerator:
    """The diffusers backend; ``model`` (or ``weights``) is a hub id or a local pipeline folder."""
    kwargs.pop("tiny", None)
    unknown = sorted(set(kwargs) - set(OPTIONS))
    if unknown:
        raise UserError(f"the diffusers generator has no option(s) {unknown}; valid: {', '.join(OPTIONS)}")
    return DiffusersGenerator(model or weights or "", **kwargs)

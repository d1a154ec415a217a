"""The ``diffusers`` backend: any diffusers text-to-image pipeline by hub id or local folder.

``create_generator("diffusers", model="stabilityai/sd-turbo" | "/path/to/pipeline", dtype="float16",
device="cuda", scheduler="dpm", attention_slicing=True)``. Text-to-image uses
``AutoPipelineForText2Image``; image-to-image (``init_images`` + ``strength``) reuses the same components
through ``AutoPipelineForImage2Image.from_pipe``, so nothing is loaded twice. Each image gets its own
``torch.Generator`` seeded with its seed (diffusers draws per-image latents from a list of generators), so
an image does not depend on the rest of its batch. diffusers is an extra: ``pip install 'synthclone[diffusers]'``.

Guidance follows diffusers: ``guidance_scale <= 1`` turns classifier-free guidance off.
"""

from __future__ import annotations

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
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def _import_diffusers():
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(getattr(exc, "name", None) or "diffusers", "diffusers", "the diffusers generator") from None
    return diffusers


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or os.sep + os.sep in model or model.count("/") > 1 or Path(model).exists()


class DiffusersGenerator:
    """``gen(prompts, seeds, guidance=7.5, steps=25, scheduler="default", init_images=None, strength=None,
    batch_size=8) -> GeneratorOutput`` with uint8 RGB images (N, 3, H, W).

    Args:
        model: hub id or local folder of a diffusers pipeline (``model_index.json``).
        dtype: ``float32`` / ``float16`` / ``bfloat16``; device: torch device string.
        height, width: output size (default: the pipeline's).
        attention_slicing: compute attention in slices (less memory, a little slower).
        negative_prompt: one negative prompt for all images, or None.
    """

    name = "diffusers"

    def __init__(self, model: str, dtype: str = "float32", device: str = "cpu", scheduler: str = "default",
                 height: Optional[int] = None, width: Optional[int] = None, attention_slicing: bool = False,
                 negative_prompt: Optional[str] = None, local_files_only: Optional[bool] = None):
        diffusers = _import_diffusers()
        if not model:
            raise UserError("the diffusers generator needs model=<hub id or pipeline folder> (generate.model in the config)")
        if dtype not in DTYPES:
            raise UserError(f"unknown dtype {dtype!r} for the diffusers generator; valid: {', '.join(DTYPES)}")
        path = Path(model).expanduser()
        if path.exists():
            if not (path / "model_index.json").is_file():
                raise UserError(f"{model} is not a diffusers pipeline folder (no model_index.json); give a folder written "
                                "by save_pretrained or a hub id")
        elif _looks_like_path(model):
            raise UserError(f"diffusers pipeline folder {model} does not exist; check the path or give a hub id")
        if local_files_only is None:
            local_files_only = path.exists() or os.environ.get("HF_HUB_OFFLINE", "") in ("1", "true", "yes")
        try:
            with warnings.catch_warnings():  # newer diffusers renamed torch_dtype to dtype; both work
                warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
                self.pipe = diffusers.AutoPipelineForText2Image.from_pretrained(
                    str(path) if path.exists() else model, torch_dtype=DTYPES[dtype], local_files_only=local_files_only)
        except (OSError, ValueError, EnvironmentError) as exc:
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise UserError(f"could not load diffusers pipeline {model!r}: {first}") from None
        self.pipe = self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        if attention_slicing:
            self.pipe.enable_attention_slicing()
        self._set_scheduler(scheduler)
        self._img2img = None
        self.device = device
        self.model = model
        self.height, self.width = height, width
        self.negative_prompt = negative_prompt
        self.config = {"generator": "diffusers", "model": model, "dtype": dtype, "device": device,
                       "scheduler": scheduler, "pipeline": type(self.pipe).__name__, "height": height, "width": width,
                       "attention_slicing": attention_slicing}

    @property
    def image_shape(self) -> tuple:
        """(3, H, W) of the images it makes: ``height`` / ``width`` or the pipeline's default resolution."""
        unet = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer", None)
        sample = getattr(getattr(unet, "config", None), "sample_size", None) or 64
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        default = int(sample) * int(getattr(self.pipe, "vae_scale_factor", 8))
        return (3, int(self.height or default), int(self.width or default))

    def _set_scheduler(self, scheduler: str) -> None:
        if scheduler not in SCHEDULER_CLASSES:
            raise UserError(f"unknown scheduler {scheduler!r} for diffusers; valid: {', '.join(SCHEDULER_CLASSES)}")
        cls_name = SCHEDULER_CLASSES[scheduler]
        if cls_name is None:
            return
        import diffusers

        current = type(self.pipe.scheduler).__name__
        if current != cls_name:
            self.pipe.scheduler = getattr(diffusers, cls_name).from_config(self.pipe.scheduler.config)
        if self._img2img_loaded():
            self._img2img.scheduler = self.pipe.scheduler
        self.scheduler = scheduler

    def _img2img_loaded(self) -> bool:
        return getattr(self, "_img2img", None) is not None

    def _image_to_image(self):
        if self._img2img is None:
            import diffusers

            try:
                self._img2img = diffusers.AutoPipelineForImage2Image.from_pipe(self.pipe)
            except (ValueError, KeyError) as exc:
                raise UserError(f"{self.model} has no image-to-image counterpart in diffusers ({exc}); "
                                "use a Stable Diffusion family pipeline for real-guided generation") from None
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def __call__(self, prompts: Sequence[str], seeds: Sequence[int], guidance: float = 7.5, steps: int = 25,
                 scheduler: Optional[str] = None, init_images: Optional[torch.Tensor] = None,
                 strength: Optional[float] = None, batch_size: int = 8) -> GeneratorOutput:
        """Generate one image per (prompt, seed): uint8 (N, 3, H, W)."""
        prompts, seeds = check_request(prompts, seeds, guidance, steps, init_images, strength, batch_size)
        if init_images is not None and init_images.shape[1] not in (1, 3):
            raise UserError(f"init_images must have 1 or 3 channels for a diffusers pipeline (got {init_images.shape[1]})")
        if scheduler is not None and scheduler != getattr(self, "scheduler", "default"):
            self._set_scheduler(scheduler)
        if init_images is not None and strength is None:
            strength = 0.75
        chunks = []
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
            img = result.images  # float (n, 3, H, W) in [0, 1]
            chunks.append((img.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu())
        settings = {"generator": self.name, "model": self.model, "guidance": float(guidance), "steps": int(steps),
                    "scheduler": getattr(self, "scheduler", "default"), "strength": strength}
        return GeneratorOutput(images=torch.cat(chunks), settings=settings)


def create_diffusers(model: Optional[str] = None, weights: Optional[str] = None, **kwargs) -> DiffusersGenerator:
    """The diffusers backend; ``model`` (or ``weights``) is a hub id or a local pipeline folder."""
    kwargs.pop("tiny", None)
    return DiffusersGenerator(model or weights or "", **kwargs)

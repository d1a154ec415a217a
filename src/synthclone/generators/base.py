"""What every text-to-image backend returns, and the checks every backend applies to a request.

The generator contract: ``gen(prompts, seeds, guidance, steps, scheduler, init_images, strength,
batch_size) -> GeneratorOutput``, ``gen.name``, ``gen.config`` (what it is: weights, dtype, device,
options). Optional: ``gen.image_shape`` (C, H, W) and ``gen.check_settings(steps, strength)``, which
:func:`synthclone.distributed.generation.plan_store` calls before anything is written so that
settings the backend cannot run fail in one line up front, not in the first shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch

from ..errors import UserError


@dataclass
class GeneratorOutput:
    """Images of one generator call.

    Attributes:
        images: uint8 (N, C, H, W), values in [0, 255]; row ``i`` belongs to ``prompts[i]`` / ``seeds[i]``.
        settings: the settings actually used (generator, guidance, steps, scheduler, strength, ...).
        nsfw: bool (N,), the backend's safety checker flagged image ``i`` (diffusers pipelines with a
            checker black such images out); None when no checker ran.
    """

    images: torch.Tensor
    settings: dict = field(default_factory=dict)
    nsfw: Optional[torch.Tensor] = None


def check_request(prompts: Sequence[str], seeds: Sequence[int], guidance: float, steps: int,
                  init_images: Optional[torch.Tensor], strength: Optional[float], batch_size: int,
                  image_shape: Optional[Tuple[int, int, int]] = None) -> Tuple[List[str], List[int]]:
    """Validate a generation request; raise a one-line :class:`UserError` naming the bad value.

    ``image_shape`` (C, H, W), when given, is the shape ``init_images`` must have per image.
    Returns the prompts and seeds as plain lists.
    """
    if isinstance(prompts, str):
        raise UserError("prompts must be a list of strings, not one string (wrap it in a list)")
    prompts = list(prompts)
    if not prompts:
        raise UserError("the prompt list is empty; give at least one prompt")
    if any(not isinstance(p, str) for p in prompts):
        raise UserError("every prompt must be a string")
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(prompts):
        raise UserError(f"{len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
    if not (guidance >= 0):  # also rejects NaN
        raise UserError(f"guidance must be >= 0 (got {guidance}); 1 means no classifier-free guidance")
    if int(steps) != steps or steps < 1:
        raise UserError(f"steps must be an integer >= 1 (got {steps})")
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1 (got {batch_size})")
    if strength is not None and not (0.0 <= strength <= 1.0):
        raise UserError(f"strength must be in [0, 1] (got {strength}); 0 keeps the init image, 1 ignores it")
    if init_images is None:
        if strength is not None:
            raise UserError("strength was given without init_images; pass init images for image-to-image or drop strength")
    else:
        if not isinstance(init_images, torch.Tensor) or init_images.dtype != torch.uint8 or init_images.ndim != 4:
            got = f"{init_images.dtype} {tuple(init_images.shape)}" if isinstance(init_images, torch.Tensor) else type(init_images).__name__
            raise UserError(f"init_images must be a uint8 tensor (N, C, H, W); got {got}")
        if init_images.shape[0] != len(prompts):
            raise UserError(f"{init_images.shape[0]} init images for {len(prompts)} prompts; give one per prompt")
        if image_shape is not None and tuple(init_images.shape[1:]) != tuple(image_shape):
            raise UserError(f"init_images have shape {tuple(init_images.shape[1:])} per image but this generator makes "
                            f"{tuple(image_shape)}; resize them first")
    return prompts, seeds

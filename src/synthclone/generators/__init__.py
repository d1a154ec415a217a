"""Text-to-image backends: ``create_generator(name, **kwargs)`` -> a generator with one call.

``gen(prompts, seeds, guidance=2.0, steps=10, scheduler="dpm", init_images=None, strength=None,
batch_size=256) -> GeneratorOutput(images uint8 (N, C, H, W), settings dict)``; ``gen.name`` and
``gen.config`` describe it for manifests.

* ``embedded``: the small FiLM-UNet diffusion model shipped with synthclone (28x28 grayscale).
* ``diffusers``: any diffusers text-to-image pipeline by hub id or local path (extra ``synthclone[diffusers]``).
"""

from ..registry import Registry
from .base import GeneratorOutput

GENERATORS: Registry = Registry("generator")


@GENERATORS.register("embedded")
def _embedded(**kwargs):
    """The embedded 28x28 text-to-image diffusion model trained by 'synthclone pretrain generator' (shipped weights)."""
    from .embedded import create_embedded

    return create_embedded(**kwargs)


@GENERATORS.register("diffusers")
def _diffusers(**kwargs):
    """Any diffusers text-to-image pipeline (Stable Diffusion 1.x/2.x/XL, SD-Turbo) by hub id or local path."""
    from .diffusers_backend import create_diffusers

    return create_diffusers(**kwargs)


def create_generator(name: str = "embedded", **kwargs):
    """Build the registered generator ``name`` with ``kwargs`` (e.g. ``weights=PATH``, ``model=HUB_ID``)."""
    return GENERATORS.create(name, **kwargs)


__all__ = ["GENERATORS", "GeneratorOutput", "create_generator"]

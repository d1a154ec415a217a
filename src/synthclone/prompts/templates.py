"""``templates``: an ensemble of product-photo templates written for this project, cycled.

In the spirit of CLIP's ImageNet prompt ensemble, but worded for the embedded world (grayscale
product photos of clothing, shoes and bags): viewpoint, background, lighting and framing vary, the
class name stays. Image ``j`` of a class gets template ``(j + seed) % len(TEMPLATES)``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from . import PROMPTS
from .base import ClassIds, Prompt, cycle, fill
from .template import check_template

TEMPLATES = [
    "a photo of a {c}",
    "a product photo of a {c}",
    "a catalogue photo of a {c} on a white background",
    "a grayscale photo of a {c}",
    "a close-up photo of a {c}",
    "a photo of a small {c}",
    "a photo of a large {c}",
    "a centered photo of a single {c}",
    "a low-resolution photo of a {c}",
    "a photo of a {c} seen from the front",
    "a photo of a {c} seen from the side",
    "a dark photo of a {c}",
    "a bright photo of a {c}",
    "a photo of a plain {c}",
    "a photo of a patterned {c}",
    "an online shop picture of a {c}",
    "a cropped photo of a {c}",
    "a studio photo of a {c}",
    "a photo of a worn {c}",
    "a photo of a new {c}",
]


@PROMPTS.register("templates")
def templates_prompts(classes: List[str], n_per_class: int, seed: int = 0, templates: Optional[Sequence[str]] = None,
                      class_ids: ClassIds = None) -> List[Prompt]:
    """An ensemble of 20 product-photo templates, cycled across a class's images."""
    pool = [check_template(t) for t in (templates or TEMPLATES)]
    out: List[Prompt] = []
    for c, name in enumerate(classes):
        out += [Prompt(c, fill(t, name)) for t in cycle(pool, n_per_class, start=seed % len(pool))]
    return out

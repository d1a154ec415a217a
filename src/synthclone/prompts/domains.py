"""``domains``: style and domain variations of the class ("a sketch of a {c}", ...), cycled.

Renditions beyond photos (cf. ImageNet-R's renditions) make the synthetic set vary in texture and
style while keeping the shape, which matters for the shape-bias and OOD probes.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from . import PROMPTS
from .base import ClassIds, Prompt, cycle, fill
from .template import check_template

DOMAINS = [
    "a photo of a {c}",
    "a sketch of a {c}",
    "a pencil drawing of a {c}",
    "a painting of a {c}",
    "a watercolor painting of a {c}",
    "a cartoon of a {c}",
    "a black and white photo of a {c}",
    "a silhouette of a {c}",
    "an embroidery of a {c}",
    "a pixel art {c}",
    "a 3d rendering of a {c}",
    "a toy {c}",
    "a blurry photo of a {c}",
    "a tattoo of a {c}",
    "an origami {c}",
    "a line drawing of a {c}",
]


@PROMPTS.register("domains")
def domain_prompts(classes: List[str], n_per_class: int, seed: int = 0, domains: Optional[Sequence[str]] = None,
                   class_ids: ClassIds = None) -> List[Prompt]:
    """Style/domain variations ('a sketch of a {c}', 'a painting of a {c}', ...), cycled."""
    pool = [check_template(t) for t in (domains or DOMAINS)]
    out: List[Prompt] = []
    for c, name in enumerate(classes):
        out += [Prompt(c, fill(t, name)) for t in cycle(pool, n_per_class, start=seed % len(pool))]
    return out

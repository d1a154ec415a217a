"""Prompt strategies, one file each, registered in :data:`PROMPTS`.

A strategy turns class names into text prompts: ``make_prompts(name, classes, n_per_class, seed,
**options) -> list[Prompt]``, ``n_per_class`` prompts per class, ordered class by class, so prompt
``c * n_per_class + j`` is image ``j`` of class ``c``. ``synthclone list prompts`` shows them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from ..registry import Registry
from .base import Prompt, readable, unique_per_class

PROMPTS: Registry = Registry("prompt strategy")


def make_prompts(name: str, classes: Sequence[str], n_per_class: int, seed: int = 0, **options: Any) -> List[Prompt]:
    """Run the strategy registered as ``name``; options are strategy-specific (e.g. ``template=``)."""
    from ..errors import UserError

    if n_per_class < 1:
        raise UserError(f"prompts per class must be >= 1, got {n_per_class}")
    fn = PROMPTS.get(name)
    prompts = fn(list(classes), int(n_per_class), int(seed), **options)
    assert len(prompts) == len(classes) * n_per_class, (name, len(prompts))
    return prompts


def describe_prompts(prompts: Sequence[Prompt], classes: Sequence[str]) -> Dict[str, int]:
    """Number of unique prompt texts per class name."""
    return {classes[c]: n for c, n in unique_per_class(prompts, len(classes)).items()}


from . import (  # noqa: E402,F401  (each module registers its strategy)
    captions,
    classname,
    domains,
    language_enhancement,
    template,
    templates,
    wordnet,
)

__all__ = ["PROMPTS", "Prompt", "make_prompts", "describe_prompts", "readable", "unique_per_class"]

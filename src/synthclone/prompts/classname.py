"""``classname``: the bare class name as the prompt (the weakest baseline in Singh et al.)."""

from __future__ import annotations

from typing import List

from . import PROMPTS
from .base import ClassIds, Prompt


@PROMPTS.register("classname")
def classname_prompts(classes: List[str], n_per_class: int, seed: int = 0, class_ids: ClassIds = None) -> List[Prompt]:
    """The bare class name, e.g. 'Ankle boot'."""
    return [Prompt(c, name) for c, name in enumerate(classes) for _ in range(n_per_class)]

"""``template``: one template around the class name, "a photo of a {c}" by default."""

from __future__ import annotations

from typing import List

from ..errors import UserError
from . import PROMPTS
from .base import ClassIds, Prompt, fill

DEFAULT_TEMPLATE = "a photo of a {c}"


def check_template(template: str) -> str:
    if not isinstance(template, str) or "{c}" not in template:
        raise UserError(f"prompt template {template!r} must contain {{c}} where the class name goes, e.g. 'a photo of a {{c}}'")
    return template


@PROMPTS.register("template")
def template_prompts(classes: List[str], n_per_class: int, seed: int = 0, template: str = DEFAULT_TEMPLATE,
                     class_ids: ClassIds = None) -> List[Prompt]:
    """One template, 'a photo of a {c}' unless option template=... says otherwise."""
    check_template(template)
    return [Prompt(c, fill(template, name)) for c, name in enumerate(classes) for _ in range(n_per_class)]

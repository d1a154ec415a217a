"""Prompt strategies, one file each, registered in :data:`PROMPTS`.

A strategy turns class names into text prompts: ``make_prompts(name, classes, n_per_class, seed,
class_ids=None, **options) -> list[Prompt]``, ``n_per_class`` prompts per class, ordered class by
class, so prompt ``c * n_per_class + j`` is image ``j`` of class ``c``. ``synthclone list prompts``
shows them.

Every strategy is called as ``fn(classes, n_per_class, seed, class_ids=..., **options)``.
``class_ids`` holds one WordNet id (``n02012849``) or None per class: the strategies that read
WordNet take a class's synset from its id, so ImageNet's two "crane" classes (a bird, a machine)
get their own definitions; the others ignore it. Without ids (Fashion-MNIST) the synset is found
by name. :func:`synthclone.wordnet.folder_classes` gives an ImageFolder's names and ids.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..registry import Registry
from .base import Prompt, readable, unique_per_class

PROMPTS: Registry = Registry("prompt strategy")


def make_prompts(name: str, classes: Sequence[str], n_per_class: int, seed: int = 0,
                 class_ids: Optional[Sequence[Optional[str]]] = None, images_per_prompt: int = 1,
                 **options: Any) -> List[Prompt]:
    """Run the strategy registered as ``name``; options are strategy-specific (e.g. ``template=``).

    ``class_ids``: one WordNet id or None per class, for the strategies that read WordNet.
    ``images_per_prompt`` (m): the strategy makes ``ceil(n_per_class / m)`` prompts per class and each
    is used for m consecutive images of its class (StableRep generates several images per caption:
    they are each other's positives).
    """
    if images_per_prompt < 1:
        from ..errors import UserError

        raise UserError(f"images_per_prompt must be >= 1, got {images_per_prompt}")
    if images_per_prompt > 1:
        distinct = -(-int(n_per_class) // int(images_per_prompt))
        base = make_prompts(name, classes, distinct, seed, class_ids=class_ids, **options)
        return [base[c * distinct + j // images_per_prompt] for c in range(len(classes)) for j in range(n_per_class)]
    from ..errors import UserError

    if n_per_class < 1:
        raise UserError(f"prompts per class must be >= 1, got {n_per_class}")
    if class_ids is not None:
        class_ids = list(class_ids)
        if len(class_ids) != len(classes):
            raise UserError(f"class_ids has {len(class_ids)} entries for {len(classes)} classes; "
                            "give one WordNet id or None per class")
    fn = PROMPTS.get(name)
    prompts = fn(list(classes), int(n_per_class), int(seed), class_ids=class_ids, **options)
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

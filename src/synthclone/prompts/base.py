"""What every prompt strategy shares: the :class:`Prompt` record and name helpers."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence


@dataclass(frozen=True)
class Prompt:
    """One prompt: the intended class (index into the class list) and the text."""

    class_index: int
    text: str


def readable(name: str) -> str:
    """A class name as it reads in a sentence: ``"T-shirt/top"`` -> ``"t-shirt or top"``.

    Capitalised words are lowered ("Ankle boot" -> "ankle boot"); words with inner capitals
    (acronyms, "iPod") are kept; ``/`` and ``_`` separate alternatives and words.
    """
    words = name.replace("_", " ").replace("/", " or ").split()
    out = [w.lower() if (w[:1].isupper() and (w[1:].islower() or not any(ch.isalpha() for ch in w[1:]))) else w for w in words]
    return " ".join(out) if out else name


_ARTICLE = re.compile(r"\b([Aa]) (?=[aeioAEIO])")


def fix_articles(text: str) -> str:
    """``"a ankle boot"`` -> ``"an ankle boot"`` (vowel-initial words; 'u' is left alone: "a uniform")."""
    return _ARTICLE.sub(lambda m: m.group(1) + "n ", text)


def fill(template: str, name: str) -> str:
    """Put the readable class name into ``template`` at ``{c}`` and fix "a"/"an"."""
    return fix_articles(template.replace("{c}", readable(name)))


ClassIds = Optional[Sequence[Optional[str]]]
"""One WordNet id or None per class (see :func:`synthclone.prompts.make_prompts`)."""


def class_id(class_ids: ClassIds, c: int) -> Optional[str]:
    """The WordNet id of class ``c``, or None when the classes carry no ids."""
    return None if class_ids is None else class_ids[c]


def cycle(items: Sequence[str], n: int, start: int = 0) -> List[str]:
    """``n`` items taken round-robin from ``items`` starting at ``start``."""
    return [items[(start + j) % len(items)] for j in range(n)]


def warn_unknown(name: str, strategy: str) -> None:
    warnings.warn(
        f"class {name!r} is not in WordNet; prompt strategy {strategy!r} uses the plain class name for it",
        UserWarning,
        stacklevel=3,
    )


def unique_per_class(prompts: Sequence[Prompt], num_classes: int) -> Dict[int, int]:
    """Class index -> number of distinct prompt texts."""
    seen: Dict[int, set] = {c: set() for c in range(num_classes)}
    for p in prompts:
        seen[p.class_index].add(p.text)
    return {c: len(s) for c, s in seen.items()}

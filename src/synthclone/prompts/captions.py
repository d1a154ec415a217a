"""``captions``: a user file of captions per class, cycled across each class's images.

Accepted files:

* YAML or JSON mapping class name -> list of captions (``{"Sandal": ["a sandal on sand", ...]}``);
* a text/TSV file of ``class<TAB>caption`` lines (``#`` starts a comment).

Every class must have at least one caption; anything else is a :class:`UserError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from ..errors import UserError
from . import PROMPTS
from .base import ClassIds, Prompt, cycle


def read_captions(path: str | Path) -> Dict[str, List[str]]:
    """Class name -> captions, from a YAML/JSON mapping or ``class<TAB>caption`` lines."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"captions file {p} does not exist; give a YAML/JSON mapping class -> [captions] or class<TAB>caption lines")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read captions file {p} ({exc.__class__.__name__}); give a UTF-8 text file") from None
    if p.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            tree = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError):
            raise UserError(f"captions file {p} is not valid {p.suffix[1:].upper()}; fix its syntax") from None
        if not isinstance(tree, dict):
            raise UserError(f"captions file {p} must map each class name to a list of captions")
        out: Dict[str, List[str]] = {}
        for key, value in tree.items():
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError(f"captions file {p}: class {key!r} must map to a list of caption strings")
            out[str(key)] = [v.strip() for v in value if v.strip()]
        return out
    out = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "\t" not in line:
            raise UserError(f"captions file {p} line {lineno} has no TAB; write class<TAB>caption")
        key, caption = line.split("\t", 1)
        if caption.strip():
            out.setdefault(key.strip(), []).append(caption.strip())
    return out


@PROMPTS.register("captions")
def caption_prompts(classes: List[str], n_per_class: int, seed: int = 0, captions: Optional[str] = None,
                    class_ids: ClassIds = None) -> List[Prompt]:
    """Captions per class from a user file (option captions=PATH), cycled."""
    if not captions:
        raise UserError("prompt strategy 'captions' needs a captions file: --prompt-option captions=PATH")
    table = read_captions(captions)
    missing = [c for c in classes if not table.get(c)]
    if missing:
        raise UserError(f"captions file {captions} has no captions for classes {missing[:5]}; add at least one per class")
    out: List[Prompt] = []
    for c, name in enumerate(classes):
        texts = table[name]
        out += [Prompt(c, t) for t in cycle(texts, n_per_class, start=seed % len(texts))]
    return out

"""ImageNet's 1000 classes on coarser label spaces, as the anchors score them.

Two label spaces, each a data file in ``label_data/`` that names its source:

* ``imagenet16``: the 16 categories of the cue-conflict stimuli (Geirhos et al. 2019), the class
  lists of model-vs-human (``modelvshuman/helper/human_categories.py``). Decision: the softmax
  probabilities averaged over each category's classes, the largest wins (model-vs-human's default
  aggregation); classes in no category take no part.
* ``imagenet9``: the 9 superclasses of ImageNet-9 (Xiao et al. 2021), backgrounds_challenge's
  ``in_to_in9.json``. Decision: the 1000-way argmax, mapped to the superclass that holds it; an
  argmax in none of them (630 of the 1000 classes) is wrong (``in9_eval.py``).

The lists were curated by hand (model-vs-human removed classes whose images mix categories; IN-9
keeps only classes wholly inside a superclass), so they differ from what the WordNet hierarchy gives.
:func:`wordnet_groups` derives the same spaces from WordNet (a fine class belongs to the most
specific category synset among its hypernyms) and :func:`derivation_differences` lists where the
two disagree; ``tests/test_label_maps.py`` reports it.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Dict, List

from ..errors import UserError

# category -> WordNet id of its synset (the WordNet derivation's roots)
IMAGENET16: Dict[str, str] = {
    "airplane": "n02691156", "bear": "n02131653", "bicycle": "n02834778", "bird": "n01503061",
    "boat": "n02858304", "bottle": "n02876657", "car": "n02958343", "cat": "n02121808",
    "chair": "n03001627", "clock": "n03046257", "dog": "n02084071", "elephant": "n02503517",
    "keyboard": "n03614007", "knife": "n03623556", "oven": "n03862676", "truck": "n04490091",
}
IMAGENET9: Dict[str, str] = {
    "dog": "n02084071", "bird": "n01503061", "wheeled vehicle": "n04576211", "reptile": "n01661091",
    "carnivore": "n02075296", "insect": "n02159955", "musical instrument": "n03800933",
    "primate": "n02469914", "fish": "n02512053",
}
CATEGORY_SETS = {"imagenet16": IMAGENET16, "imagenet9": IMAGENET9}
# how a 1000-class model decides in each space (ModelAdapter's ``decision``)
DECISION = {"imagenet16": "mean", "imagenet9": "argmax"}


def _check(which: str) -> None:
    if which not in CATEGORY_SETS:
        raise UserError(f"unknown label map {which!r}; valid: {', '.join(CATEGORY_SETS)}")


@functools.lru_cache(maxsize=None)
def label_file(which: str) -> dict:
    """The data file of a label space: ``{name, description, decision, source, categories}``."""
    _check(which)
    text = resources.files("synthclone.robustness").joinpath("label_data", f"{which}.json").read_text()
    return json.loads(text)


def imagenet_wnids() -> List[str]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (timm ships the list)."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


@functools.lru_cache(maxsize=None)
def imagenet_groups(which: str) -> Dict[str, List[int]]:
    """Category name -> sorted ImageNet class indices of ``imagenet16`` or ``imagenet9``: the curated
    lists of the anchors (see the module docstring)."""
    return {name: sorted(map(int, idx)) for name, idx in label_file(which)["categories"].items()}


@functools.lru_cache(maxsize=None)
def wordnet_groups(which: str) -> Dict[str, List[int]]:
    """The same label space derived from WordNet: a class joins the category whose synset is among its
    hypernyms (any path); when several are, the most specific (deepest) wins. Kept to compare with the
    curated lists, not used for scoring."""
    from ..wordnet import from_wnid

    _check(which)
    cats = {name: from_wnid(w) for name, w in CATEGORY_SETS[which].items()}
    depth = {name: s.max_depth() for name, s in cats.items()}
    groups: Dict[str, List[int]] = {name: [] for name in cats}
    for index, wnid in enumerate(imagenet_wnids()):
        synset = from_wnid(wnid)
        ancestors = set(synset.closure(lambda s: s.hypernyms() + s.instance_hypernyms())) | {synset}
        hits = [name for name, s in cats.items() if s in ancestors]
        if hits:
            groups[max(hits, key=lambda n: depth[n])].append(index)
    empty = [n for n, g in groups.items() if not g]
    if empty:
        raise UserError(f"label map {which}: no ImageNet class falls under {empty}; check the WordNet install")
    return groups


def derivation_differences(which: str) -> Dict[str, Dict[str, List[int]]]:
    """Per category where the WordNet derivation and the curated list disagree:
    ``{category: {"wordnet_only": [...], "curated_only": [...]}}`` (agreeing categories left out)."""
    curated, derived = imagenet_groups(which), wordnet_groups(which)
    out = {}
    for name in curated:
        c, d = set(curated[name]), set(derived.get(name, []))
        if c != d:
            out[name] = {"wordnet_only": sorted(d - c), "curated_only": sorted(c - d)}
    return out


def groups_for(which: str, data_classes: List[str]) -> List[List[int]]:
    """Model class indices for each of ``data_classes`` (matched by name, case/underscore-insensitive)."""
    table = {k.lower(): v for k, v in imagenet_groups(which).items()}
    out = []
    for c in data_classes:
        key = str(c).lower().replace("_", " ")
        key = key.split("_", 1)[-1] if key not in table and "_" in str(c) else key
        if key not in table:
            raise UserError(f"class {c!r} is not one of the {which} categories {sorted(table)}")
        out.append(table[key])
    return out

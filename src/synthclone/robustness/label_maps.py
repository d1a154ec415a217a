"""ImageNet's 1000 classes mapped onto coarser label spaces by walking the WordNet hierarchy.

A fine class belongs to a coarse category when the category's synset is one of its hypernyms
(any path). When several categories claim it (ImageNet-9's "carnivore" also covers dogs), the most
specific one wins: the category synset with the greatest (longest-path) depth in the hierarchy. The mapping is
computed here from WordNet and timm's list of the 1000 ImageNet WordNet ids — no table is copied.

* ``imagenet16``: the 16 categories of the cue-conflict stimuli (Geirhos et al. 2019).
* ``imagenet9``: the 9 superclasses of ImageNet-9 (Xiao et al. 2021, "Noise or Signal").
"""

from __future__ import annotations

import functools
from typing import Dict, List

from ..errors import UserError

# category -> WordNet id of its synset
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


def imagenet_wnids() -> List[str]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (timm ships the list)."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


@functools.lru_cache(maxsize=None)
def imagenet_groups(which: str) -> Dict[str, List[int]]:
    """Category name -> sorted ImageNet class indices, for ``imagenet16`` or ``imagenet9``."""
    from ..wordnet import from_wnid

    if which not in CATEGORY_SETS:
        raise UserError(f"unknown label map {which!r}; valid: {', '.join(CATEGORY_SETS)}")
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

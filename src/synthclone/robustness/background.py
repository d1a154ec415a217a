"""``background``: accuracy with the object on other backgrounds; BG-gap = mixed_same - mixed_rand.

BG-gap measures background reliance only where the images have real backgrounds: the ImageNet-9
folders. Without them the probe builds its variants from the bench data, whose objects sit on
black (Fashion-MNIST, the embedded generator): no model trained there could learn a background cue,
so the built variants measure something else, distraction by pasted clutter, and say so in their
names (``clutter_*``) and in ``summarize`` (``clutter_gap``, never ``bg_gap``).

Full scale: the ImageNet-9 variants as folders ``<root>/<variant>/[val/]<NN_class>/<image>``
(variants original, mixed_same, mixed_rand, only_fg, no_fg; Xiao et al. 2021). A 1000-class model is
scored as Xiao et al. do: its 1000-way argmax mapped to the superclass holding it (backgrounds_challenge's
``in_to_in9.json``, :mod:`.label_maps`); an argmax in none of the 9 is wrong. Every variant is scored
on the same images: ``background_limit`` ``<class>/<image>`` names are drawn once from the names
that every variant holds (:func:`~.core.paired_ids`), so BG-gap is a paired difference; a variant
lacking a file that another has is an error.

Built variants (objects on black, so a background must be made): the object (its foreground mask,
:mod:`.stimuli`) is pasted onto

* ``clutter_same``: a wallpaper of another image of the *same* class (half scale, tiled, shifted, dimmed);
* ``clutter_rand``: the same kind of wallpaper from an image of a random *other* class;
* ``texture_bg``: a procedural texture (no class information);
* ``clutter_only``: the clutter_same wallpaper alone with the object's region blacked out (label: the class);
* ``original``: the untouched image.

clutter gap = clutter_same - clutter_rand: how much a wallpaper of small objects of another class
pulls the decision away, compared with small objects of the object's own class.

Rows: condition = variant; sample_id = the image's id, the same in every variant (``<class>/<image>``
for the folders); extra = {"background_class": class of the wallpaper or -1}. The built variants are
paired too: all are made from the same objects.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

from ..errors import UserError
from . import PROBES
from .core import (BenchSettings, ModelAdapter, blocks, folder_ids, gather, limited, open_folder, paired_ids,
                   predict, predicted_rows, rows_from_logits, select, to_device)
from .stimuli import composite, foreground_mask, procedural_textures, wallpaper

IN9_VARIANTS = ["original", "mixed_same", "mixed_rand", "only_fg", "no_fg"]


def build_backgrounds(data, g: torch.Generator, index: Optional[torch.Tensor] = None, device="cpu") -> dict:
    """Variant -> (float images (N, C, H, W) in [0, 1] on ``device``, background classes (N,)) for
    samples ``index`` of ``data``.

    ``index`` (default: every sample) picks the objects; the wallpapers come from any image of
    ``data`` of the wanted class. Only the objects and the 2N wallpaper sources are read
    (:func:`~.core.gather`); the composites are made on ``device``.
    """
    index = torch.arange(len(data)) if index is None else torch.as_tensor(index, dtype=torch.long)
    n, k = len(index), data.num_classes

    def read(i):
        return to_device(gather(data, i), device).float().div(255.0)

    x = read(index)
    labels = data.labels[index]
    by_class = [torch.nonzero(data.labels == c).flatten() for c in range(k)]

    def pick(classes):
        return torch.stack([by_class[c][torch.randint(0, len(by_class[c]), (1,), generator=g)][0] for c in classes.tolist()])

    same_cls = labels
    present = torch.tensor([c for c in range(k) if len(by_class[c])], dtype=torch.long)
    if len(present) == k:
        rand_cls = (labels + torch.randint(1, k, (n,), generator=g)) % k
    elif len(present) > 1:  # a small subset can miss classes: the other class is one of those present
        pos = torch.searchsorted(present, labels)
        rand_cls = present[(pos + torch.randint(1, len(present), (n,), generator=g)) % len(present)]
    else:
        rand_cls = labels
    bg_same = wallpaper(read(pick(same_cls)), g)
    bg_rand = wallpaper(read(pick(rand_cls)), g)
    textures = procedural_textures(n, x.shape[1], x.shape[-1], g, device)[..., : x.shape[-2], : x.shape[-1]] * 0.6
    mask = foreground_mask(x)
    none = torch.full((n,), -1)
    return {
        "original": (x, none),
        "clutter_same": (composite(x, bg_same), same_cls),
        "clutter_rand": (composite(x, bg_rand), rand_cls),
        "texture_bg": (composite(x, textures), none),
        "clutter_only": (bg_same * (1 - mask), same_cls),
    }


def _in9_class(folder: str) -> str:
    return re.sub(r"^\d+_", "", folder).replace("_", " ")


def _in9_folder(root: Path, variant: str) -> Path:
    return root / variant / "val" if (root / variant / "val").is_dir() else root / variant


def _in9_rows(model, settings: BenchSettings, workers: Optional[int]) -> pd.DataFrame:
    root = Path(settings.imagenet9_root)
    variants = [v for v in IN9_VARIANTS if (root / v).is_dir()]
    if not variants:
        raise UserError(f"{root} holds none of the ImageNet-9 variants {IN9_VARIANTS}; pass the bg_challenge folder")
    # one subset for every variant (matched by <class>/<file>), so BG-gap is a paired difference
    ids = paired_ids(((v, folder_ids(_in9_folder(root, v))) for v in variants), settings.background_limit,
                     settings.generator("in9-subset"), "ImageNet-9 variant")
    raw = getattr(model, "model", model)
    spec = getattr(raw, "spec", None)
    frames = []
    for v in variants:
        folder = _in9_folder(root, v)
        names = {p.name: _in9_class(p.name) for p in folder.iterdir() if p.is_dir()}
        sset = open_folder(folder, spec.in_chans if spec else 3, spec.input_size[-1] if spec else None, workers,
                           class_names=names)
        sset = select(sset, ids)
        groups, decision = None, "mean"
        if spec is not None and spec.num_classes == 1000:
            from .label_maps import DECISION, groups_for

            groups, decision = groups_for("imagenet9", sset.classes), DECISION["imagenet9"]
        adapter = ModelAdapter(raw, sset.classes, groups, decision)
        p = predict(adapter, sset, settings.batch_size, settings.device)
        frames.append(predicted_rows(settings.model_name, "background", v, 0, sset, p, extra={"background_class": -1}))
    return pd.concat(frames, ignore_index=True)


@PROBES.register("background")
def background_probe(model, data, settings: BenchSettings) -> pd.DataFrame:
    """Background reliance on the ImageNet-9 folders (mixed_same / mixed_rand / ...), or distraction by
    pasted clutter on variants built from the bench data (clutter_same / clutter_rand / ...).

    The folders are streamed. The built variants are made from ``background_limit`` images
    decoded once into memory, or, without a limit, from the whole set in blocks of ``batch_size``
    (:func:`~.core.blocks`); rows come variant by variant either way.
    """
    if settings.imagenet9_root:
        return _in9_rows(model, settings, data.workers)
    subset = limited(data, settings.background_limit, settings.generator("background-subset"))
    g = settings.generator("backgrounds")
    frames = {}
    for block in blocks(len(subset), settings.background_limit, settings.batch_size):
        index = torch.tensor(block)
        for variant, (x, bg_cls) in build_backgrounds(subset, g, index, settings.device).items():
            logits = predict(model, x, settings.batch_size, settings.device).logits
            frames.setdefault(variant, []).append(rows_from_logits(
                settings.model_name, "background", variant, 0, [subset.ids[i] for i in block], subset.labels[index],
                logits, extra=[{"background_class": int(b)} for b in bg_cls.tolist()]))
    return pd.concat([f for variant in frames.values() for f in variant], ignore_index=True)

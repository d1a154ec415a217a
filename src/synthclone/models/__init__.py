"""Classifier factory: ``create_model(name, num_classes=..., in_chans=...)``, ``list_models()``.

Every classifier follows one contract (:class:`~synthclone.models.base.Classifier`): it takes pixels
in [0, 1] shaped (N, C, H, W), normalises inside, and returns logits over its label space.
"""

from typing import Dict, Optional

import torch

from ..errors import UserError
from ..registry import Registry

MODELS: Registry = Registry("model")


def create_model(name: str, **kwargs):
    """Build a registered classifier (``resnet8``, ``resnet20``, ...) with ``kwargs``."""
    return MODELS.create(name, **kwargs)


def list_models():
    return MODELS.names()


from . import resnet  # noqa: E402,F401  (registers the embedded nets)


def clip_classifier(tower, classes, templates=None, trainable_head: bool = False, tower_recipe=None, name="small_clip"):
    """A CLIP-like ``tower`` (``encode_image``, ``zero_shot_head``, ``logit_scale``) as a zero-shot
    classifier over ``classes``: pixels [0, 1] (N, C, H, W) -> logits (N, K)."""
    from .base import ModelSpec
    from .checkpoint import set_recipe
    from .external import ClipZeroShot

    head = tower.zero_shot_head(list(classes), templates)
    mean = tuple(getattr(tower, "mean", torch.tensor([0.0])).flatten().tolist())
    std = tuple(getattr(tower, "std", torch.tensor([1.0])).flatten().tolist())
    size = tuple(getattr(tower, "input_size", (28, 28)))
    spec = ModelSpec(name=name, num_classes=len(classes), in_chans=len(mean), input_size=size, mean=mean, std=std,
                     classes=list(classes), kwargs={"templates": templates})
    scale = float(tower.logit_scale)  # contract: the multiplier itself, not its log
    model = ClipZeroShot(tower, head, spec, scale, trainable_head=trainable_head)
    if tower_recipe is not None:
        set_recipe(model, {"type": "clip_zero_shot", "tower": tower_recipe, "dim": int(head.shape[1]), "scale": scale,
                           "trainable_head": trainable_head, "spec": spec.to_dict()})
    excl = getattr(tower, "checkpoint_exclude", ())
    model.checkpoint_exclude = tuple(f"tower.{p}" for p in excl)
    return model


def model_data_config(name: Optional[str]) -> Optional[Dict[str, float]]:
    """``{"size", "crop_pct"}``: how a model name asks its data to be read, or None to keep the data's.

    ``timm:NAME``: the model's pretrained data config (``input_size`` and ``crop_pct`` of timm's
    ``pretrained_cfg``: metadata, no weights loaded); ``torchvision:NAME``: 224 px, crop 0.875
    (resize 256, centre crop 224, torchvision's ImageNet evaluation); ``open_clip:NAME``: the
    image size of its model config (224 for ``hf-hub:`` models, whose config is not read here), crop
    1.0 (open_clip resizes the shorter side and centre-crops). Embedded nets and checkpoint folders
    adapt to the data (None). Training data is read at ``size`` with crop 1.0; ``crop_pct`` is for
    evaluation splits.
    """
    if not name:
        return None
    if name.startswith("timm:"):
        import timm

        model = name.split(":", 1)[1]
        if model.startswith("local-dir:"):
            from .external import _timm_local_config

            try:
                pre = _timm_local_config(model).get("pretrained_cfg") or {}
            except UserError:
                return None  # the model's loader says what is wrong
            size = pre.get("input_size") or (3, 224, 224)
            return {"size": int(size[-1]), "crop_pct": float(pre.get("crop_pct") or 0.875)}
        model = model.split("@")[0]
        if not timm.is_model(model):
            return None
        cfg = timm.models.get_pretrained_cfg(model)
        size = getattr(cfg, "input_size", None) or (3, 224, 224)
        return {"size": int(size[-1]), "crop_pct": float(getattr(cfg, "crop_pct", None) or 0.875)}
    if name.startswith("torchvision:"):
        return {"size": 224, "crop_pct": 0.875}
    if name.startswith("open_clip:"):
        return {"size": _open_clip_image_size(name.split(":", 1)[1]), "crop_pct": 1.0}
    return None


def _open_clip_image_size(name: str) -> int:
    """The input side an open_clip model config declares, read without building the model."""
    import json
    from pathlib import Path

    from .external import _is_config_file, _split_tag

    name, _ = _split_tag(name)
    cfg = None
    try:
        if _is_config_file(name):
            cfg = json.loads(Path(name).expanduser().read_text())
        elif name.startswith("local-dir:"):
            doc = json.loads((Path(name.split(":", 1)[1]).expanduser() / "open_clip_config.json").read_text())
            cfg = doc.get("model_cfg", doc)
        elif not name.startswith("hf-hub:"):
            import open_clip

            cfg = open_clip.get_model_config(name)
    except (OSError, ValueError, ImportError):
        cfg = None  # an unreadable or unknown model fails with its own message when it is loaded
    size = ((cfg or {}).get("vision_cfg") or {}).get("image_size", 224)
    return int(size[-1] if isinstance(size, (list, tuple)) else size)


def load_any_model(name: str, classes=None, num_classes=None, in_chans=None, input_size=None,
                   pretrained=False, class_map=None, **kwargs):
    """Any classifier by one string, under the [0, 1]-pixels contract (``models.base.Classifier``).

    ``name`` is a checkpoint directory (written by ``synthclone train``), a registered model
    (``resnet8``), ``timm:NAME``, ``torchvision:NAME``, ``open_clip:NAME`` (zero-shot over ``classes``;
    ``pretrained`` names its weights: a tag, a weights file or ``"none"``, or ``NAME@TAG``; NAME may be a
    model-config JSON path, ``local-dir:FOLDER`` or ``hf-hub:ORG/REPO``, see docs/clip.md) or
    ``small_clip`` (the embedded CLIP, zero-shot). timm / torchvision weights are off unless
    ``pretrained`` is set. ``class_map`` ({target: [source indices]}) maps a model's own label space
    onto fewer classes. A new model gets ``in_chans`` / ``input_size`` (the data's) unless it loads
    pretrained weights.
    """
    from pathlib import Path

    from ..errors import UserError
    from .checkpoint import load_checkpoint, set_recipe

    k = num_classes if num_classes is not None else (len(classes) if classes else None)
    if Path(name).is_dir():
        return load_checkpoint(name)
    if name.startswith("timm:") or name.startswith("torchvision:"):
        from .external import timm_model, torchvision_model

        kind, net = name.split(":", 1)
        build = timm_model if kind == "timm" else torchvision_model
        extra = {"in_chans": in_chans} if kind == "timm" and in_chans is not None else {}
        model = build(net, classes=classes, num_classes=None if class_map else k, pretrained=pretrained,
                      input_size=input_size, class_map=class_map, **extra, **kwargs)
        recipe_kw = {**model.spec.kwargs, "classes": list(classes) if classes else None}
        recipe_kw.pop("pretrained", None)
        return set_recipe(model, {"type": kind, "name": net, "kwargs": recipe_kw})
    if name.startswith("open_clip:"):
        from .external import open_clip_model

        return open_clip_model(name, classes, pretrained=pretrained, templates=kwargs.get("templates"),
                               trainable_head=kwargs.get("trainable_head", False))
    if name == "small_clip" or name.startswith("small_clip:"):
        from .small_clip import load_small_clip

        if not classes:
            raise UserError("small_clip needs class names for its zero-shot head; pass classes")
        clip_kw = dict(kwargs.get("clip_kwargs") or {})
        if name == "small_clip:tiny":
            clip_kw = {"weights": None, "tiny": True, **clip_kw}
        import copy

        tower = copy.deepcopy(load_small_clip(**clip_kw))  # the loader caches one shared instance: never mutate it
        return clip_classifier(tower, classes, kwargs.get("templates"), kwargs.get("trainable_head", False),
                               {"type": "small_clip", "kwargs": clip_kw}, name="small_clip")
    if name in MODELS:
        kw = dict(kwargs)
        if k is not None:
            kw["num_classes"] = k
        if classes:
            kw["classes"] = list(classes)
        if in_chans is not None:
            kw["in_chans"] = in_chans
        if input_size is not None:
            kw["input_size"] = tuple(input_size)
        model = create_model(name, **kw)
        if "input_size" in kw:
            kw["input_size"] = list(kw["input_size"])
        return set_recipe(model, {"type": "registered", "name": name, "kwargs": kw})
    valid = ", ".join(MODELS.names())
    raise UserError(f"unknown model {name!r}; use a checkpoint directory, one of {valid}, small_clip, "
                    "or timm:NAME / torchvision:NAME / open_clip:NAME")


__all__ = ["MODELS", "create_model", "list_models", "load_any_model", "clip_classifier"]

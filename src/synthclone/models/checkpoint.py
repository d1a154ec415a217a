"""Checkpoints: a directory with ``model.safetensors`` + ``meta.json``; never pickle.

``meta.json`` holds the model's *recipe* (plain JSON saying how to rebuild the architecture with no
weights: a registered name and kwargs, a timm/torchvision/open_clip name, or a composite such as a
linear probe on a backbone), its :class:`~synthclone.models.base.ModelSpec` (label space, input
size, normalisation) and a training summary. ``load_checkpoint`` rebuilds from the recipe and loads
the tensors; nothing in the directory is executed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from ..errors import UserError
from .base import Classifier, ModelSpec

FORMAT = "synthclone.checkpoint/1"
WEIGHTS = "model.safetensors"
META = "meta.json"


def set_recipe(model: nn.Module, recipe: Dict[str, Any]) -> nn.Module:
    """Attach the JSON recipe that rebuilds ``model``'s architecture (see :func:`build_from_recipe`)."""
    model.recipe = json.loads(json.dumps(recipe))  # a plain-JSON copy, rejected early if not serialisable
    return model


def get_recipe(model: nn.Module) -> Dict[str, Any]:
    recipe = getattr(model, "recipe", None)
    if recipe is None:
        spec = getattr(model, "spec", None)
        from . import MODELS

        if spec is not None and spec.name in MODELS:
            # a registered model built directly with create_model(): its spec says how to rebuild it
            kwargs = {"num_classes": spec.num_classes, "in_chans": spec.in_chans, "classes": spec.classes,
                      "mean": list(spec.mean), "std": list(spec.std), "input_size": list(spec.input_size)}
            return {"type": "registered", "name": spec.name, "kwargs": kwargs}
        raise ValueError(f"model {type(model).__name__} has no recipe; build it with load_any_model() or set_recipe()")
    return recipe


# The recipe kwargs synthclone writes for hub models, and a few architecture settings of timm's
# create_model. A checkpoint folder is data, not a call: anything else (checkpoint_path,
# pretrained_cfg_overlay, cache_dir, ...) would make opening someone's folder load files it names.
HUB_RECIPE_KWARGS = {
    "timm": {"classes", "num_classes", "in_chans", "input_size", "class_map", "pretrained",
             "drop_rate", "drop_path_rate", "global_pool"},
    "torchvision": {"classes", "num_classes", "input_size", "class_map", "pretrained"},
}


def build_from_recipe(recipe: Dict[str, Any]) -> nn.Module:
    """The architecture a recipe describes, with fresh (random or zero) weights; no download.

    Only the recipe fields synthclone writes are read; a hub model's recipe with other keyword
    arguments (:data:`HUB_RECIPE_KWARGS`) is refused with a :class:`UserError`.
    """
    if not isinstance(recipe, dict):
        raise UserError(f"checkpoint recipe must be a JSON object, not {type(recipe).__name__}")
    kind = recipe.get("type")
    kwargs = recipe.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise UserError(f"checkpoint recipe kwargs must be a JSON object, not {type(kwargs).__name__}")
    kwargs = dict(kwargs)
    if kind in HUB_RECIPE_KWARGS:
        unknown = sorted(set(kwargs) - HUB_RECIPE_KWARGS[kind])
        if unknown:
            raise UserError(f"checkpoint recipe for {kind}:{recipe.get('name')} has keyword arguments synthclone never "
                            f"writes ({', '.join(unknown)}); refusing to pass them to {kind} (a checkpoint is data, not a call)")
    if kind == "registered":
        from . import create_model

        model = create_model(recipe["name"], **kwargs)
    elif kind == "timm":
        from .external import timm_model

        model = timm_model(recipe["name"], **{**kwargs, "pretrained": False})
    elif kind == "torchvision":
        from .external import torchvision_model

        model = torchvision_model(recipe["name"], **{**kwargs, "pretrained": False})
    elif kind == "probe":
        from .composite import LinearProbe

        model = LinearProbe(build_from_recipe(recipe["backbone"]), recipe["num_classes"], recipe.get("classes"),
                            feature_dim=recipe["feature_dim"], freeze=recipe.get("freeze", True),
                            norm=bool(recipe.get("norm", False)))
    elif kind == "clip_zero_shot":
        from .external import ClipZeroShot

        tower = build_from_recipe(recipe["tower"])
        spec = ModelSpec(**recipe["spec"])
        head = torch.zeros(spec.num_classes, recipe["dim"])
        model = ClipZeroShot(tower, head, spec, recipe["scale"], trainable_head=recipe.get("trainable_head", False))
    elif kind == "small_clip":
        from .small_clip import load_small_clip

        import copy

        model = copy.deepcopy(load_small_clip(**kwargs))  # cached shared instance: load weights into a copy
    elif kind == "open_clip_tower":
        from .external import load_open_clip

        model = load_open_clip(recipe["name"], pretrained=None)
    elif kind == "contrastive_tower":
        from .composite import ContrastiveTower

        model = ContrastiveTower(build_from_recipe(recipe["backbone"]), recipe["dim"], recipe["feature_dim"])
    else:
        raise UserError(f"checkpoint recipe type {kind!r} is unknown to this synthclone version; upgrade synthclone")
    model.recipe = recipe
    return model


def _excluded(model: nn.Module) -> tuple:
    # frozen parts the recipe rebuilds exactly (e.g. a shipped text encoder) are not stored twice
    return tuple(getattr(model, "checkpoint_exclude", ()) or ())


def _write_atomic(path: Path, writer) -> None:
    from ..paths import atomic_write

    atomic_write(path, writer)


def save_checkpoint(model: nn.Module, out_dir: str | Path, training: Optional[Dict[str, Any]] = None,
                    extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``model`` to ``out_dir`` as ``model.safetensors`` + ``meta.json`` (atomically).

    ``meta.json`` is written last, so a directory with it is always complete.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skip = _excluded(model)
    # a copy on the CPU: safetensors refuses tensors that share storage (and the model may be on a GPU)
    tensors = {k: v.detach().to('cpu', copy=True).contiguous() for k, v in model.state_dict().items()
               if not (skip and k.startswith(skip))}
    spec = getattr(model, "spec", None)
    meta = {
        "format": FORMAT,
        "recipe": get_recipe(model),
        "spec": spec.to_dict() if isinstance(spec, ModelSpec) else None,
        "classes": list(spec.classes) if spec is not None and spec.classes else None,
        "excluded": list(skip),
        "training": training or {},
        **(extra or {}),
    }
    try:
        from .. import __version__

        meta["synthclone_version"] = __version__
    except ImportError:
        pass
    meta_path = out / META
    if meta_path.exists():
        meta_path.unlink()  # the pair is being replaced: mark it incomplete until both are written
    _write_atomic(out / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": FORMAT}))
    _write_atomic(meta_path, lambda p: p.write_text(json.dumps(meta, indent=2, default=str)))
    return out


def read_meta(ckpt_dir: str | Path) -> Dict[str, Any]:
    """``meta.json`` of a checkpoint directory, or a :class:`UserError` saying what is wrong."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        raise UserError(f"checkpoint {d} does not exist; pass a directory written by 'synthclone train'")
    if not (d / META).is_file():
        raise UserError(f"{d} is not a synthclone checkpoint (no {META}); pass a directory written by 'synthclone train'")
    try:
        meta = json.loads((d / META).read_text())
    except json.JSONDecodeError:
        raise UserError(f"{d / META} is not valid JSON; the checkpoint is damaged, retrain or restore it") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{d / META} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if not (d / WEIGHTS).is_file():
        raise UserError(f"checkpoint {d} has no {WEIGHTS}; the checkpoint is incomplete, retrain or restore it")
    return meta


def load_state(module: nn.Module, path: str | Path, excluded: tuple = ()) -> None:
    """Load a safetensors file into ``module``; every key must match except ``excluded`` prefixes."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise UserError(f"{path} is missing; the checkpoint folder is incomplete (re-save or re-train it)") from None
    except Exception as exc:  # safetensors' own error for a truncated or foreign file
        raise UserError(f"{path} is not a readable safetensors file ({str(exc).splitlines()[0][:120]}); the file is "
                        "truncated or not a checkpoint: re-save or re-train it") from None
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)[:200]
        raise UserError(f"{path} does not fit the model ({first.strip()}); the checkpoint and its meta.json disagree") from None
    missing = [k for k in missing if not (excluded and k.startswith(tuple(excluded)))]
    if missing or unexpected:
        raise UserError(f"{path} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}; "
                        "the checkpoint and its meta.json disagree")


def load_checkpoint(ckpt_dir: str | Path) -> Classifier:
    """Rebuild a classifier from a checkpoint directory; returned in eval mode.

    Raises :class:`UserError` for a directory without ``meta.json`` or with mismatched weights.
    """
    d = Path(ckpt_dir)
    meta = read_meta(d)
    try:
        model = build_from_recipe(meta["recipe"])
    except UserError:
        raise
    except (KeyError, TypeError, ValueError) as exc:  # a hand-edited or foreign meta.json
        raise UserError(f"{d / META} does not describe a model this synthclone can rebuild "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r}); re-save the checkpoint") from None
    load_state(model, d / WEIGHTS, tuple(meta.get("excluded") or ()))
    if meta.get("spec") and isinstance(getattr(model, "spec", None), ModelSpec):
        spec = dict(meta["spec"])
        spec["input_size"] = tuple(spec["input_size"])
        spec["mean"], spec["std"] = tuple(spec["mean"]), tuple(spec["std"])
        model.spec = ModelSpec(**spec)
    model.checkpoint_meta = meta
    return model.eval()


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint directory's two files to ``dst`` (meta.json last)."""
    src, dst = Path(src), Path(dst)
    read_meta(src)
    dst.mkdir(parents=True, exist_ok=True)
    if (dst / META).exists():
        (dst / META).unlink()
    for name in (WEIGHTS, META):
        _write_atomic(dst / name, lambda p, n=name: shutil.copyfile(src / n, p))
    return dst


__all__ = ["save_checkpoint", "load_checkpoint", "read_meta", "build_from_recipe", "set_recipe", "get_recipe",
           "copy_checkpoint", "load_state"]

"""timm, torchvision and open_clip models behind the one classifier contract.

Every wrapper takes pixels in [0, 1] shaped (N, C, H, W): grayscale input is repeated to the
model's 3 channels, the image is resized to the model's input size, then normalised with the
model's own mean/std (timm: ``resolve_data_config``; torchvision: the weights' transforms;
open_clip: the visual tower's ``preprocess_cfg``). Label-space adapters (:class:`LabelMap`) turn
e.g. 1000 ImageNet logits into K coarser classes.

timm / torchvision pretrained weights are off by default: nothing is downloaded unless
``pretrained=True`` is asked for, so everything runs offline. An open_clip model must name its
weights (a tag, a local file, or ``none`` for random ones; see :func:`resolve_open_clip` and
docs/clip.md): a CLIP with random weights is a meaningless zero-shot classifier.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MissingExtraError, UserError
from .base import Classifier, ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LabelMap(nn.Module):
    """Maps logits over a source label space (e.g. ImageNet's 1000) onto K target classes.

    ``groups[k]`` lists the source indices of target class ``k``. Target logit ``k`` is the
    log-sum-exp of its sources' logits, so a softmax over the targets gives each group's summed
    probability, renormalised over the mapped sources.
    """

    def __init__(self, groups: Sequence[Sequence[int]], num_source: int):
        super().__init__()
        if not groups or any(len(g) == 0 for g in groups):
            raise UserError("label map: every target class needs at least one source index")
        bad = [i for g in groups for i in g if not 0 <= int(i) < num_source]
        if bad:
            raise UserError(f"label map: source indices {bad[:5]} outside 0..{num_source - 1}")
        mask = torch.full((len(groups), num_source), float("-inf"))
        for k, g in enumerate(groups):
            mask[k, list(map(int, g))] = 0.0
        self.register_buffer("mask", mask)
        self.groups = [list(map(int, g)) for g in groups]

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, S) source logits -> (N, K) target logits."""
        return torch.logsumexp(logits.float().unsqueeze(1) + self.mask.unsqueeze(0), dim=-1)


class ExternalClassifier(Classifier):
    """A third-party network (expects normalised RGB at its own size) under the [0, 1] contract.

    ``head_module`` is the final linear layer; its input is what :meth:`features` returns.
    """

    def __init__(self, net: nn.Module, spec: ModelSpec, head_module: Optional[nn.Module] = None,
                 label_map: Optional[LabelMap] = None):
        super().__init__(net, spec)
        self.label_map = label_map
        # not a submodule attribute: it lives inside ``net`` already
        self.__dict__["_head_module"] = head_module

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] (N, C, H, W) -> normalised (N, in_chans, *input_size)."""
        if x.shape[1] == 1 and self.spec.in_chans == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and self.spec.in_chans == 1:
            x = x.mean(dim=1, keepdim=True)
        size = tuple(self.spec.input_size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=x.shape[-1] > size[-1])
        return self.normalize(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(self.prepare(x))
        return self.label_map(logits) if self.label_map is not None else logits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        head = self._head_module
        if head is None:
            raise AttributeError(f"{self.spec.name} exposes no features()")
        captured: List[torch.Tensor] = []
        # the head's input is the penultimate feature, whatever the architecture computes before it
        handle = head.register_forward_pre_hook(lambda _m, inp: captured.append(inp[0]))
        try:
            self.net(self.prepare(x))
        finally:
            handle.remove()
        return captured[0].flatten(1)


def _gray_stats(values: Sequence[float], in_chans: int) -> Tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if in_chans == 1 and len(values) == 3:
        return (sum(values) / 3,)
    return values


def _label_map(class_map, num_source: int) -> Optional[LabelMap]:
    if class_map is None:
        return None
    groups = list(class_map.values()) if isinstance(class_map, dict) else list(class_map)
    return LabelMap(groups, num_source)


def _check_classes(classes, num_classes, class_map) -> Tuple[Optional[List[str]], Optional[int]]:
    if class_map is not None:
        names = list(class_map.keys()) if isinstance(class_map, dict) else classes
        return (list(names) if names else None), None
    if classes is not None and num_classes is not None and len(classes) != num_classes:
        raise UserError(f"{len(classes)} class names given for num_classes={num_classes}; make them agree")
    return (list(classes) if classes else None), (num_classes if num_classes is not None else (len(classes) if classes else None))


def timm_model(name: str, classes=None, num_classes: Optional[int] = None, pretrained: bool = False,
               in_chans: Optional[int] = None, input_size=None, class_map=None, **kwargs) -> ExternalClassifier:
    """``timm.create_model(name)`` as a classifier.

    With ``pretrained=False`` (default, offline) the net is randomly initialised; ``in_chans`` and
    ``input_size`` then default to the model's config unless given (e.g. 1 and (28, 28) to train
    from scratch on Fashion-MNIST). With ``class_map`` the model keeps its own head and the map
    reduces its logits to the target classes.
    """
    import timm
    from timm.data import resolve_data_config

    if name.startswith("local-dir:"):
        _timm_local_config(name)  # a folder without timm's config.json: one line now, not a traceback later
    elif not name.startswith("hf-hub:") and not timm.is_model(name):
        raise UserError(f"unknown timm model {name!r}; see timm.list_models() for valid names, or give "
                        "timm:local-dir:FOLDER (a folder saved by timm.models.save_for_hf) or timm:hf-hub:ORG/REPO")
    names, k = _check_classes(classes, num_classes, class_map)
    create_kw = dict(kwargs)
    if k is not None:
        create_kw["num_classes"] = k
    if in_chans is not None and not pretrained:
        create_kw["in_chans"] = in_chans
    try:
        net = timm.create_model(name, pretrained=pretrained, **create_kw)
    except Exception as exc:  # download refused offline, bad kwargs
        if pretrained:
            raise UserError(f"cannot load pretrained timm weights for {name!r} ({type(exc).__name__}: {exc}); "
                            "check the network or drop pretrained") from None
        raise
    cfg = resolve_data_config({}, model=net)
    chans = int(create_kw.get("in_chans", cfg["input_size"][0]))
    size = tuple(input_size) if input_size is not None and not pretrained else tuple(cfg["input_size"][1:])
    lm = _label_map(class_map, net.num_classes)
    spec = ModelSpec(
        name=f"timm:{name}", num_classes=len(lm.groups) if lm else net.num_classes, in_chans=chans,
        input_size=size, mean=_gray_stats(cfg["mean"], chans), std=_gray_stats(cfg["std"], chans),
        classes=names,
        kwargs={"pretrained": bool(pretrained), "in_chans": chans, "input_size": list(size),
                "num_classes": k, "class_map": class_map, **kwargs},
    )
    head = net.get_classifier() if hasattr(net, "get_classifier") else None
    return ExternalClassifier(net, spec, head if isinstance(head, nn.Module) and not isinstance(head, nn.Identity) else None, lm)


def _timm_local_config(name: str) -> dict:
    """``config.json`` of a ``local-dir:FOLDER`` timm model (what ``timm.models.save_for_hf`` writes: the
    architecture and its ``pretrained_cfg``); ``--pretrained`` loads the weights file beside it."""
    import json

    folder = Path(name.split(":", 1)[1]).expanduser()
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"timm:{name}: {folder} has no config.json; save the model with "
                        "timm.models.save_for_hf(model, FOLDER) (config.json + model.safetensors)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"timm:{name}: {path} is not valid JSON; save the model again with timm.models.save_for_hf") from None


def _torchvision_head(net: nn.Module) -> Optional[nn.Module]:
    for attr in ("fc", "classifier", "heads", "head"):
        mod = getattr(net, attr, None)
        if isinstance(mod, nn.Sequential) and len(mod):
            linears = [m for m in mod.modules() if isinstance(m, nn.Linear)]
            return linears[-1] if linears else None
        if isinstance(mod, nn.Linear):
            return mod
    return None


def torchvision_model(name: str, classes=None, num_classes: Optional[int] = None, pretrained: bool | str = False,
                      input_size=None, class_map=None, **kwargs) -> ExternalClassifier:
    """``torchvision.models.get_model(name)`` as a classifier (3-channel; grayscale is repeated).

    ``pretrained`` may be True (the default weights) or a weights enum name such as
    ``"IMAGENET1K_V1"``; off by default. Without pretrained weights, ``input_size`` defaults to 224
    unless given (e.g. (28, 28) to train from scratch at the data's size).
    """
    import torchvision

    if name not in torchvision.models.list_models():
        raise UserError(f"unknown torchvision model {name!r}; see torchvision.models.list_models()")
    names, k = _check_classes(classes, num_classes, class_map)
    weights = None
    if pretrained:
        weights_enum = torchvision.models.get_model_weights(name)
        weights = weights_enum.DEFAULT if pretrained is True else weights_enum[str(pretrained)]
    create_kw = dict(kwargs)
    try:
        if weights is not None:
            net = torchvision.models.get_model(name, weights=weights)
            if k is not None and k != len(weights.meta["categories"]):
                raise UserError(f"torchvision:{name} pretrained has {len(weights.meta['categories'])} classes, "
                                f"not {k}; pass class_map to map its labels or drop pretrained")
        else:
            if k is not None:
                create_kw["num_classes"] = k
            net = torchvision.models.get_model(name, weights=None, **create_kw)
    except UserError:
        raise
    except Exception as exc:
        if weights is not None:
            raise UserError(f"cannot load pretrained torchvision weights for {name!r} ({type(exc).__name__}); "
                            "check the network or drop pretrained") from None
        raise
    mean, std, size = IMAGENET_MEAN, IMAGENET_STD, (224, 224)
    if weights is not None:
        t = weights.transforms()
        mean, std = tuple(t.mean), tuple(t.std)
        crop = getattr(t, "crop_size", [224])
        size = (int(crop[0]), int(crop[-1]))
    elif input_size is not None:
        size = tuple(int(s) for s in input_size)
    head = _torchvision_head(net)
    num_out = head.out_features if head is not None else (k or 1000)
    lm = _label_map(class_map, num_out)
    spec = ModelSpec(
        name=f"torchvision:{name}", num_classes=len(lm.groups) if lm else num_out, in_chans=3, input_size=size,
        mean=mean, std=std, classes=names,
        kwargs={"pretrained": pretrained, "input_size": list(size), "num_classes": k, "class_map": class_map, **kwargs},
    )
    return ExternalClassifier(net, spec, head, lm)


# ----------------------------------------------------------------------------------- open_clip

NO_WEIGHTS = "none"     # ``pretrained: none``: random weights, asked for explicitly
BUNDLED = "bundled"     # the weights a ``local-dir:`` / ``hf-hub:`` source carries beside its config
_SCHEMAS = ("local-dir:", "hf-hub:")


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise MissingExtraError("open_clip_torch", "clip", "open_clip models") from None
    return open_clip


def _is_config_file(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(_SCHEMAS)


def _split_tag(name: str) -> Tuple[str, Optional[str]]:
    """``ViT-B-16@openai`` -> (``ViT-B-16``, ``openai``); paths and schema names keep their ``@``."""
    if "@" in name and not name.startswith(_SCHEMAS) and not _is_config_file(name):
        arch, tag = name.split("@", 1)
        return arch, tag
    return name, None


def register_open_clip_config(path) -> str:
    """Register a model-config JSON (the format of open_clip's ``model_configs/*.json``: ``embed_dim``,
    ``vision_cfg``, ``text_cfg``) with open_clip; returns the architecture name it gets (the file's stem)."""
    open_clip = _open_clip()
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"open_clip model config {p} does not exist; give a JSON file like open_clip's "
                        "model_configs/ViT-B-16.json")
    try:
        cfg = json.loads(p.read_text())
    except (OSError, ValueError):
        raise UserError(f"open_clip model config {p} is not readable JSON; fix the file") from None
    if not isinstance(cfg, dict) or not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise UserError(f"{p} is not an open_clip model config (it needs embed_dim, vision_cfg and text_cfg, as in "
                        "open_clip's model_configs/*.json); for a folder with open_clip_config.json and weights use "
                        "open_clip:local-dir:FOLDER")
    arch = p.stem
    known = open_clip.get_model_config(arch)
    if known is None:
        open_clip.add_model_config(p.resolve())
    elif known != cfg:  # open_clip keys configs by file stem: a second file of that name would replace the first
        raise UserError(f"{p}: open_clip already knows a model named {arch!r} with another config; rename the file")
    return arch


def resolve_open_clip(spec: str, pretrained=None, key: str = "clip.pretrained") -> Tuple[str, Optional[str]]:
    """Check an open_clip model and its weights without loading or downloading anything.

    Args:
        spec: ``open_clip:NAME`` (or ``NAME``): a built-in architecture of ``open_clip.list_models()``
            (``RN50``, ``ViT-B-16``, ...; ``NAME@TAG`` names the weights too), a model-config JSON path
            (``/path/to/my-clip.json``), ``local-dir:FOLDER`` or ``hf-hub:ORG/REPO``.
        pretrained: a pretrained tag of the architecture (``openai``, ``laion2b_s34b_b79k``), a local weights
            file, ``"none"`` for random weights, or None, which only a source that carries its own weights
            (``NAME@TAG``, ``local-dir:``, ``hf-hub:``) may leave it: a CLIP with random weights is a
            meaningless zero-shot classifier, so it must be asked for.
        key: the setting ``pretrained`` came from, named in errors.
    Returns:
        ``(name, weights)`` for :func:`load_open_clip`: ``weights`` is None (random), :data:`BUNDLED`, a
        tag, or the absolute path of a weights file; a config path becomes absolute.
    Raises:
        UserError: an unknown architecture, a tag the architecture lacks, a missing file, unset weights.
    """
    open_clip = _open_clip()
    name = spec.split(":", 1)[1] if spec.startswith("open_clip:") else spec
    if pretrained is False:
        pretrained = None
    if pretrained is True:
        raise UserError(f"open_clip:{name}: pretrained=True names no weights; give {key} a pretrained tag or a weights file")
    if pretrained is not None:
        pretrained = str(pretrained).strip()
    name, tag = _split_tag(name)
    if tag is not None:
        if pretrained not in (None, tag):
            raise UserError(f"open_clip:{name}@{tag} and {key}={pretrained!r} name two different weights; keep one")
        pretrained = tag
    if name.startswith(_SCHEMAS):
        if pretrained is not None and pretrained.lower() != NO_WEIGHTS:  # open_clip would ignore it with a log line
            raise UserError(f"open_clip:{name} carries its own weights; leave {key} unset (or 'none' for random weights)")
        if name.startswith("local-dir:"):
            folder = Path(name.split(":", 1)[1]).expanduser()
            if not (folder / "open_clip_config.json").is_file():
                raise UserError(f"open_clip:{name}: {folder} holds no open_clip_config.json; give a folder with an "
                                "open_clip config and its weights")
            name = f"local-dir:{folder.resolve()}"
        return name, (None if pretrained is not None else BUNDLED)
    if _is_config_file(name):
        arch = register_open_clip_config(name)
        name = str(Path(name).expanduser().resolve())
    else:
        if name not in open_clip.list_models():
            close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
            hint = f" (close: {', '.join(close)})" if close else ""
            raise UserError(f"unknown open_clip model {name!r}{hint}; use a name from open_clip.list_models() such as "
                            "RN50 or ViT-B-16, open_clip:/path/to/model_config.json, or open_clip:local-dir:FOLDER")
        arch = name
    tags = open_clip.list_pretrained_tags_by_model(arch)
    shown = f"{', '.join(tags[:4])}{', ...' if len(tags) > 4 else ''}"
    if pretrained is None:
        offer = f"a pretrained tag ({shown}), " if tags else ""
        raise UserError(f"open_clip:{name} has no weights set; set {key} (or write open_clip:{name}@TAG) to {offer}a "
                        "local weights file, or 'none' for random weights (a random CLIP is a meaningless zero-shot classifier)")
    if pretrained.lower() == NO_WEIGHTS:
        return name, None
    if open_clip.get_pretrained_cfg(arch, pretrained):
        return name, pretrained
    path = Path(pretrained).expanduser()
    if path.is_file():
        return name, str(path.resolve())
    raise UserError(f"{key} {pretrained!r} is neither a pretrained tag of {arch} ({shown or 'it has none'}) nor an "
                    "existing weights file; fix the tag or the path")


@contextlib.contextmanager
def _quiet_random_init():
    # open_clip logs "initialized randomly" for an architecture-only build, but a checkpoint fills it next
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.WARNING))
    try:
        yield
    finally:
        logging.disable(previous)


def load_open_clip(name: str, pretrained: Optional[str] = None) -> "OpenClipTower":
    """An open_clip model as a tower, through ``open_clip.create_model`` as users load it.

    Args:
        name: a built-in architecture (``ViT-B-16``; ``ViT-B-16@openai`` takes the tag from the name), a
            model-config JSON path (registered with ``open_clip.add_model_config``), ``local-dir:FOLDER``
            or ``hf-hub:ORG/REPO``.
        pretrained: None or ``"none"``: the architecture with random weights, nothing read or downloaded
            (a checkpoint's state dict fills it); a tag (downloaded from the Hugging Face hub unless
            cached); a weights file (``.safetensors`` or a torch state dict); :data:`BUNDLED`: the weights
            a ``local-dir:`` / ``hf-hub:`` source carries. Use :func:`resolve_open_clip` on user input first.
    Returns:
        :class:`OpenClipTower` in eval mode, on the CPU.
    """
    open_clip = _open_clip()
    arch, tag = _split_tag(name)
    if tag is not None and pretrained is None:
        name, pretrained = arch, tag
    if _is_config_file(name):
        name = str(Path(name).expanduser().resolve())
        arch = register_open_clip_config(name)
    weights = None if pretrained is None or str(pretrained).lower() == NO_WEIGHTS else str(pretrained)
    try:
        if weights is None:
            with _quiet_random_init():
                # pretrained_text=False: no base text weights from the hub for models with a Hugging Face text tower
                model = open_clip.create_model(arch, pretrained=None, load_weights=False, pretrained_text=False)
        elif weights == BUNDLED:
            model = open_clip.create_model(arch, require_pretrained=True)
        else:
            model = open_clip.create_model(arch, pretrained=weights, require_pretrained=True)
        tokenizer = open_clip.get_tokenizer(arch)
    except Exception as exc:  # open_clip raises RuntimeError, ValueError, OSError and hub errors for all of these
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        if weights not in (None, BUNDLED) and not Path(weights).is_file():
            raise UserError(f"cannot get open_clip weights {weights!r} for {arch} ({detail}); tags download from the "
                            f"Hugging Face hub unless cached (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}): "
                            "fetch them once with network access, or give a local weights file") from None
        raise UserError(f"cannot load open_clip model {arch!r} with weights {weights or 'none'} ({detail}); check the "
                        "name (open_clip.list_models()) and that the weights are for this architecture") from None
    model.eval()
    return OpenClipTower(model, tokenizer, name)


def _resize_like_open_clip(x: torch.Tensor, size: Tuple[int, int], mode: str, fill: float) -> torch.Tensor:
    """open_clip's evaluation resize on a float batch: ``shortest`` (shorter side to the size, centre
    crop), ``longest`` (longer side to the size, centre pad) or ``squash`` (both sides)."""
    h, w = x.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return x
    if mode == "squash":
        new = (th, tw)
    else:
        scale = max(th / h, tw / w) if mode == "shortest" else min(th / h, tw / w)
        new = (max(1, round(h * scale)), max(1, round(w * scale)))
    if new != (h, w):
        # bilinear, antialiased when shrinking (open_clip's PIL transform is bicubic; the difference is small)
        x = F.interpolate(x, size=new, mode="bilinear", align_corners=False, antialias=new[0] < h or new[1] < w)
    nh, nw = x.shape[-2:]
    if (nh, nw) == (th, tw):
        return x
    if nh >= th and nw >= tw:
        top, left = (nh - th) // 2, (nw - tw) // 2
        return x[..., top:top + th, left:left + tw]
    pad_h, pad_w = max(0, th - nh), max(0, tw - nw)
    x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=fill)
    nh, nw = x.shape[-2:]
    top, left = (nh - th) // 2, (nw - tw) // 2
    return x[..., top:top + th, left:left + tw]


def open_clip_templates() -> List[str]:
    """CLIP's 80 ImageNet prompt templates (as open_clip ships them), as ``"... {} ..."`` strings."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]


class OpenClipTower(nn.Module):
    """An open_clip model reduced to what synthclone needs: pixels in [0, 1] -> embeddings.

    Same interface as the small CLIP: ``encode_image``, ``encode_text``, ``logit_scale``,
    ``zero_shot_head``, ``zero_shot_classifier``. Preprocessing is the model's own (its visual
    tower's ``preprocess_cfg``): input size, resize mode and mean/std; grayscale is repeated to RGB.
    """

    def __init__(self, model: nn.Module, tokenizer, name: str):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        pp = dict(getattr(model.visual, "preprocess_cfg", None) or {})
        size = pp.get("size") or getattr(model.visual, "image_size", 224)
        self.input_size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        self.resize_mode = str(pp.get("resize_mode") or "shortest")
        self.fill = float(pp.get("fill_color") or 0) / 255.0
        self.register_buffer("mean", torch.tensor(pp.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pp.get("std", (0.26862954, 0.26130258, 0.27577711))).view(1, 3, 1, 1))

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] (N, C, H, W) -> the model's normalised input (N, 3, *input_size)."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = _resize_like_open_clip(x, self.input_size, self.resize_mode, self.fill)
        return (x - self.mean) / self.std

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] (N, C, H, W) -> L2-normalised (N, D)."""
        return F.normalize(self.model.encode_image(self.prepare(x)).float(), dim=-1)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Prompts -> L2-normalised (N, D), on the tower's device."""
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start:start + batch_size])).to(self.mean.device)
            out.append(F.normalize(self.model.encode_text(tokens).float(), dim=-1))
        return torch.cat(out)

    @torch.no_grad()
    def zero_shot_head(self, classes: Sequence[str], templates: Optional[Sequence[str]] = None) -> torch.Tensor:
        """(K, D) L2-normalised class embeddings, each the mean over ``templates`` (default: CLIP's 80
        ImageNet templates, :func:`open_clip_templates`)."""
        if not classes:
            raise UserError("zero-shot head: the class list is empty")
        templates = list(templates or open_clip_templates())
        prompts = [t.format(c) if "{}" in t else f"{t} {c}" for c in classes for t in templates]
        emb = self.encode_text(prompts).view(len(classes), len(templates), -1)
        return F.normalize(emb.mean(1), dim=-1)

    def zero_shot_classifier(self, classes: Sequence[str], templates: Optional[Sequence[str]] = None) -> "ClipZeroShot":
        """Pixels [0, 1] (N, C, H, W) -> logits (N, K) over ``classes``."""
        from . import clip_classifier

        return clip_classifier(self, list(classes), templates, name=f"open_clip:{self.name}")


class ClipZeroShot(Classifier):
    """A CLIP-like tower with a (K, D) text head: logits = scale * img_emb @ head.T.

    ``head`` is a trainable parameter when ``trainable_head`` (classifier tuning) and the tower
    is frozen; ``features(x)`` returns the (N, D) image embedding.
    """

    def __init__(self, tower: nn.Module, head: torch.Tensor, spec: ModelSpec, scale: float,
                 trainable_head: bool = False):
        super().__init__(nn.Identity(), spec)
        self.tower = tower
        self.scale = float(scale)
        if trainable_head:
            self.head = nn.Linear(head.shape[1], head.shape[0])
            with torch.no_grad():
                self.head.weight.copy_(head * self.scale)
                self.head.bias.zero_()
        else:
            self.register_buffer("text_head", head.clone())
            self.head = None
        # classifier tuning keeps the tower frozen, BatchNorm statistics included
        self.tower_frozen = trainable_head
        if trainable_head:
            for p in self.tower.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.tower_frozen:
            self.tower.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.head(f) if self.head is not None else self.scale * f @ self.text_head.t()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # A frozen tower has parameters without gradients, but gradients must still reach the
        # input (adversarial probes differentiate every model), so no torch.no_grad() here.
        return self.tower.encode_image(x).float()


def open_clip_model(spec: str, classes=None, pretrained=None, templates=None, trainable_head: bool = False,
                    key: str = "clip.pretrained", **_: object) -> ClipZeroShot:
    """``open_clip:NAME`` with ``pretrained`` weights (see :func:`resolve_open_clip`) as a zero-shot
    classifier over ``classes``: pixels [0, 1] (N, C, H, W) -> logits (N, K), the head built by the
    text tower from ``templates``. With ``trainable_head`` (classifier tuning) the head is a linear
    layer started from those text weights and the tower is frozen.

    The recipe records the model and its weights; a checkpoint rebuilds the architecture and loads
    its own state dict (the whole tower is stored), so reloading needs no network.
    """
    from . import clip_classifier

    if not classes:
        raise UserError(f"{spec} needs class names to build its zero-shot head; pass classes=[...]")
    name, weights = resolve_open_clip(spec, pretrained, key)
    tower = load_open_clip(name, weights)
    recipe = {"type": "open_clip_tower", "name": name, "pretrained": weights}
    label = spec if spec.startswith("open_clip:") else f"open_clip:{spec}"
    return clip_classifier(tower, list(classes), templates, trainable_head, recipe, name=label)

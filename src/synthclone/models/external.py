"""timm, torchvision and open_clip models behind the one classifier contract.

Every wrapper takes pixels in [0, 1] shaped (N, C, H, W): grayscale input is repeated to the
model's 3 channels, the image is resized to the model's input size, then normalised with the
model's own mean/std (timm: ``resolve_data_config``; torchvision: the weights' transforms;
open_clip: the visual tower's ``preprocess_cfg``). Label-space adapters (:class:`LabelMap`) turn
e.g. 1000 ImageNet logits into K coarser classes.

Pretrained weights are off by default: nothing is downloaded unless ``pretrained=True`` (or an
open_clip tag) is asked for, so everything runs offline.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MissingExtraError, UserError
from .base import Classifier, ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_TEMPLATES = ["a photo of a {}.", "a photo of the {}.", "a picture of a {}."]


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

    if not timm.is_model(name):
        raise UserError(f"unknown timm model {name!r}; see timm.list_models() for valid names")
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


class OpenClipTower(nn.Module):
    """An open_clip model reduced to what synthclone needs: images in [0, 1] -> embeddings.

    Same interface as the small CLIP: ``encode_image``, ``encode_text``, ``logit_scale``,
    ``zero_shot_head``.
    """

    def __init__(self, model: nn.Module, tokenizer, name: str):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        pp = getattr(model.visual, "preprocess_cfg", {}) or {}
        size = pp.get("size", getattr(model.visual, "image_size", 224))
        self.input_size = (size, size) if isinstance(size, int) else tuple(size)
        self.register_buffer("mean", torch.tensor(pp.get("mean", (0.48145466, 0.4578275, 0.40821073))).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pp.get("std", (0.26862954, 0.26130258, 0.27577711))).view(1, 3, 1, 1))

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Float [0, 1] (N, C, H, W) -> L2-normalised (N, D)."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return F.normalize(self.model.encode_image((x - self.mean) / self.std).float(), dim=-1)

    @torch.no_grad()
    def encode_text(self, texts: List[str]) -> torch.Tensor:
        return F.normalize(self.model.encode_text(self.tokenizer(texts)).float(), dim=-1)

    @torch.no_grad()
    def zero_shot_head(self, classes: Sequence[str], templates: Optional[Sequence[str]] = None) -> torch.Tensor:
        """(K, D) L2-normalised class embeddings averaged over ``templates``."""
        templates = list(templates or CLIP_TEMPLATES)
        rows = []
        for c in classes:
            e = self.encode_text([t.format(c) for t in templates]).mean(0)
            rows.append(F.normalize(e, dim=-1))
        return torch.stack(rows)


def load_open_clip(name: str, pretrained: Optional[str] = None) -> OpenClipTower:
    """An open_clip model by name (``ViT-B-32``, ``ViT-B-32@laion2b_s34b_b79k``, ``local-dir:/path``)."""
    try:
        import open_clip
    except ImportError:
        raise MissingExtraError("open_clip_torch", "clip", "open_clip models") from None
    if "@" in name and pretrained is None:
        name, pretrained = name.split("@", 1)
    try:
        model = open_clip.create_model(name, pretrained=pretrained or None)
        tokenizer = open_clip.get_tokenizer(name)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        raise UserError(f"cannot load open_clip model {name!r} ({type(exc).__name__}: {str(exc)[:200]}); "
                        f"valid names: open_clip.list_models(), or local-dir:/path with open_clip_config.json") from None
    except Exception as exc:  # hub download refused offline
        raise UserError(f"cannot load open_clip model {name!r} ({type(exc).__name__}); check the network or the name") from None
    model.eval()
    return OpenClipTower(model, tokenizer, name)


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


def open_clip_model(name: str, classes=None, pretrained: Optional[str] = None, templates=None,
                    trainable_head: bool = False, **_: object) -> ClipZeroShot:
    """An open_clip model as a zero-shot classifier over ``classes`` (required)."""
    if not classes:
        raise UserError(f"open_clip:{name} needs class names to build its zero-shot head; pass classes=[...]")
    tower = load_open_clip(name, pretrained)
    head = tower.zero_shot_head(classes, templates)
    spec = ModelSpec(name=f"open_clip:{name}", num_classes=len(classes), in_chans=3, input_size=tower.input_size,
                     mean=tuple(tower.mean.flatten().tolist()), std=tuple(tower.std.flatten().tolist()),
                     classes=list(classes), kwargs={"pretrained": pretrained, "templates": templates})
    return ClipZeroShot(tower, head, spec, tower.logit_scale, trainable_head=trainable_head)


def class_map_from_names(source: Sequence[str], target: Dict[str, Sequence[str]]) -> Dict[str, List[int]]:
    """``{target: [source names]}`` -> ``{target: [source indices]}`` for :class:`LabelMap`."""
    index = {n: i for i, n in enumerate(source)}
    out = {}
    for t, names in target.items():
        missing = [n for n in names if n not in index]
        if missing:
            raise UserError(f"class map for {t!r}: {missing[:3]} are not among the model's classes")
        out[t] = [index[n] for n in names]
    return out

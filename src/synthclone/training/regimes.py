"""The training regimes of the two papers, each a function ``(ctx) -> TrainResult``.

==================  =====================================================================
regime              what it trains
==================  =====================================================================
supervised          cross-entropy, random crop (pad 2) + flip, warmup + cosine
finetune            supervised training started from a checkpoint (e.g. synthetic pre-training)
linear-probe        a linear head on any frozen backbone's features
classifier-tuning   frozen CLIP image features, linear head started from the zero-shot text
                    weights; 0.5 x soft-label KL (teacher = zero-shot, T=2) + 0.5 x cross-entropy
ssl                 SimCLR contrastive pre-training, then a linear probe
ssl-multipos        the same with StableRep's multi-positive loss: images of one prompt are positives
clip                contrastive image-text training on (image, prompt) pairs against the frozen
                    sentence encoder, evaluated zero-shot
==================  =====================================================================
"""

from __future__ import annotations

import functools

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import ImageSet
from ..data.mixing import TrainData, load_train_data
from ..errors import UserError
from ..models import load_any_model
from ..models.base import Classifier
from ..models.checkpoint import load_checkpoint, set_recipe
from . import REGIMES
from .augment import crop_flip, random_resized_crop_flip, simclr_views
from .collective import gather_rows
from ..progress import say
from .engine import Batch, Settings, Task, TrainResult, fit

# the learning rate each regime uses when none is given
DEFAULT_MODEL = {"classifier-tuning": "small_clip"}
# classifier-tuning: He et al.'s zero-shot setting (CVMI-Lab/SyntheticData README: AdamW, lr 2e-3, wd 0.1)
DEFAULT_LR = {"supervised": 0.05, "finetune": 0.01, "linear-probe": 0.1, "classifier-tuning": 2e-3,
              "ssl": 0.05, "ssl-multipos": 0.05, "clip": 2e-3}
CLIP_TEMPLATES = ["a photo of a {}.", "a photo of the {}.", "a picture of a {}."]


@dataclass
class Context:
    """Everything a regime needs."""

    regime: str
    train: TrainData
    val: Optional[ImageSet]
    model: str
    out_dir: Path
    settings: Settings
    options: Dict[str, Any] = field(default_factory=dict)
    dataset: Optional[str] = None             # the real dataset behind "real" in data specs
    data_options: Dict[str, Any] = field(default_factory=dict)

    @property
    def data_kw(self) -> Dict[str, Any]:
        c, h, w = self.train.data.shape
        return {"classes": list(self.train.classes), "in_chans": c, "input_size": (h, w)}

    def run_info(self, **extra) -> Dict[str, Any]:
        return {"regime": self.regime, "model": self.model, "data_spec": self.train.spec, **extra}


_AUGMENT = {"augment", "flip"}
_SSL = _AUGMENT | {"proj_hidden", "proj_dim", "tau", "probe_data", "probe_epochs", "probe_lr", "probe_lrs", "views",
                   "group_size"}
# The options each built-in regime reads (train_model refuses any other, naming these).
REGIME_OPTIONS: Dict[str, set] = {
    "supervised": _AUGMENT | {"label_smoothing", "pretrained"},
    "finetune": _AUGMENT | {"label_smoothing", "pretrained", "init"},
    "linear-probe": _AUGMENT | {"pretrained"},
    "classifier-tuning": _AUGMENT | {"templates", "clip_kwargs", "pretrained", "temperature", "soft_weight", "soft_loss",
                                     "max_grad_norm"},
    "ssl": _SSL,
    "ssl-multipos": _SSL,
    "clip": _AUGMENT | {"text_encoder", "text_pretrained", "templates", "init_scale"},
}


def _params(*modules: nn.Module) -> List[nn.Parameter]:
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def _ce(logits: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits.float(), y, reduction="none", label_smoothing=smoothing)


# below this image side the small-image augmentation (pad 2 + crop, flip) is the standard; at and
# above it (and for timm / torchvision / open_clip models at any size) ImageNet's random resized crop
SMALL_IMAGE_SIDE = 64


def _augment(ctx: Context, default: str = "auto"):
    """The training augmentation: ``auto`` (by image size and model), ``crop-flip``, ``rrc-flip`` or ``none``."""
    kind = ctx.options.get("augment", default)
    if kind in (None, "none"):
        return None
    flip = bool(ctx.options.get("flip", True))
    if kind == "auto":
        external = ctx.model.split(":", 1)[0] in ("timm", "torchvision", "open_clip")
        kind = "rrc-flip" if external or min(ctx.train.data.shape[1:]) >= SMALL_IMAGE_SIDE else "crop-flip"
    if kind == "crop-flip":
        return lambda x, g: crop_flip(x, g, pad=2, flip=flip)
    if kind == "rrc-flip":
        return functools.partial(random_resized_crop_flip, flip=flip)
    raise UserError(f"unknown augmentation {kind!r}; valid: auto, crop-flip, rrc-flip, none")


# ----------------------------------------------------------------------------------- supervised


def _supervised_task(ctx: Context, model: nn.Module, name: str) -> Task:
    smoothing = float(ctx.options.get("label_smoothing", 0.0))

    def loss(b: Batch):
        logits = model(b.x)
        return _ce(logits, b.y, smoothing), logits

    return Task(name, model, _params(model), loss, augment=_augment(ctx))


@REGIMES.register("supervised")
def supervised(ctx: Context) -> TrainResult:
    """Cross-entropy from scratch (or from --model CHECKPOINT), crop+flip, warmup + cosine."""
    torch.manual_seed(ctx.settings.seed)
    model = load_any_model(ctx.model, **ctx.data_kw, pretrained=ctx.options.get("pretrained", False))
    _check_label_space(model, ctx)
    return fit(_supervised_task(ctx, model, "supervised"), ctx.train, ctx.val, ctx.out_dir, ctx.settings, ctx.run_info())


def _check_label_space(model: nn.Module, ctx: Context) -> None:
    classes = getattr(model, "classes", None)
    if classes is not None and list(classes) != list(ctx.train.classes):
        raise UserError(f"model {ctx.model} predicts {list(classes)[:4]}... but the data has {ctx.train.classes[:4]}...; "
                        "use the finetune regime (it replaces the head)")


def _replace_head(model: nn.Module, classes: List[str]) -> nn.Module:
    """A new linear head over ``classes`` (for fine-tuning onto another label space)."""
    from ..models.base import ModelSpec
    from ..models.composite import LinearProbe

    k = len(classes)
    if isinstance(model, LinearProbe):
        model.head = nn.Linear(model.feature_dim, k)
        model.recipe = {**model.recipe, "num_classes": k, "classes": list(classes)}
    elif hasattr(model, "net") and isinstance(getattr(model.net, "head", None), nn.Linear):
        model.net.head = nn.Linear(model.net.head.in_features, k)
        model.recipe = {**model.recipe, "kwargs": {**model.recipe.get("kwargs", {}), "num_classes": k, "classes": list(classes)}}
    elif hasattr(model, "net") and hasattr(model.net, "reset_classifier"):
        model.net.reset_classifier(k)
        model.recipe = {**model.recipe, "kwargs": {**model.recipe.get("kwargs", {}), "num_classes": k, "classes": list(classes)}}
    else:
        raise UserError(f"cannot replace the head of {type(model).__name__}; fine-tune on the same classes")
    model.spec = ModelSpec(**{**model.spec.to_dict(), "num_classes": k, "classes": list(classes)})
    return model


@REGIMES.register("finetune")
def finetune(ctx: Context) -> TrainResult:
    """Start from a checkpoint (e.g. synthetic pre-training) and fine-tune all weights on the data."""
    from ..models.composite import LinearProbe

    init = ctx.options.get("init") or ctx.model
    torch.manual_seed(ctx.settings.seed)
    if Path(init).is_dir():
        model = load_checkpoint(init)
    elif ctx.options.get("pretrained"):
        model = load_any_model(init, **ctx.data_kw, pretrained=ctx.options["pretrained"])
    else:
        raise UserError(f"finetune starts from a checkpoint directory or pretrained weights; {init!r} is neither "
                        "(pass --init CHECKPOINT_DIR, or --pretrained)")
    if isinstance(model, LinearProbe):  # fine-tuning unfreezes the backbone
        model.frozen = False
        for p in model.backbone.parameters():
            p.requires_grad_(True)
        model.recipe = {**model.recipe, "freeze": False}
    if list(model.classes or []) != list(ctx.train.classes):
        model = _replace_head(model, list(ctx.train.classes))
    return fit(_supervised_task(ctx, model, "finetune"), ctx.train, ctx.val, ctx.out_dir, ctx.settings,
               ctx.run_info(init=str(init)))


# ----------------------------------------------------------------------------------- probes


def _probe(ctx: Context, backbone: Classifier, train: TrainData, out_dir: Path, settings: Settings, name: str,
           info: Dict[str, Any], norm: bool = False) -> TrainResult:
    from ..models.composite import LinearProbe

    torch.manual_seed(settings.seed)
    probe = LinearProbe(backbone, len(train.classes), list(train.classes), norm=norm)
    recipe = getattr(backbone, "recipe", None)
    if recipe is None:
        from ..models.checkpoint import get_recipe

        recipe = get_recipe(backbone)
    set_recipe(probe, {"type": "probe", "backbone": recipe, "num_classes": len(train.classes),
                       "classes": list(train.classes), "feature_dim": probe.feature_dim, "freeze": True,
                       **({"norm": True} if norm else {})})
    probe.checkpoint_exclude = tuple(f"backbone.{p}" for p in getattr(backbone, "checkpoint_exclude", ()))

    def loss(b: Batch):
        logits = probe(b.x)
        return _ce(logits, b.y), logits

    task = Task(name, probe, _params(probe.head), loss, augment=_augment(ctx, default="none"))
    return fit(task, train, ctx.val, out_dir, settings, info)


@REGIMES.register("linear-probe")
def linear_probe(ctx: Context) -> TrainResult:
    """A linear head on the frozen features of any backbone (checkpoint, timm:, torchvision:, ...)."""
    torch.manual_seed(ctx.settings.seed)
    backbone = load_any_model(ctx.model, **ctx.data_kw, pretrained=ctx.options.get("pretrained", False))
    try:
        with torch.no_grad():
            backbone.eval().features(torch.zeros(1, *ctx.train.data.shape))
    except AttributeError:
        raise UserError(f"model {ctx.model} exposes no features() to probe; use another backbone") from None
    return _probe(ctx, backbone, ctx.train, ctx.out_dir, ctx.settings, "linear-probe", ctx.run_info())


# ----------------------------------------------------------------------------------- classifier tuning


def soft_target_ce(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """He et al.'s soft loss (``SoftTargetCrossEntropy_T`` in CVMI-Lab/SyntheticData): the cross-entropy
    of the student's softmax against the teacher's softmax at temperature ``t`` (the teacher only). Per row."""
    return -(F.softmax(teacher.float() / t, dim=1) * F.log_softmax(student.float(), dim=1)).sum(1)


def soft_kl(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """Hinton et al.'s distillation term: T^2 KL(softmax(teacher/T) || softmax(student/T)). Per row."""
    return F.kl_div(F.log_softmax(student.float() / t, dim=1), F.log_softmax(teacher.float() / t, dim=1),
                    log_target=True, reduction="none").sum(1) * (t * t)


SOFT_LOSSES = {"ce": soft_target_ce, "kl": soft_kl}


def tuning_loss(logits: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, synthetic: torch.Tensor, t: float,
                soft_weight: float, soft_fn=soft_target_ce) -> torch.Tensor:
    """Per-image classifier-tuning loss: ``soft_weight * soft + (1 - soft_weight) * CE`` on a synthetic
    image (``synthetic`` True), the plain cross-entropy on a real one."""
    hard = _ce(logits, y)
    return torch.where(synthetic, soft_weight * soft_fn(logits, teacher, t) + (1 - soft_weight) * hard, hard)


def per_part_means(per: torch.Tensor, b: Batch) -> torch.Tensor:
    """Rescale per-image losses so that the engine's ``sum / global batch size`` is the sum over data parts of
    each part's mean (a batch with per-part shares); unchanged for a batch of one shuffled pool."""
    if not b.part_sizes:
        return per
    sizes = torch.tensor(b.part_sizes, dtype=per.dtype, device=per.device)
    return per * b.global_size / sizes[b.source.to(per.device)]


@REGIMES.register("classifier-tuning")
def classifier_tuning(ctx: Context) -> TrainResult:
    """Frozen CLIP, a linear head from the zero-shot text weights: 0.5 soft (T=2) + 0.5 hard on synthetic images.

    He et al.'s recipe (CVMI-Lab/SyntheticData ``finetune_zsl`` / ``finetune_fsl``): the zero-shot
    classifier is the teacher; on a synthetic image the loss is ``soft_weight * soft + (1 - soft_weight) *
    CE``, ``soft`` the soft-target cross-entropy with the temperature on the teacher (``soft_loss: kl``
    for the T^2-scaled KL instead); a real image (few-shot) gets the plain cross-entropy; AdamW,
    gradients clipped to norm 1. With per-batch shares (``STORE+real:k=K@s,r``) each part's loss is its
    mean over the part's images in the batch, summed with ``--loss-weights`` (default 1 each), as the
    paper adds a real batch's mean to a synthetic batch's.
    """
    name = ctx.model
    if not name.startswith(("small_clip", "open_clip:")):
        raise UserError(f"classifier-tuning tunes a CLIP model (small_clip, open_clip:NAME), not {ctx.model!r}")
    torch.manual_seed(ctx.settings.seed)
    model = load_any_model(name, classes=list(ctx.train.classes), trainable_head=True,
                           templates=ctx.options.get("templates"), clip_kwargs=ctx.options.get("clip_kwargs"),
                           pretrained=ctx.options.get("pretrained") or None)
    t = float(ctx.options.get("temperature", 2.0))
    soft_w = float(ctx.options.get("soft_weight", 0.5))
    kind = str(ctx.options.get("soft_loss", "ce"))
    if kind not in SOFT_LOSSES:
        raise UserError(f"classifier-tuning soft_loss {kind!r}: use ce (He et al.'s soft-target cross-entropy) or kl")
    soft_fn = SOFT_LOSSES[kind]
    teacher_w = model.head.weight.detach().clone()  # the zero-shot classifier is the teacher
    teacher_b = model.head.bias.detach().clone()
    synthetic = torch.tensor([p is not None for p in ctx.train.prompts]) if ctx.train.prompts else \
        torch.ones(len(ctx.train), dtype=torch.bool)  # real images have no prompt

    def loss(b: Batch):
        f = model.features(b.x)
        logits = model.head(f).float()
        with torch.no_grad():
            teacher = f.float() @ teacher_w.t().to(f.device) + teacher_b.to(f.device)
        per = tuning_loss(logits, teacher, b.y, synthetic[b.index].to(logits.device), t, soft_w, soft_fn)
        return per_part_means(per, b), logits

    task = Task("classifier-tuning", model, _params(model.head), loss, augment=_augment(ctx, default="none"),
                training_info={"temperature": t, "soft_weight": soft_w, "soft_loss": kind,
                               "real_images": int((~synthetic).sum())},
                max_grad_norm=float(ctx.options.get("max_grad_norm", 1.0)))
    weights = model.recipe["tower"].get("pretrained") if name.startswith("open_clip:") else None
    settings = ctx.settings if ctx.options.get("optimizer_given") else replace(ctx.settings, optimizer="adamw")
    return fit(task, ctx.train, ctx.val, ctx.out_dir, settings, ctx.run_info(clip=name, clip_pretrained=weights))


# ----------------------------------------------------------------------------------- self-supervised


def multi_positive_loss(z: torch.Tensor, groups: torch.Tensor, tau: float,
                        rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """StableRep's multi-positive contrastive loss; SimCLR's NT-Xent when each group is one image's views.

    Args:
        z: (M, D) L2-normalised embeddings (with several processes: every rank's rows, gathered).
        groups: (M,) int; rows with the same id are positives of each other.
        tau: temperature.
        rows: the anchor rows whose loss to return (default: all ``M``); every row of ``z`` is a
            candidate for every anchor.
    Returns:
        (len(rows),) cross-entropy between the uniform distribution over each anchor's positives
        and the softmax of its similarities to every other row (0 for an anchor without positives).
    """
    m = z.shape[0]
    rows = torch.arange(m, device=z.device) if rows is None else rows.to(z.device)
    logits = (z[rows] @ z.t()).float() / tau
    self_ = rows[:, None] == torch.arange(m, device=z.device)[None, :]
    logits = logits.masked_fill(self_, -1e9)
    pos = (groups[rows][:, None] == groups[None, :]) & ~self_
    count = pos.sum(1)
    target = pos.float() / count.clamp(min=1)[:, None]
    loss = -(target * F.log_softmax(logits, dim=1)).sum(1)
    return torch.where(count > 0, loss, torch.zeros_like(loss))


def _ssl(ctx: Context, positives: str) -> TrainResult:
    from ..models.composite import ProjectionMLP
    from .augment import stablerep_views

    torch.manual_seed(ctx.settings.seed)
    encoder = load_any_model(ctx.model, **ctx.data_kw)
    c, h, w = ctx.train.data.shape
    with torch.no_grad():
        encoder.eval()
        dim = encoder.features(torch.zeros(1, c, h, w)).shape[-1]
        encoder.train()
    projector = ProjectionMLP(dim, int(ctx.options.get("proj_hidden", 256)), int(ctx.options.get("proj_dim", 128)))
    tau = float(ctx.options.get("tau", 0.1 if positives == "prompt" else 0.2))
    groups_all = ctx.train.prompt_groups() if positives == "prompt" else torch.arange(len(ctx.train))
    if positives == "prompt" and all(p is None for p in ctx.train.prompts):
        raise UserError("ssl-multipos needs prompts (a synthetic store); real images have none — use ssl")
    views_kind = str(ctx.options.get("views", "stablerep"))
    if views_kind not in ("stablerep", "weak"):
        raise UserError(f"{positives == 'prompt' and 'ssl-multipos' or 'ssl'} views {views_kind!r}: use stablerep "
                        "(StableRep's and SimCLR's strong augmentation) or weak (crop scale 0.3-1, brightness/contrast)")
    views = stablerep_views if views_kind == "stablerep" else simclr_views
    train = ctx.train
    if positives == "prompt":  # StableRep's sampler: m images of each prompt in a batch together
        train = replace(ctx.train, group_size=int(ctx.options.get("group_size", 6)))

    def loss(b: Batch):
        v1 = views(b.x, b.generator)
        v2 = views(b.x, b.generator)
        z = F.normalize(projector(encoder.features(torch.cat([v1, v2]))).float(), dim=1)
        g = groups_all[b.index].to(z.device)
        # negatives from every rank's slice of the global batch, not only this rank's
        z_all, offset = gather_rows(z)
        g_all, _ = gather_rows(torch.cat([g, g]))
        per = multi_positive_loss(z_all, g_all, tau, torch.arange(offset, offset + z.shape[0]))
        n = b.x.shape[0]
        return 0.5 * (per[:n] + per[n:]), None

    name = "ssl-multipos" if positives == "prompt" else "ssl"
    pre_settings = replace(ctx.settings, lr=ctx.settings.lr)
    task = Task(f"{name}-pretrain", encoder, _params(encoder, projector), loss, augment=None, evaluate=None,
                extra_modules={"projector": projector},
                training_info={"positives": positives, "tau": tau, "views": views_kind, "group_size": train.group_size})
    pre_dir = ctx.out_dir / "pretrain"
    fit(task, train, None, pre_dir, pre_settings, ctx.run_info(phase="pretrain"))
    # phase 2: a linear probe on the frozen encoder, on the labelled probe data (default: the same data;
    # StableRep probes on real data: the study passes probe_data), BatchNorm before the head, an lr sweep
    backbone = load_checkpoint(pre_dir)
    probe_spec = ctx.options.get("probe_data")
    probe_train = load_train_data(probe_spec, dataset=ctx.dataset, seed=ctx.settings.seed,
                                  options={**ctx.data_options, "size": ctx.train.data.shape[-1]}) if isinstance(probe_spec, str) else (probe_spec or ctx.train)
    lrs = ctx.options.get("probe_lrs") or [float(ctx.options.get("probe_lr") or DEFAULT_LR["linear-probe"])]
    probe_settings = replace(ctx.settings, epochs=int(ctx.options.get("probe_epochs") or ctx.settings.epochs),
                             optimizer="sgd", source_weights=None, weight_decay=0.0)
    info = ctx.run_info(pretrain=str(pre_dir), positives=positives, probe_data=probe_train.spec, probe_lrs=list(lrs))
    return _probe_sweep(ctx, backbone, probe_train, probe_settings, f"{name}-probe", info, [float(v) for v in lrs])


def _probe_sweep(ctx: Context, backbone: Classifier, train: TrainData, settings: Settings, name: str,
                 info: Dict[str, Any], lrs: List[float]) -> TrainResult:
    """StableRep's probe (``main_linear.py``): a BatchNorm-then-linear head per learning rate, the one with
    the best validation accuracy kept. One lr trains straight into ``out_dir``; several train into
    ``out_dir/probe-lr<lr>/`` and the selected checkpoint is copied into ``out_dir``."""
    if len(lrs) == 1:
        return _probe(ctx, backbone, train, ctx.out_dir, replace(settings, lr=lrs[0]), name, info, norm=True)
    from ..paths import atomic_write

    results = [(_probe(ctx, backbone, train, ctx.out_dir / f"probe-lr{lr:g}", replace(settings, lr=lr), name,
                       {**info, "probe_lr": lr}, norm=True), lr) for lr in lrs]
    best, lr = max(results, key=lambda r: (r[0].val_accuracy if r[0].val_accuracy is not None else -1.0, -r[1]))
    for file in ("model.safetensors", "meta.json"):
        data = (best.checkpoint_dir / file).read_bytes()
        atomic_write(ctx.out_dir / file, lambda p, d=data: p.write_bytes(d))
    say(f"[{name}] lr sweep {', '.join(f'{r.val_accuracy:.4f}' for r, _ in results)} over {lrs}: kept lr {lr:g}")
    return replace(best, checkpoint_dir=ctx.out_dir)


@REGIMES.register("ssl")
def ssl(ctx: Context) -> TrainResult:
    """SimCLR contrastive pre-training (two views of an image are positives), then a linear probe."""
    return _ssl(ctx, "views")


@REGIMES.register("ssl-multipos")
def ssl_multipos(ctx: Context) -> TrainResult:
    """StableRep-style: all views of all images generated from one prompt are positives; then a probe."""
    return _ssl(ctx, "prompt")


# ----------------------------------------------------------------------------------- CLIP


def clip_contrastive_loss(img: torch.Tensor, ids: torch.Tensor, text: torch.Tensor, scale: torch.Tensor,
                          rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The CLIP loss of images against the prompts they were generated from, per anchor image.

    Args:
        img: (M, D) L2-normalised image embeddings of the (global) batch.
        ids: (M,) prompt id of each image; text: (P, D) embeddings of every prompt.
        scale: the logit scale; rows: the anchor images of this rank (default: all ``M``).
    Returns:
        (len(rows),): ``0.5 * i2t + 0.5 * T / M`` where ``i2t`` is each anchor's cross-entropy over
        the batch's distinct prompts and ``T`` the summed text->image loss of those prompts (every
        image of a prompt is its positive), spread evenly so the anchors of all ranks sum to it.
    """
    m = img.shape[0]
    rows = torch.arange(m, device=img.device) if rows is None else rows.to(img.device)
    uniq, pos = torch.unique(ids, return_inverse=True)
    logits = scale * img @ text[uniq].t()  # (M, u)
    i2t = F.cross_entropy(logits[rows], pos[rows], reduction="none")
    target = (pos[None, :] == torch.arange(len(uniq), device=img.device)[:, None]).float()
    t2i = -(target / target.sum(1, keepdim=True) * F.log_softmax(logits.t(), dim=1)).sum(1)
    return 0.5 * i2t + 0.5 * t2i.sum() / m


class _LogitScale(nn.Module):
    def __init__(self, init: float):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(init)).log())

    def value(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=100.0)


@REGIMES.register("clip")
def clip(ctx: Context) -> TrainResult:
    """Contrastive image-text training on (image, prompt) pairs vs a frozen text encoder (the sentence
    encoder, or ``text_encoder: open_clip:NAME`` with ``text_pretrained``: that CLIP's text tower); zero-shot eval."""
    from ..models.base import ModelSpec
    from ..models.composite import ContrastiveTower
    from ..models.external import ClipZeroShot
    from ..text import load_text_encoder

    enc = load_text_encoder(ctx.options.get("text_encoder"), pretrained=ctx.options.get("text_pretrained"))
    classes = list(ctx.train.classes)
    templates = list(ctx.options.get("templates") or CLIP_TEMPLATES)
    # real images have no prompt: they are paired with the first template of their class name
    prompts = [p if p is not None else templates[0].format(classes[int(y)])
               for p, y in zip(ctx.train.prompts, ctx.train.data.labels)]
    unique = sorted(set(prompts))
    pid = {p: i for i, p in enumerate(unique)}
    prompt_ids = torch.tensor([pid[p] for p in prompts])
    text_on: Dict[str, Any] = {}
    text = enc.encode(unique).float()
    head = torch.stack([F.normalize(enc.encode([t.format(c) for t in templates]).float().mean(0), dim=0) for c in classes])

    torch.manual_seed(ctx.settings.seed)
    backbone = load_any_model(ctx.model, **ctx.data_kw)
    tower = ContrastiveTower(backbone, text.shape[1])
    set_recipe(tower, {"type": "contrastive_tower", "backbone": backbone.recipe, "dim": int(text.shape[1]),
                       "feature_dim": tower.feature_dim})
    spec = ModelSpec(**{**backbone.spec.to_dict(), "name": f"clip({backbone.spec.name})"})
    scale = _LogitScale(float(ctx.options.get("init_scale", 1 / 0.07)))
    model = ClipZeroShot(tower, head, spec, float(scale.value().detach()), trainable_head=False)
    model.tower_frozen = False
    recipe = {"type": "clip_zero_shot", "tower": tower.recipe, "dim": int(text.shape[1]), "scale": model.scale,
              "trainable_head": False, "spec": spec.to_dict()}
    set_recipe(model, recipe)

    def loss(b: Batch):
        img = tower.encode_image(b.x)
        if text_on.get("device") != img.device:  # the prompt embeddings, moved to the device once
            text_on.update(device=img.device, text=text.to(img.device))
        # images and prompts of every rank's slice: the whole global batch is the contrast set
        img_all, offset = gather_rows(img)
        ids_all, _ = gather_rows(prompt_ids[b.index].to(img.device))
        rows = torch.arange(offset, offset + img.shape[0])
        return clip_contrastive_loss(img_all, ids_all, text_on["text"], scale.value(), rows), None

    def before_save():
        model.scale = float(scale.value().detach())
        model.recipe = {**model.recipe, "scale": model.scale}

    def evaluate(m, val):
        from .engine import accuracy

        before_save()
        return accuracy(m, val, ctx.settings.eval_batch_size, ctx.settings.precision)

    task = Task("clip", model, _params(tower, scale), loss, augment=_augment(ctx), evaluate=evaluate,
                extra_modules={"logit_scale": scale}, before_save=before_save,
                training_info={"text_encoder": ctx.options.get("text_encoder") or "all-MiniLM-L6-v2",
                               "text_pretrained": getattr(enc, "weights", None),
                               "templates": templates, "prompts": len(unique)})
    settings = ctx.settings if ctx.options.get("optimizer_given") else replace(ctx.settings, optimizer="adamw")
    return fit(task, ctx.train, ctx.val, ctx.out_dir, settings, ctx.run_info())

"""The small CLIP of the embedded world: a CNN image tower trained against the FROZEN sentence encoder.

Like LiT ("locked-image text tuning" turned around: here the text side is locked), the text tower is
all-MiniLM-L6-v2, frozen, followed by a learned linear projection; the image tower is a small CNN with a
projection to the same space. Training (``synthclone pretrain clip``) uses the Fashion-MNIST
``generator`` split with a caption drawn per image from its class's phrasings
(:mod:`synthclone.generators.captions`) and a symmetric InfoNCE loss whose targets treat every pair in
the batch with the same class as a positive (a batch of 256 holds ~25 images per class, so the one-hot
CLIP target would call most true pairs negatives).

It provides zero-shot classification from class names and templates (:meth:`SmallClip.zero_shot_classifier`),
the CLIP-confidence filter, and frozen features for classifier tuning.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..paths import WEIGHTS_DIR
from .base import ModelSpec

DEFAULT_TEMPLATES = [
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a product photo of a {}.",
    "a low resolution photo of a {}.",
    "a {}.",
]
TINY = {"width": 4, "embed_dim": 16, "in_chans": 1, "text_dim": 384}


class ImageTower(nn.Module):
    """CNN: three stages (w, 2w, 4w channels) of two 3x3 conv-BN-ReLU, max-pool between, global pool, linear."""

    def __init__(self, in_chans: int = 1, width: int = 32, embed_dim: int = 256):
        super().__init__()

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        w = width
        self.body = nn.Sequential(stage(in_chans, w), nn.MaxPool2d(2), stage(w, 2 * w), nn.MaxPool2d(2), stage(2 * w, 4 * w))
        self.num_features = 4 * w
        self.proj = nn.Linear(4 * w, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


class SmallClip(nn.Module):
    """Image tower + frozen sentence encoder with a learned projection, both into ``embed_dim``.

    ``encode_image(x)``: x float (N, C, H, W) in [0, 1] (RGB is averaged to gray, other sizes resized to
    28x28) -> (N, embed_dim) unit rows. ``encode_text(list[str])`` -> (N, embed_dim) unit rows.
    """

    def __init__(self, in_chans: int = 1, width: int = 32, embed_dim: int = 256, text_dim: int = 384,
                 mean: float = 0.2860, std: float = 0.3530, text_encoder: Optional[str] = None):
        super().__init__()
        self.config = {"in_chans": in_chans, "width": width, "embed_dim": embed_dim, "text_dim": text_dim,
                       "mean": mean, "std": std, "text_encoder": text_encoder}
        self.image = ImageTower(in_chans, width, embed_dim)
        self.text_proj = nn.Linear(text_dim, embed_dim)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.in_chans = in_chans
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self._text_encoder_name = text_encoder

    @property
    def text_encoder(self):
        from ..text import load_text_encoder

        return load_text_encoder(self._text_encoder_name)

    @property
    def logit_scale(self) -> float:
        return float(self.log_logit_scale.detach().exp().clamp(max=100.0))

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        if x.shape[1] != self.in_chans:
            if self.in_chans == 1:
                x = x.mean(1, keepdim=True)
            else:
                x = x.expand(-1, self.in_chans, -1, -1)
        if x.shape[-2:] != (28, 28):
            x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean) / self.std

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised image embeddings (N, embed_dim) (training uses these)."""
        return self.image(self._prepare(x))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """x float (N, C, H, W) in [0, 1] -> L2-normalised (N, embed_dim)."""
        return F.normalize(self.image_features(x).float(), dim=-1)

    def project_text(self, sentence_embeddings: torch.Tensor) -> torch.Tensor:
        """Frozen sentence embeddings (N, text_dim) -> L2-normalised (N, embed_dim)."""
        return F.normalize(self.text_proj(sentence_embeddings.to(self.text_proj.weight.dtype)).float(), dim=-1)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts -> L2-normalised (N, embed_dim)."""
        with torch.no_grad():
            return self.project_text(self.text_encoder.encode(list(texts)).to(self.text_proj.weight.device))

    def zero_shot_head(self, classes: Sequence[str], templates: Optional[Sequence[str]] = None) -> torch.Tensor:
        """Text weights (K, embed_dim): per class the normalised mean over templates of the prompt embeddings."""
        templates = list(templates or DEFAULT_TEMPLATES)
        if not classes:
            raise UserError("zero-shot head: the class list is empty")
        require_known_classes("the small CLIP", getattr(self, "known_classes", None), classes,
                              "use a CLIP trained on them (an open_clip model) or drop the clip filter / CLIP arms")
        rows = []
        for c in classes:
            emb = self.encode_text([t.format(c) if "{}" in t else f"{t} {c}" for t in templates])
            rows.append(F.normalize(emb.mean(0), dim=-1))
        return torch.stack(rows)

    def zero_shot_classifier(self, classes: Sequence[str], templates: Optional[Sequence[str]] = None) -> "ZeroShotClassifier":
        """A classifier (pixels [0, 1] -> logits over ``classes``) from class names and templates."""
        return ZeroShotClassifier(self, list(classes), self.zero_shot_head(classes, templates))


def require_known_classes(component: str, known: Optional[Sequence[str]], classes: Sequence[str], fix: str) -> None:
    """A one-line :class:`UserError` when ``component``, trained on the classes ``known`` (None: any),
    is asked about classes it never saw."""
    if known is None:
        return
    unknown = [c for c in classes if c not in set(known)]
    if unknown:
        raise UserError(f"{component} was trained on {len(known)} classes ({', '.join(list(known)[:4])}, ...) and does not "
                        f"know {len(unknown)} of this dataset's classes ({', '.join(unknown[:3])}, ...); {fix}")


class ZeroShotClassifier(nn.Module):
    """``forward(x in [0, 1] (N, C, H, W)) -> logits (N, K) = logit_scale * <image, class text>``;
    ``features(x)`` are the normalised image embeddings; ``spec`` follows the classifier contract."""

    def __init__(self, clip: SmallClip, classes: List[str], head: torch.Tensor):
        super().__init__()
        self.clip = clip
        self.register_buffer("head", head.detach().clone())
        self.scale = clip.logit_scale
        self.spec = ModelSpec(name="small-clip-zero-shot", num_classes=len(classes), in_chans=clip.in_chans,
                              mean=(float(clip.mean),), std=(float(clip.std),), classes=list(classes),
                              kwargs={"embed_dim": clip.config["embed_dim"]})

    @property
    def classes(self) -> List[str]:
        return list(self.spec.classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.features(x) @ self.head.t()


def save_small_clip(clip: SmallClip, path: Union[str, Path], extra: Optional[dict] = None) -> Path:
    """Weights to ``path`` (.safetensors) and config to the ``.json`` beside it, both written atomically."""
    from safetensors.torch import save_file

    from ..paths import atomic_write, atomic_write_text

    path = Path(path)
    state = {k: v.detach().float().contiguous() for k, v in clip.state_dict().items()}
    # safetensors writes 0600 (shipped weights must be readable by every user) and its metadata map in a random
    # order: one key keeps equal weights equal bytes
    atomic_write(path, lambda p: save_file(state, str(p), metadata={"format": "pt"}),
                 mode=0o644)
    atomic_write_text(path.with_suffix(".json"), json.dumps({"model": clip.config, **(extra or {})}, indent=2,
                                                            sort_keys=True))
    return path


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> SmallClip:
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir():
        p = p / "small_clip.safetensors"
    meta = p.with_suffix(".json")
    if not p.is_file() or not meta.is_file():
        raise UserError(f"small CLIP weights {p} (with {meta.name}) not found; train them with 'synthclone pretrain clip'")
    try:
        doc = json.loads(meta.read_text())
        clip = SmallClip(**doc["model"])
        clip.load_state_dict(load_file(str(p)))
    except Exception as exc:  # bad JSON, config keys, safetensors header or tensor shapes: all one user error
        raise UserError(f"{p} is not a small-CLIP checkpoint matching {meta.name} ({type(exc).__name__})") from None
    # the classes it learnt from (its training summary lists its zero-shot accuracy per class)
    known = sorted((doc.get("training") or {}).get("zero_shot_test_per_class") or {})
    clip.known_classes = known or None
    return clip.eval().requires_grad_(False)


def load_small_clip(weights: Union[str, Path, None] = "shipped", tiny: bool = False, seed: int = 0) -> SmallClip:
    """The small CLIP: shipped weights by default, ``weights=PATH`` (file or folder) for others,
    ``weights=None, tiny=True`` for a tiny random model (tests). Returned in eval mode, frozen."""
    if weights is None:
        if not tiny:
            raise UserError("load_small_clip(weights=None) needs tiny=True (random weights, tests only)")
        torch.manual_seed(seed)
        return SmallClip(**TINY).eval().requires_grad_(False)
    if weights == "shipped":
        weights = WEIGHTS_DIR / "small_clip.safetensors"
    return _load_cached(str(Path(weights).resolve()))


# --------------------------------------------------------------------------------------------- training
@dataclass
class ClipTrainConfig:
    epochs: int = 8
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    width: int = 32
    embed_dim: int = 256
    precision: str = "auto"
    split: str = "generator"
    limit: Optional[int] = None
    seed: int = 0
    device: str = "cpu"


def _multi_positive_loss(img: torch.Tensor, txt: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    logits = scale * img @ txt.t()
    same = (labels[:, None] == labels[None, :]).float()
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (torch.sum(-target * logits.log_softmax(1), 1).mean() + torch.sum(-target * logits.t().log_softmax(1), 1).mean())


@torch.no_grad()
def zero_shot_accuracy(clip: SmallClip, data, templates: Optional[Sequence[str]] = None, batch_size: int = 1024) -> dict:
    """Zero-shot accuracy of ``clip`` on an ImageSet: {"accuracy": float, "per_class": {name: float}}."""
    clf = clip.zero_shot_classifier(data.classes, templates).eval()
    device = clip.text_proj.weight.device
    preds = torch.cat([clf(images.to(device).float() / 255.0).argmax(1).cpu() for images, _ in data.batches(batch_size)])
    correct = preds == data.labels
    per = {c: float(correct[data.labels == k].float().mean()) for k, c in enumerate(data.classes) if (data.labels == k).any()}
    return {"accuracy": float(correct.float().mean()), "per_class": per}


def train_small_clip(out_dir: Union[str, Path], cfg: ClipTrainConfig) -> dict:
    """Train the small CLIP on the generator split; write ``small_clip.safetensors`` + ``.json`` and
    ``loss.jsonl`` into ``out_dir``; return a summary with the zero-shot accuracy on ``val`` and ``test``."""
    from ..data import load_dataset
    from ..generators.captions import caption_bank
    from ..progress import progress, say
    from ..text import load_text_encoder

    from ..device import resolve_device

    cfg.device = resolve_device(cfg.device)  # before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset("fashion-mnist", split=cfg.split)
    if cfg.limit:
        data = data.subset(range(min(cfg.limit, len(data))))
    bank = caption_bank(data.classes, load_text_encoder())
    say(f"small CLIP: {len(data)} images of {data.name}, {len(bank.captions)} captions")
    torch.manual_seed(cfg.seed)
    clip = SmallClip(width=cfg.width, embed_dim=cfg.embed_dim).to(cfg.device)
    params = [p for p in clip.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(data) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1)
    g = torch.Generator().manual_seed(cfg.seed)
    from ..precision import autocast as autocast_for

    autocast = autocast_for(cfg.precision, clip)
    t0, step = time.time(), 0
    bar = progress(total=total, desc="pretrain clip", unit="step")
    clip.train()
    with open(out / "loss.jsonl", "w") as log:
        for epoch in range(cfg.epochs):
            order = torch.randperm(len(data), generator=g)
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                x = data.images[idx].float() / 255.0
                flip = torch.rand(len(idx), generator=g) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                # small random shifts: the generated images the CLIP filters are not pixel-aligned like the corpus
                dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
                x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
                labels = data.labels[idx]
                text = bank.sample(labels, g)
                # drawn on the CPU from the seeded generator (the same batches on any device), computed on the device
                x, labels, text = x.to(cfg.device), labels.to(cfg.device), text.to(cfg.device)
                with autocast:
                    img = F.normalize(clip.image_features(x).float(), dim=-1)
                    txt = clip.project_text(text)
                loss = _multi_positive_loss(img, txt, labels, clip.log_logit_scale.exp().clamp(max=100.0))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                bar.update(1)
                if step % 20 == 0 or step == total:
                    log.write(json.dumps({"step": step, "epoch": epoch, "loss": round(loss.item(), 5),
                                          "wall_time_s": round(time.time() - t0, 1)}) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    wall = time.time() - t0
    clip.eval()
    val = zero_shot_accuracy(clip, load_dataset("fashion-mnist", split="val"))
    test = zero_shot_accuracy(clip, load_dataset("fashion-mnist", split="test"))
    summary = {"steps": total, "epochs": cfg.epochs, "final_loss": float(loss.item()), "wall_time_s": round(wall, 1),
               "zero_shot_val_accuracy": val["accuracy"], "zero_shot_test_accuracy": test["accuracy"],
               "zero_shot_test_per_class": test["per_class"], "data": data.name, "config": asdict(cfg),
               "parameters": sum(p.numel() for p in clip.parameters()), "templates": DEFAULT_TEMPLATES}
    save_small_clip(clip, out / "small_clip.safetensors", extra={"training": summary})
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


__all__ = ["SmallClip", "ZeroShotClassifier", "load_small_clip", "save_small_clip", "train_small_clip",
           "zero_shot_accuracy", "ClipTrainConfig", "DEFAULT_TEMPLATES"]

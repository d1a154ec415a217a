"""Model-card figures of a text-to-image generator (``synthclone pretrain evaluate``).

* Classification accuracy score (CAS): a ResNet-8 trained on the REAL ``train`` split (3 epochs) classifies
  ``per_class`` generated images per class from "a photo of a {class}"; overall and per class.
* Guidance sweep: CAS and diversity (mean pairwise L2 distance between small-CLIP image embeddings of
  images of the same class, averaged over classes) per guidance scale.
* Fréchet distance between generated and real ``test`` images in the small CLIP's embedding space.
* Small-CLIP zero-shot accuracy on ``test``.
* Sampling throughput (images/s, batch 256, CFG on) for several step counts.
* A sample grid PNG, one row per class.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..precision import autocast
from ..progress import progress, say

PROMPT = "a photo of a {}"


def train_real_classifier(epochs: int = 3, seed: int = 0, batch_size: int = 128, lr: float = 0.05,
                          model: str = "resnet8", split: str = "train"):
    """A classifier trained on real Fashion-MNIST ``split`` (SGD + one-cycle, bf16 autocast, flips).
    Returns (classifier in eval mode, its accuracy on the real test split)."""
    from ..data import load_dataset
    from ..models import create_model

    data = load_dataset("fashion-mnist", split=split)
    torch.manual_seed(seed)
    clf = create_model(model, num_classes=data.num_classes, classes=data.classes)
    opt = torch.optim.SGD(clf.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * math.ceil(len(data) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    g = torch.Generator().manual_seed(seed)
    clf.train()
    bar = progress(total=steps, desc=f"real {model}", unit="step")
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=g)
        for i in range(0, len(data), batch_size):
            idx = order[i : i + batch_size]
            x = data.images[idx].float() / 255.0
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            with autocast("auto", clf):
                loss = F.cross_entropy(clf(x).float(), data.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    clf.eval()
    test = load_dataset("fashion-mnist", split="test")
    acc = float((predict(clf, test.images) == test.labels).float().mean())
    return clf, acc


@torch.no_grad()
def predict(clf, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Class predictions (N,) of a pixels-in-[0,1] classifier on uint8 images (N, C, H, W)."""
    out = []
    for i in range(0, len(images), batch_size):
        with autocast("auto", clf):
            out.append(clf(images[i : i + batch_size].float() / 255.0).float().argmax(1))
    return torch.cat(out)


@torch.no_grad()
def clip_features(clip, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Small-CLIP image embeddings (N, D), L2-normalised, of uint8 images (N, C, H, W)."""
    return torch.cat([clip.encode_image(images[i : i + batch_size].float() / 255.0) for i in range(0, len(images), batch_size)])


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D)."""
    a, b = a.double().numpy(), b.double().numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(s1 s2) = the sum of the square roots of the eigenvalues of s1 s2, which are those of the PSD
    # s1^1/2 s2 s1^1/2 (real, >= 0 up to rounding): no matrix square root needed (scipy's sqrtm took
    # 0.45 s per 64 x 64 class here, the eigenvalues a millisecond)
    eig = np.linalg.eigvals(s1 @ s2)
    tr_covmean = float(np.sqrt(np.clip(eig.real, 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def diversity(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean pairwise L2 distance between embeddings of the same class, averaged over classes."""
    per = []
    for c in labels.unique():
        f = features[labels == c]
        if len(f) < 2:
            continue
        d = torch.cdist(f, f)
        n = len(f)
        per.append(float(d.sum() / (n * (n - 1))))
    return float(np.mean(per)) if per else float("nan")


def generate_per_class(gen, classes: Sequence[str], per_class: int, guidance: float, steps: int, scheduler: str,
                       seed: int = 0, batch_size: int = 256, template: str = PROMPT, desc: str = "generate"):
    """``per_class`` images of every class from ``template``; seeds ``seed + c * 1_000_000 + i``.
    Returns (uint8 images (K * per_class, C, H, W), labels (K * per_class,))."""
    prompts, seeds, labels = [], [], []
    for c, name in enumerate(classes):
        prompts += [template.format(name)] * per_class
        seeds += [seed + c * 1_000_000 + i for i in range(per_class)]
        labels += [c] * per_class
    chunks = []
    for i in progress(range(0, len(prompts), batch_size), desc=desc, unit="batch"):
        chunks.append(gen(prompts[i : i + batch_size], seeds[i : i + batch_size], guidance=guidance, steps=steps,
                          scheduler=scheduler, batch_size=batch_size).images)
    return torch.cat(chunks), torch.tensor(labels)


def measure_throughput(gen, steps_list: Sequence[int] = (10, 25, 50), batch: int = 256, guidance: float = 2.0,
                       scheduler: str = "dpm", repeats: int = 2) -> Dict[int, float]:
    """Images/s of ``gen`` at batch ``batch`` with CFG (guidance != 1), best of ``repeats`` per step count
    (prompt embeddings cached after a warm-up call)."""
    prompts = [f"a photo of a {c}" for c in ["shirt", "bag", "sneaker", "coat"]] * (batch // 4 + 1)
    prompts = prompts[:batch]
    gen(prompts[:8], list(range(8)), guidance=guidance, steps=2, scheduler=scheduler)  # warm-up, caches
    out = {}
    for steps in steps_list:
        best = float("inf")
        for r in range(repeats):
            t0 = time.perf_counter()
            gen(prompts, list(range(r * batch, (r + 1) * batch)), guidance=guidance, steps=steps, scheduler=scheduler,
                batch_size=batch)
            best = min(best, time.perf_counter() - t0)
        out[int(steps)] = batch / best
    return out


def sample_grid(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], path: Path, per_row: int = 12,
                scale: int = 2) -> Path:
    """A PNG with one row per class (first ``per_row`` images of it), class names on the left."""
    from PIL import Image, ImageDraw

    h, w = images.shape[-2:]
    label_w = 90
    grid = Image.new("L", (label_w + per_row * w * scale, len(classes) * h * scale), color=255)
    draw = ImageDraw.Draw(grid)
    for c, name in enumerate(classes):
        imgs = images[labels == c][:per_row]
        draw.text((4, c * h * scale + h * scale // 2 - 6), name, fill=0)
        for j, img in enumerate(imgs):
            tile = Image.fromarray(img[0].numpy() if img.shape[0] == 1 else img.float().mean(0).byte().numpy())
            grid.paste(tile.resize((w * scale, h * scale), Image.NEAREST), (label_w + j * w * scale, c * h * scale))
    from ..paths import atomic_write

    return atomic_write(path, lambda p: grid.save(p, format="PNG"))


def _real_classifier(out: Path, seed: int):
    """The real-data ResNet-8, trained once per output folder and seed (kept as safetensors for reruns)."""
    from safetensors.torch import load_file, save_file

    from ..models import create_model
    from ..data.fashion_mnist import CLASSES

    path = out / f"real_resnet8_seed{seed}.safetensors"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        clf = create_model("resnet8", num_classes=len(CLASSES), classes=list(CLASSES))
        clf.load_state_dict(load_file(str(path)))
        return clf.eval(), json.loads(meta.read_text())["test_accuracy"]
    say("training the real-data ResNet-8 (3 epochs on the real train split)")
    clf, acc = train_real_classifier(seed=seed)
    save_file({k: v.contiguous() for k, v in clf.state_dict().items()}, str(path))
    meta.write_text(json.dumps({"model": "resnet8", "epochs": 3, "split": "fashion-mnist/train", "seed": seed,
                                "test_accuracy": acc}))
    return clf, acc


def evaluate_generator(generator: Optional[str] = None, clip: Optional[str] = None, out_dir: str = "eval",
                       per_class: int = 1000, sweep_per_class: int = 200, guidance: float = 2.0,
                       sweep: Sequence[float] = (1, 2, 3, 5, 7.5), steps: int = 10, scheduler: str = "dpm",
                       seed: int = 0, throughput_steps: Sequence[int] = (10, 25, 50)) -> dict:
    """Measure every model-card figure; writes ``metrics.json`` and ``samples.png`` into ``out_dir``."""
    from ..data import load_dataset
    from ..models.small_clip import load_small_clip, zero_shot_accuracy
    from . import create_generator

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen = create_generator("embedded", **({"weights": generator} if generator else {}))
    clip_model = load_small_clip(clip) if clip else load_small_clip()
    test = load_dataset("fashion-mnist", split="test")
    classes = test.classes
    metrics: dict = {"generator": gen.config, "prompt": PROMPT, "guidance": guidance, "steps": steps,
                     "scheduler": scheduler, "per_class": per_class, "seed": seed}
    t0 = time.time()

    clf, real_acc = _real_classifier(out, seed)
    metrics["real_classifier"] = {"model": "resnet8", "epochs": 3, "split": "fashion-mnist/train", "test_accuracy": real_acc}

    images, labels = generate_per_class(gen, classes, per_class, guidance, steps, scheduler, seed=seed, desc="CAS images")
    pred = predict(clf, images)
    correct = pred == labels
    metrics["cas"] = float(correct.float().mean())
    metrics["cas_per_class"] = {name: float(correct[labels == c].float().mean()) for c, name in enumerate(classes)}
    sample_grid(images, labels, classes, out / "samples.png")

    gen_feats = clip_features(clip_model, images)
    real_feats = clip_features(clip_model, test.images)
    metrics["frechet_distance_clip"] = frechet_distance(gen_feats, real_feats)
    metrics["frechet_distance_clip_real_val_vs_test"] = frechet_distance(
        clip_features(clip_model, load_dataset("fashion-mnist", split="val").images), real_feats)
    metrics["diversity_real_test"] = diversity(real_feats, test.labels)
    zs = zero_shot_accuracy(clip_model, test)
    metrics["clip_zero_shot_test_accuracy"] = zs["accuracy"]
    metrics["clip_zero_shot_test_per_class"] = zs["per_class"]

    rows = []
    for g in sweep:
        if abs(g - guidance) < 1e-9 and sweep_per_class <= per_class:
            keep = torch.cat([torch.nonzero(labels == c).flatten()[:sweep_per_class] for c in range(len(classes))])
            imgs, labs = images[keep], labels[keep]
        else:
            imgs, labs = generate_per_class(gen, classes, sweep_per_class, g, steps, scheduler, seed=seed, desc=f"guidance {g}")
        ok = predict(clf, imgs) == labs
        rows.append({"guidance": g, "images_per_class": sweep_per_class, "cas": float(ok.float().mean()),
                     "diversity": diversity(clip_features(clip_model, imgs), labs)})
        say(f"guidance {g}: CAS {rows[-1]['cas']:.3f}, diversity {rows[-1]['diversity']:.3f}")
    metrics["guidance_sweep"] = rows

    if throughput_steps:
        metrics["throughput_img_per_s"] = {str(k): v for k, v in measure_throughput(gen, throughput_steps, guidance=guidance,
                                                                                  scheduler=scheduler).items()}
    metrics["wall_time_s"] = round(time.time() - t0, 1)
    metrics["threads"] = torch.get_num_threads()
    from ..paths import atomic_write_text

    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


SNAPSHOT_COLUMNS = ["precision", "recall", "density", "coverage", "fd", "diversity", "cas"]
SNAPSHOT_BEGIN = "<!-- snapshots: benchmarks/bench_embedded_generators.py --card -->"
SNAPSHOT_END = "<!-- /snapshots -->"


def snapshot_section(doc: dict) -> str:
    """The generator card's section on every embedded generator (the shipped model at several settings and
    the shipped snapshots), from ``benchmarks/bench_embedded_generators.py``'s document
    (``weights/snapshots/metrics.json``), between :data:`SNAPSHOT_BEGIN` and :data:`SNAPSHOT_END`."""
    rows = []
    for r in doc["generators"]:
        t = r.get("training") or {}
        trained = (f"{t['steps']} steps, {t.get('config', {}).get('captions', 'full')} captions"
                   if t else "12000 steps, full captions")
        rows.append(f"| {r['name']} | {trained} | " + " | ".join(f"{r['metrics'][c]:.3f}" for c in SNAPSHOT_COLUMNS) + " |")
    seconds = doc["seconds_per_metric"]
    return "\n".join([
        SNAPSHOT_BEGIN, "## The embedded generators compared", "",
        f"Measured with `{doc['command']}` ({doc['machine']}): each generator's 'template' store of "
        f"{doc['per_class']} images per class against {doc['per_class']} real test images per class, on small-CLIP "
        f"features, k = {doc['k']}; CAS: a ResNet-8 trained 3 epochs on the real `train` split "
        f"({doc['cas_model_test_accuracy']:.1%} on the real test split) on the generated images. Snapshots are "
        "stored in float16 (`weights/snapshots/`, `weights: shipped:<name>`); their steps are of a 2,000-step run, "
        "the shipped model's of a 12,000-step one. Definitions: docs/generators.md.", "",
        "| generator | training | precision | recall | density | coverage | Fréchet distance | diversity | CAS |",
        "|---|---|---|---|---|---|---|---|---|", *rows, "",
        "Seconds per metric over one store of 10 classes (10,000 images against 10,000): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
        + f"; generation {doc['generation_seconds_median']:.0f} s per store (median over the stores; the machine "
          "was shared with other jobs while they were made, so this is not the sampler's speed, which is above).",
        SNAPSHOT_END])


def with_snapshot_section(card: str, doc: Optional[dict]) -> str:
    """``card`` with :func:`snapshot_section` of ``doc`` in place of its old one (before "## Limitations"
    when it has none); unchanged without ``doc``."""
    if not doc:
        return card
    section = snapshot_section(doc)
    if SNAPSHOT_BEGIN in card:
        head, rest = card.split(SNAPSHOT_BEGIN, 1)
        return head + section + rest.split(SNAPSHOT_END, 1)[1]
    return card.replace("## Limitations", section + "\n\n## Limitations", 1)


def generator_card(metrics: dict, train_meta: dict, command: str, evaluate_command: str) -> str:
    """The generator model card (Markdown) from ``metrics.json`` and the weights' training metadata."""
    t = train_meta.get("training", {})
    cfg = t.get("config", {})
    unet = train_meta.get("unet", {})
    lines = [
        "# Embedded text-to-image model (synthclone `embedded` generator)",
        "",
        "A small UNet denoiser on 28x28x1 images, FiLM-conditioned on the all-MiniLM-L6-v2 sentence embedding of the",
        f"prompt (384-d) plus the timestep; {metrics['generator'].get('parameters', 0) / 1e6:.2f} M parameters, widths "
        f"{unet.get('channels')} at 28/14/7 px, {unet.get('blocks')} residual block(s) per resolution, self-attention at 7x7.",
        f"Noise schedule: {train_meta.get('schedule', {}).get('kind')} over {train_meta.get('schedule', {}).get('num_train_timesteps')} "
        f"steps, {train_meta.get('schedule', {}).get('prediction_type')}; samplers DPM-Solver++(2M) (`dpm`, default) and DDIM (`ddim`),",
        "trailing timestep spacing, predicted clean image clipped to [-1, 1]. Classifier-free guidance uses a learned null",
        "embedding (caption dropout during training); the conditional and unconditional halves run in one batch.",
        "Weights: `generator.safetensors` (EMA weights) + `generator.json` (config and training record).",
        "",
        "## Training",
        "",
        f"- Command: `{command}`",
        f"- Data: `{t.get('data')}` only (30,000 images of the fixed Fashion-MNIST generator split; never `train`, `val` or `test`),",
        "  random horizontal flips.",
        "- Captions: several phrasings per class from the class name, its '/'-alternatives, WordNet synonyms, definition",
        f"  and hypernym, and photo templates (`synthclone/generators/captions.py`); captions per class: {t.get('captions_per_class')}.",
        f"- Steps: {t.get('steps')} of batch {cfg.get('batch_size')}; AdamW lr {cfg.get('lr')} (warm-up {cfg.get('warmup')} steps, cosine to "
        f"{cfg.get('min_lr_ratio')}x), weight decay {cfg.get('weight_decay')}, EMA decay {cfg.get('ema_decay')}, caption dropout "
        f"{cfg.get('p_uncond')}, {cfg.get('precision')} autocast, stratified timesteps.",
        f"- Wall time: {t.get('wall_time_s', 0) / 60:.1f} min on a shared 2-core CPU (one intra-op thread, `OMP_NUM_THREADS=1`).",
        f"- Final training loss (v-prediction MSE, mean of the last logged window): {t.get('final_loss', float('nan')):.4f}.",
        "",
        "## Measured figures",
        "",
        f"Measured with `{evaluate_command}` (code: `synthclone/generators/evaluate.py`); raw numbers in",
        "`generator_metrics.json`. Sampling settings unless stated: prompt \"a photo of a {class}\", "
        f"guidance {metrics['guidance']}, {metrics['steps']} `{metrics['scheduler']}` steps, bf16.",
        "",
        f"**Classification accuracy score (CAS)**: {_pct(metrics['cas'])} on {metrics['per_class']} generated images per class",
        f"({metrics['per_class'] * len(metrics['cas_per_class'])} images), classified by a ResNet-8 trained 3 epochs on the real `train` split",
        f"(that classifier: {_pct(metrics['real_classifier']['test_accuracy'])} on the real test split). Target: >= 85%.",
        "",
        "| class | CAS |",
        "|---|---|",
    ]
    lines += [f"| {c} | {_pct(v)} |" for c, v in metrics["cas_per_class"].items()]
    lines += ["", "**Guidance sweep** (CAS and diversity = mean pairwise L2 distance between small-CLIP image embeddings of",
              f"same-class images, averaged over classes; real test images: {metrics['diversity_real_test']:.3f}):", "",
              "| guidance | images/class | CAS | diversity |", "|---|---|---|---|"]
    lines += [f"| {r['guidance']} | {r['images_per_class']} | {_pct(r['cas'])} | {r['diversity']:.3f} |" for r in metrics["guidance_sweep"]]
    lines += ["",
              f"**Fréchet distance** in the small CLIP's embedding space, {metrics['per_class'] * len(metrics['cas_per_class'])} generated vs the 10,000 real",
              f"test images: {metrics['frechet_distance_clip']:.4f} (reference: real `val` vs real `test`: "
              f"{metrics['frechet_distance_clip_real_val_vs_test']:.4f}).", "",
              f"**Small CLIP zero-shot accuracy** on the real test split: {_pct(metrics['clip_zero_shot_test_accuracy'])} (see CLIP_CARD.md).", ""]
    if metrics.get("throughput_img_per_s"):
        lines += ["**Sampling throughput** (batch 256, classifier-free guidance on, DPM-Solver++(2M), bf16, "
                  f"{metrics.get('threads')} thread(s), shared 2-core CPU; `benchmarks/bench_generator.py`):", "",
                  "| steps | images/s |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in metrics["throughput_img_per_s"].items()]
        lines += [""]
    lines += ["**Samples** (`generator_samples.png`, one row per class, the first 12 CAS images):", "",
              "![samples](generator_samples.png)", "",
              "## Limitations", "",
              "- 28x28 grayscale only; it knows the ten Fashion-MNIST classes and phrasings close to its captions.",
              "- \"T-shirt/top\", \"Shirt\", \"Pullover\" and \"Coat\" have close sentence embeddings and similar images; most",
              "  errors are between them.",
              "- Figures were measured on a CPU shared with other jobs; throughput on an idle machine is higher.", ""]
    from .embedded import SNAPSHOT_DIR

    measured = SNAPSHOT_DIR / "metrics.json"
    return with_snapshot_section("\n".join(lines), json.loads(measured.read_text()) if measured.is_file() else None)


def clip_card(summary: dict, command: str, metrics: Optional[dict] = None) -> str:
    """The small-CLIP model card (Markdown) from its training summary."""
    cfg = summary.get("config", {})
    lines = [
        "# Small CLIP (synthclone `small_clip`)",
        "",
        "An image tower (CNN: three stages of two 3x3 conv-BN-ReLU at widths "
        f"{cfg.get('width')}/{2 * cfg.get('width', 0)}/{4 * cfg.get('width', 0)}, global pooling, linear projection to "
        f"{cfg.get('embed_dim')}-d) trained contrastively against the FROZEN all-MiniLM-L6-v2 sentence encoder followed by a",
        f"learned linear projection; {summary.get('parameters', 0) / 1e3:.0f} k trainable parameters. Weights: `small_clip.safetensors` + `small_clip.json`.",
        "",
        "## Training",
        "",
        f"- Command: `{command}`",
        f"- Data: `{summary.get('data')}` only (the generator split, 30,000 images), each image paired with a caption drawn",
        "  from its class's phrasings (the generator's caption bank); horizontal flips and +-2 px shifts.",
        f"- Loss: symmetric InfoNCE whose targets count every same-class pair in the batch as a positive; {summary.get('epochs')} epochs,",
        f"  {summary.get('steps')} steps of batch {cfg.get('batch_size')}, AdamW one-cycle lr {cfg.get('lr')}, {cfg.get('precision')} autocast.",
        f"- Wall time: {summary.get('wall_time_s', 0) / 60:.1f} min on a shared 2-core CPU (`OMP_NUM_THREADS=1`, `nice -n 5`); final loss {summary.get('final_loss', float('nan')):.3f}.",
        "",
        "## Measured figures",
        "",
        f"Zero-shot classification (class names x templates {summary.get('templates')}):",
        f"- real `val` split: {_pct(summary['zero_shot_val_accuracy'])}",
        f"- real `test` split: {_pct(summary['zero_shot_test_accuracy'])} (target >= 70%)",
        "",
        "| class | zero-shot test accuracy |",
        "|---|---|",
    ]
    lines += [f"| {c} | {_pct(v)} |" for c, v in summary["zero_shot_test_per_class"].items()]
    lines += ["", "Measured at the end of `synthclone pretrain clip` (code: `synthclone/models/small_clip.py`).", "",
              "## Uses and limitations", "",
              "- Zero-shot classifier, the CLIP-confidence filter of synthetic images, frozen features for classifier tuning,",
              "  and the feature space of the generator's Fréchet distance and diversity figures.",
              "- It saw only Fashion-MNIST-like 28x28 grayscale images and captions built from ten class names; other inputs",
              "  are resized and averaged to gray, but its features mean little outside that world.", ""]
    return "\n".join(lines)

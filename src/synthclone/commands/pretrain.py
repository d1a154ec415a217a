"""``synthclone pretrain generator|clip|evaluate``: train the embedded text-to-image model or the small
CLIP on the Fashion-MNIST generator split, or measure a generator's model-card figures.

    synthclone pretrain generator --steps 10000 --out runs/pretrain-generator [--resume]
    synthclone pretrain clip --epochs 8 --out runs/pretrain-clip
    synthclone pretrain evaluate --generator runs/pretrain-generator --out runs/eval
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser) -> None:
    from ..device import add_device_argument

    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)

    g = sub.add_parser("generator", help="train the embedded text-to-image diffusion model (checkpointed, resumable)")
    g.add_argument("--out", required=True, help="output folder (checkpoints, loss.jsonl, generator.safetensors)")
    g.add_argument("--steps", type=int, default=10000, help="total optimisation steps (default 10000)")
    g.add_argument("--resume", action="store_true", help="continue from OUT/latest")
    g.add_argument("--batch-size", type=int, default=128, help="images per optimisation step (default: %(default)s)")
    g.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: %(default)s)")
    g.add_argument("--channels", default="16,32,64", help="UNet widths per resolution (28, 14, 7), comma-separated (default: %(default)s)")
    g.add_argument("--blocks", type=int, default=1, help="residual blocks per resolution (default: %(default)s)")
    g.add_argument("--ema-decay", type=float, default=0.999, help="decay of the weights' exponential moving average (the saved generator) (default: %(default)s)")
    g.add_argument("--p-uncond", type=float, default=0.1, help="caption dropout rate (for classifier-free guidance) (default: %(default)s)")
    g.add_argument("--checkpoint-every", type=int, default=500, help="steps between resumable checkpoints (default: %(default)s)")
    g.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto", help="auto: bf16 autocast where the hardware has bf16 units, else fp32 (default: %(default)s)")
    g.add_argument("--limit", type=int, default=None, help="use only the first N generator-split images (smoke tests)")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches and noise (default: %(default)s)")
    g.add_argument("--captions", choices=["full", "narrow"], default="full",
                   help="caption set: full = names, synonyms, definitions and 14 templates (the shipped model); narrow = "
                        "the class name under 4 templates (default: %(default)s)")
    g.add_argument("--snapshot-at", default="", help="comma-separated steps at which the EMA weights are also kept as "
                                                       "OUT/generator-step<k>.safetensors (default: none)")
    add_device_argument(g, "auto")

    c = sub.add_parser("clip", help="train the small CLIP image tower against the frozen sentence encoder")
    c.add_argument("--out", required=True, help="output folder (small_clip.safetensors + .json, loss log)")
    c.add_argument("--epochs", type=int, default=8, help="passes over the generator split (default: %(default)s)")
    c.add_argument("--batch-size", type=int, default=256, help="image-caption pairs per step (the contrastive batch) (default: %(default)s)")
    c.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate (default: %(default)s)")
    c.add_argument("--width", type=int, default=32, help="base width of the CNN image tower (default: %(default)s)")
    c.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto", help="auto: bf16 autocast where the hardware has bf16 units, else fp32 (default: %(default)s)")
    c.add_argument("--limit", type=int, default=None, help="use only the first N generator-split images (smoke tests)")
    c.add_argument("--seed", type=int, default=0, help="seed of initialisation and batches (default: %(default)s)")
    add_device_argument(c, "auto")
    c.add_argument("--card-dir", default=None, help="also write CLIP_CARD.md here (src/synthclone/weights for the shipped card)")

    e = sub.add_parser("evaluate", help="measure a generator's model-card figures (CAS, guidance sweep, FD, throughput)")
    e.add_argument("--generator", default=None, help="embedded weights (file or folder); default: the shipped ones")
    e.add_argument("--clip", default=None, help="small CLIP weights; default: the shipped ones")
    e.add_argument("--out", required=True, help="folder for metrics.json and the sample grid")
    e.add_argument("--per-class", type=int, default=1000, help="generated images per class for the CAS (default 1000)")
    e.add_argument("--sweep-per-class", type=int, default=200, help="images per class per guidance in the sweep (default: %(default)s)")
    e.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance scale of the CAS images (default: %(default)s)")
    e.add_argument("--sweep", default="1,2,3,5,7.5", help="guidance scales of the sweep ('' to skip) (default: %(default)s)")
    e.add_argument("--steps", type=int, default=10, help="sampler steps (default: %(default)s)")
    e.add_argument("--scheduler", default="dpm", help="sampler: dpm or ddim (default: %(default)s)")
    e.add_argument("--seed", type=int, default=0, help="seed of the generated images (default: %(default)s)")
    e.add_argument("--card-dir", default=None,
                   help="also write GENERATOR_CARD.md, generator_metrics.json and generator_samples.png here "
                        "(src/synthclone/weights for the shipped card)")
    e.add_argument("--no-throughput", action="store_true", help="skip the throughput measurement")

    s = sub.add_parser("snapshot", help="ship trained embedded weights as a snapshot (float16): weights: shipped:NAME")
    s.add_argument("weights", help="the weights to ship (a .safetensors file with its .json, or a pretrain output folder)")
    s.add_argument("--name", required=True, help="the snapshot's name (letters, digits, '-', '_')")
    s.add_argument("--dir", default=None, help="snapshot folder (default: the package's weights/snapshots)")


def run(args) -> int:
    from ..progress import say

    if args.what == "snapshot":
        from ..generators.embedded import SNAPSHOT_DIR, ship_snapshot

        path = ship_snapshot(args.weights, args.name, Path(args.dir) if args.dir else SNAPSHOT_DIR)
        say(f"snapshot {args.name}: {path} ({path.stat().st_size / 1e6:.2f} MB); use it as weights: shipped:{args.name}")
        return 0

    if args.what == "generator":
        from ..errors import UserError
        from ..generators.train import GeneratorTrainConfig, train_generator

        try:
            channels = [int(c) for c in args.channels.split(",")]
        except ValueError:
            raise UserError(f"--channels {args.channels!r} must be comma-separated integers like 16,32,64") from None
        if args.steps < 1:
            raise UserError(f"--steps must be >= 1 (got {args.steps})")
        try:
            snapshots = sorted({int(k) for k in args.snapshot_at.split(",") if k.strip()})
        except ValueError:
            raise UserError(f"--snapshot-at {args.snapshot_at!r} must be comma-separated step numbers like 500,2000") from None
        if any(not 1 <= k <= args.steps for k in snapshots):
            raise UserError(f"--snapshot-at {args.snapshot_at!r}: every step must lie in 1..--steps ({args.steps})")
        cfg = GeneratorTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, channels=channels,
                                   blocks=args.blocks, ema_decay=args.ema_decay, p_uncond=args.p_uncond,
                                   checkpoint_every=args.checkpoint_every, precision=args.precision,
                                   limit=args.limit, seed=args.seed, device=args.device, captions=args.captions,
                                   snapshots=snapshots)
        summary = train_generator(args.out, cfg, resume=args.resume)
        say(f"generator: {summary['steps']} steps, final loss {summary['final_loss']:.4f}, "
            f"{summary['wall_time_s']:.0f} s; weights in {Path(args.out) / 'generator.safetensors'}")
        print(json.dumps(summary))
        return 0
    if args.what == "clip":
        from ..models.small_clip import ClipTrainConfig, train_small_clip

        cfg = ClipTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, width=args.width,
                              precision=args.precision, limit=args.limit, seed=args.seed, device=args.device)
        summary = train_small_clip(args.out, cfg)
        say(f"small CLIP: zero-shot test accuracy {summary['zero_shot_test_accuracy']:.3f}; weights in {args.out}")
        if args.card_dir:
            from ..generators.evaluate import clip_card

            _write(Path(args.card_dir) / "CLIP_CARD.md", clip_card(summary, _command_line()))
        print(json.dumps(summary))
        return 0
    from ..generators.evaluate import evaluate_generator

    metrics = evaluate_generator(generator=args.generator, clip=args.clip, out_dir=args.out, per_class=args.per_class,
                                 sweep_per_class=args.sweep_per_class, guidance=args.guidance,
                                 sweep=[float(s) for s in args.sweep.split(",") if s.strip()], steps=args.steps,
                                 scheduler=args.scheduler, seed=args.seed,
                                 throughput_steps=() if args.no_throughput else (10, 25, 50))
    if args.card_dir:
        import shutil

        from ..generators.evaluate import generator_card
        from ..paths import WEIGHTS_DIR

        card_dir = Path(args.card_dir)
        card_dir.mkdir(parents=True, exist_ok=True)
        weights = Path(args.generator) if args.generator else WEIGHTS_DIR / "generator.safetensors"
        meta_path = (weights / "generator.json") if weights.is_dir() else weights.with_suffix(".json")
        meta = json.loads(meta_path.read_text())
        _write(card_dir / "generator_metrics.json", json.dumps(metrics, indent=2))
        shutil.copyfile(Path(args.out) / "samples.png", card_dir / "generator_samples.png")
        _write(card_dir / "GENERATOR_CARD.md", generator_card(metrics, meta, _train_command(meta), _command_line()))
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}))
    return 0


def _write(path: Path, text: str) -> None:
    from ..paths import atomic_write_text

    atomic_write_text(path, text)


def _command_line() -> str:
    import sys

    return "synthclone " + " ".join(sys.argv[1:])


def _train_command(meta: dict) -> str:
    """The ``synthclone pretrain generator`` command that reproduces a weights file, from its training record."""
    cfg = meta.get("training", {}).get("config", {})
    parts = ["OMP_NUM_THREADS=1 synthclone pretrain generator", f"--steps {cfg.get('steps')}", "--out runs/pretrain-generator"]
    defaults = {"batch_size": 128, "lr": 1e-3, "channels": [16, 32, 64], "blocks": 1, "ema_decay": 0.999, "p_uncond": 0.1,
                "precision": "bf16", "seed": 0}
    for key, default in defaults.items():
        value = cfg.get(key, default)
        if value != default:
            flag = "--" + key.replace("_", "-")
            parts.append(f"{flag} {','.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(parts)

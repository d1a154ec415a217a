"""``synthclone train``: train a recognizer on real, synthetic or mixed data with any regime.

Examples::

    synthclone train --data real --model resnet8 --regime supervised --out runs/real-r8 --epochs 3
    synthclone train --data real+runs/x/store@0.5 --out runs/mix              # half synthetic per batch
    synthclone train --data real:k=16+runs/x/store --regime classifier-tuning --model small_clip \\
        --loss-weights 1,0.5 --out runs/fewshot-ct
    synthclone train --data real --regime finetune --init runs/synth-r8 --out runs/ft
    torchrun --nproc_per_node 2 -m synthclone train --data real --out runs/ddp   # data-parallel (gloo)
    synthclone train --data real --out runs/ray --ray local --workers 2            # Ray Train workers
    synthclone train --config configs/quickstart.yaml --out runs/cfg

The checkpoint (``OUT/model.safetensors`` + ``OUT/meta.json``) is the epoch with the best
validation accuracy; ``--test`` evaluates it once on the test split after training.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..device import add_device_argument
from ..errors import UserError
from . import add_config_arguments, load_settings, positive_int
from ..progress import say


def _floats(text: str):
    import argparse

    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        # an argparse type error: argparse turns it into the one-line usage error (a UserError here escaped as a traceback)
        raise argparse.ArgumentTypeError(f"{text!r} must be comma-separated numbers, e.g. 1,0.5") from None


def add_arguments(parser) -> None:
    parser.add_argument("--data", help="data spec: real | STORE | real+STORE@0.5 | real+STORE:n=100 | real:k=16 (default: real)")
    parser.add_argument("--model", help="resnet8 | resnet20 | CHECKPOINT_DIR | timm:NAME | torchvision:NAME | "
                                        "open_clip:NAME | small_clip (default: resnet8; small_clip for classifier-tuning)")
    parser.add_argument("--regime", help="supervised | finetune | linear-probe | classifier-tuning | ssl | ssl-multipos | clip "
                                         "(default: the first of train.regimes, supervised)")
    parser.add_argument("--out", required=True, help="checkpoint directory to write (a killed run resumes from it)")
    add_config_arguments(parser, "train")
    parser.add_argument("--epochs", type=positive_int, help="training epochs (default 3)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: per regime)")
    parser.add_argument("--batch-size", type=positive_int, help="images per step over all processes (default 128)")
    parser.add_argument("--seed", type=int, help="seed of initialisation, batch order and augmentation (default 0)")
    parser.add_argument("--weight-decay", type=float, help="weight decay (default 5e-4)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], help="auto (default): bf16 where the hardware has bf16 units")
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], help="default: the regime's own")
    parser.add_argument("--warmup-epochs", type=float, help="linear learning-rate warm-up in epochs (default 0.5)")
    parser.add_argument("--patience", type=positive_int, help="early stopping: epochs without validation improvement (default: off)")
    parser.add_argument("--val-limit", type=positive_int, help="validate on a fixed subset of this many validation images (default: all)")
    parser.add_argument("--loss-weights", type=_floats, help="loss weight per data part, e.g. 1,0.5 for real,synthetic (default: equal)")
    parser.add_argument("--init", help="finetune: the checkpoint to start from")
    parser.add_argument("--pretrained", action="store_true", help="load pretrained timm/torchvision weights (the local cache, else downloads)")
    parser.add_argument("--dataset", help="the real dataset behind 'real' and the val/test splits: a registered name or an "
                                          "ImageFolder path (default: data.dataset of --config, else fashion-mnist)")
    parser.add_argument("--image-size", type=positive_int, help="bring every image to this size (default: data.image_size, else "
                                                       "the model's input size for timm/torchvision/open_clip, else the data's)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="regime option, short for --set train.options.KEY=VALUE, e.g. tau=0.1, probe_epochs=5, "
                             "temperature=2, probe_data=real")
    parser.add_argument("--test", action="store_true", help="after training, evaluate the selected checkpoint on the test split")
    parser.add_argument("--test-limit", type=positive_int, help="evaluate --test on at most this many test images (default: all)")
    parser.add_argument("--ray", nargs="?", const="local", help="train on Ray Train workers ('local' or a Ray address)")
    parser.add_argument("--workers", type=positive_int, default=2, help="number of Ray workers with --ray (default 2)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads per process (default: torch's choice)")
    parser.add_argument("--channels-last", action="store_true", default=None, help="channels-last memory format (GPUs)")
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    parser.add_argument("--sync-bn", action="store_true", default=None,
                        help="SyncBatchNorm across torchrun / Ray processes (CUDA only)")
    add_device_argument(parser)


# flag -> the config key it sets (the flags win over --set, which wins over --config)
FLAG_KEYS = {
    "data": "train.data", "model": "train.model", "epochs": "train.epochs", "lr": "train.lr",
    "batch_size": "train.batch_size", "weight_decay": "train.weight_decay", "precision": "train.precision",
    "optimizer": "train.optimizer", "warmup_epochs": "train.warmup_epochs", "patience": "train.patience",
    "channels_last": "train.channels_last", "compile": "train.compile", "sync_bn": "train.sync_bn",
    "dataset": "data.dataset", "image_size": "data.image_size", "val_limit": "data.val_limit",
    "test_limit": "data.test_limit", "threads": "threads", "device": "device",
}


def settings(args):
    """The run config of this command: ``--config`` <- ``--set`` / ``--option`` <- the flags."""
    from ..config import option_overrides

    flags = {key: getattr(args, name) for name, key in FLAG_KEYS.items()}
    flags["train.regimes"] = [args.regime] if args.regime else None
    flags["train.seeds"] = [args.seed] if args.seed is not None else None
    return load_settings(args, option_overrides(args.option, "train"), flags)


def run(args) -> int:
    from ..device import resolve_device

    from ..paths import check_out_dir

    cfg = settings(args)
    check_out_dir(args.out)
    device = cfg.device
    if not args.ray:
        resolve_device(device)  # CUDA on a machine without it fails here, before anything is loaded
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    t = cfg.train
    regime = t.regimes[0]
    data = t.data
    if not str(data).strip():
        raise UserError("--data is empty; give real, a store folder or a data spec such as real+STORE@0.5")
    dataset = cfg.data.dataset
    if not dataset:
        raise UserError("--dataset is empty; give a registered dataset name or an ImageFolder path")
    seed = t.seeds[0]
    # the model and lr the user asked for; otherwise the regime's own (a CLIP for classifier tuning)
    model = t.model if "model" in t.model_fields_set or regime != "classifier-tuning" else None
    kwargs = dict(
        regime=regime, train_data=data, model=model, out_dir=args.out, epochs=t.epochs, batch_size=t.batch_size,
        lr=t.lr if "lr" in t.model_fields_set else None, seed=seed, weight_decay=t.weight_decay,
        precision=t.precision, warmup_epochs=t.warmup_epochs, patience=t.patience, val_limit=cfg.data.val_limit,
        optimizer=t.optimizer, loss_weights=args.loss_weights, dataset=dataset,
        data_options=_data_options(cfg, model), device=device, channels_last=t.channels_last, compile=t.compile,
        sync_bn=t.sync_bn, **t.options,
    )
    if args.init:
        kwargs["init"] = args.init
    if args.pretrained:
        kwargs["pretrained"] = True
    if args.ray:
        from ..training.launch import train_with_ray

        say(f"training on {args.workers} Ray workers ({args.ray})")
        train_with_ray(kwargs, dataset, args.workers, args.ray)
        from ..models.checkpoint import read_meta

        info = read_meta(args.out)["training"]
        print(f"{regime} on {data} ({args.workers} Ray workers): best val acc {info.get('val_accuracy')} "
              f"(epoch {info.get('best_epoch')}) -> {args.out}")
        return _finish(args, cfg, model)

    from ..training import train_model
    from ..training.launch import init_from_env, shutdown
    from ..training.engine import world

    distributed = init_from_env(resolve_device(device))
    try:
        val = _val_split(dataset, _data_options(cfg, model, evaluation=True))
        kwargs["train_data"] = _resolve_data(data, dataset, seed, kwargs["data_options"])
        result = train_model(val_data=val, **kwargs)
        if world()[1] != 0:
            return 0
        acc = f"{result.val_accuracy:.4f}" if result.val_accuracy is not None else "n/a"
        print(f"{regime} {model or ''} on {data}: best val acc {acc} (epoch {result.best_epoch}), "
              f"{result.images_per_s:.0f} images/s -> {result.checkpoint_dir}")
    finally:
        if distributed:
            shutdown()
    return _finish(args, cfg, model)


def _data_options(cfg, model, evaluation: bool = False) -> dict:
    from ..data import data_options
    from ..models import model_data_config

    wanted = model_data_config(model) or {}
    size = cfg.data.image_size or wanted.get("size")
    extra = {"size": size} if size else {}
    if evaluation and wanted.get("crop_pct") and not cfg.data.image_size:
        extra["crop_pct"] = wanted["crop_pct"]
    return data_options(cfg.data, **extra)


def _val_split(dataset: str, options: dict):
    """The validation split (model selection); every dataset has one (a folder's is carved from train)."""
    from ..data import load_dataset

    return load_dataset(dataset, split="val", **options)


def _resolve_data(spec: str, dataset: str, seed: int, options: dict):
    from ..data.mixing import load_train_data

    return load_train_data(spec, dataset=dataset, seed=seed, options=options)


def _finish(args, cfg, model_spec) -> int:
    if not args.test:
        return 0
    from ..data import load_dataset
    from ..device import resolve_device
    from ..models import load_any_model
    from ..training.engine import accuracy, limit_val

    # the one place the test split is read: after training and model selection are over
    dataset = cfg.data.dataset
    test = limit_val(load_dataset(dataset, split="test", **_data_options(cfg, model_spec, evaluation=True)),
                     cfg.data.test_limit)
    model = load_any_model(args.out).to(resolve_device(cfg.device))
    acc = accuracy(model, test)
    out = Path(args.out) / "test_eval.json"
    from ..paths import atomic_write_text

    atomic_write_text(out, json.dumps({"test_accuracy": acc, "test_size": len(test), "dataset": dataset}, indent=2))
    print(f"test accuracy {acc:.4f} on {len(test)} images (written to {out})")
    return 0

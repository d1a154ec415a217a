"""``synthclone bench``: run the robustness probes on one or more models.

Writes ``<out>/rows.parquet`` (one row per sample per condition; schema in
:mod:`synthclone.robustness`), ``<out>/summary.json`` (headline metrics per model, probe timings,
settings) and ``<out>/plots/`` (reliability diagrams), and prints a table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from ..device import add_device_argument
from . import add_config_arguments, count, load_settings, positive_int


def add_arguments(parser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="MODEL",
                        help="CKPT_DIR | timm:NAME | torchvision:NAME | open_clip:NAME | small_clip | a registered "
                             "name; repeat to compare models")
    add_config_arguments(parser, "bench")
    parser.add_argument("--probes", help="'all' (default) or a comma list (see 'synthclone list probes')")
    parser.add_argument("--data",
                        help="the dataset whose test split is evaluated: a registered name (default: data.dataset of "
                             "--config, else fashion-mnist) or an ImageFolder path (its splits as 'synthclone data info' shows)"),
    parser.add_argument("--val", default=None,
                        help="validation data for temperature scaling (default: the val split of --data)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="bring images to this size (default: the model's input size for timm/torchvision/open_clip, "
                             "else the data's own)")
    parser.add_argument("--workers", type=count, default=None, help="DataLoader workers decoding images (default: the cores, at most 8)")
    parser.add_argument("--skip-unreadable", action="store_true", default=None,
                        help="leave unreadable image files out instead of failing")
    parser.add_argument("--cache-mb", type=count, default=None,
                        help="hold a split in memory when its decoded pixels take at most this many MiB (default 256; 0: stream)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--baseline", default=None, help="model normalising CE/mCE (run on the corruptions too; default: none)")
    parser.add_argument("--limit", type=positive_int, default=None, help="use at most N evaluation images in every probe (default: all)")
    parser.add_argument("--seed", type=int, default=None, help="seed of subsets, noise and attacks (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="evaluation batch size (default 256)")
    parser.add_argument("--pretrained", action="store_true", help="load pretrained timm/torchvision weights (downloads)")
    parser.add_argument("--random-weights", action="store_true",
                        help="benchmark timm/torchvision models with random weights (a smoke test; marked in the summary)")
    parser.add_argument("--label-map", default=None,
                        help="map the model's classes onto the data's: imagenet16, imagenet9 or a JSON file "
                             "{data class: [model class indices]}")
    parser.add_argument("--extra-set", action="append", default=[], metavar="FOLDER",
                        help="shifted test set (ImageNet-R/-A/-Sketch/-V2 style folder) for the clean probe")
    parser.add_argument("--corruption-folder", default=None, help="precomputed <root>/<corruption>/<severity>/<class>/")
    parser.add_argument("--cue-conflict-folder", default=None, help="the 16-class cue-conflict stimuli folder")
    parser.add_argument("--imagenet9-root", default=None, help="ImageNet-9 bg_challenge folder (original, mixed_same, ...)")
    parser.add_argument("--ood-folder", action="append", default=[], metavar="FOLDER", help="an OOD ImageFolder")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a robustness.BenchSettings field, short for --set bench.options.KEY=VALUE (VALUE as YAML, "
                             "e.g. pgd_steps=5, attacks=[fgsm])")
    parser.add_argument("--no-plots", action="store_true", help="skip the reliability diagrams")
    add_device_argument(parser)


def _load_data(spec: str, split: str, options: dict):
    from ..data import load_dataset
    from ..errors import UserError

    if not spec:
        raise UserError("--data is empty; give a registered dataset name or an ImageFolder path")
    data = load_dataset(spec, split=split, **options)
    if len(data) == 0:
        raise UserError(f"dataset {spec!r} has no images; point --data at a non-empty ImageFolder")
    return data


def _label_groups(arg, data_classes):
    from ..errors import UserError

    if arg is None:
        return None
    if arg in ("imagenet16", "imagenet9"):
        from ..robustness.label_maps import groups_for

        return groups_for(arg, list(data_classes))
    path = Path(arg)
    if not path.is_file():
        raise UserError(f"--label-map {arg!r} is neither imagenet16, imagenet9 nor a JSON file")
    try:
        table = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"--label-map {path} is not valid JSON ({exc.msg}); give {{data class: [model indices]}}") from None
    missing = [c for c in data_classes if c not in table]
    if missing:
        raise UserError(f"--label-map {path} lacks data classes {missing[:5]}")
    return [list(map(int, table[c])) for c in data_classes]


def _settings(args, cfg, data, val):
    from ..robustness import BenchSettings
    from ..study import bench_fields, ood_settings

    ood = ood_settings(cfg)
    ood["ood_folders"] = ood["ood_folders"] + list(args.ood_folder)
    return BenchSettings(data=data, val=val, extra_sets=list(args.extra_set), corruption_folder=args.corruption_folder,
                         cue_conflict_folder=args.cue_conflict_folder, imagenet9_root=args.imagenet9_root,
                         label_groups=_label_groups(args.label_map, data.classes), **{**ood, **bench_fields(cfg)})


# flag -> the config key it sets (the flags win over --set, which wins over --config)
FLAG_KEYS = {"data": "data.dataset", "image_size": "data.image_size", "workers": "data.workers",
             "skip_unreadable": "data.skip_unreadable", "cache_mb": "data.cache_mb", "limit": "bench.limit",
             "seed": "bench.seed", "batch_size": "bench.batch_size", "device": "device"}


def settings(args):
    """The run config of this command: ``--config`` <- ``--set`` / ``--option`` <- the flags."""
    from ..config import option_overrides

    flags = {key: getattr(args, name) for name, key in FLAG_KEYS.items()}
    if args.probes is not None:
        flags["bench.probes"] = [p.strip() for p in args.probes.split(",") if p.strip()] or [""]
    return load_settings(args, option_overrides(args.option, "bench"), flags)


def _trained_size(specs) -> Optional[tuple]:
    """``(h, w)`` of the images the checkpoint folders among ``specs`` were trained on (the first that records
    one); None when no checkpoint folder is given."""
    from ..models.checkpoint import read_meta

    for spec in specs:
        if Path(spec).is_dir() and (Path(spec) / "meta.json").is_file():
            size = (read_meta(spec).get("spec") or {}).get("input_size")
            if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size):
                return tuple(size)
    return None


def _model_name(spec: str) -> str:
    p = Path(spec)
    return p.name if p.is_dir() else spec


def _is_hub(spec: str) -> bool:
    """A timm/torchvision model name (its weights come from the hub, not from a checkpoint folder)."""
    return spec.startswith(("timm:", "torchvision:")) and not Path(spec).is_dir()


def _load_model(spec: str, data, pretrained: bool):
    from ..models import load_any_model

    c, h, w = data.shape
    return load_any_model(spec, classes=list(data.classes), in_chans=c, input_size=(h, w), pretrained=pretrained).eval()


def _write_atomic(path: Path, write) -> None:
    from ..paths import atomic_write

    atomic_write(path, write)


HEADLINE = ["clean_acc", "ece", "ts_ece", "nll", "corruption_acc", "mce_unnormalized", "corruption_mce",
            "fgsm_acc@2/255", "pgd_linf_acc@2/255", "shape_bias", "bg_gap", "ood_auroc", "ood_fpr95"]


def format_table(summary: dict) -> str:
    """Models as rows, headline metrics as columns (only those present)."""
    cols = [c for c in HEADLINE if any(c in m for m in summary.values())]
    width = max([len("model")] + [len(k) for k in summary])
    lines = ["  ".join([f"{'model':<{width}}"] + [f"{c:>{max(len(c), 7)}}" for c in cols])]
    for name, m in summary.items():
        cells = []
        for c in cols:
            v = m.get(c)
            cells.append(f"{'-' if v is None else f'{v:.4f}':>{max(len(c), 7)}}")
        lines.append("  ".join([f"{name:<{width}}"] + cells))
    return "\n".join(lines)


def run(args) -> int:
    import pandas as pd

    from ..errors import UserError
    from ..progress import say, warn
    from ..robustness import resolve_probes, run_probes, summarize

    from ..models import model_data_config

    from ..device import resolve_device

    from ..paths import check_out_dir

    cfg = settings(args)
    check_out_dir(args.out)
    resolve_device(cfg.device)  # CUDA on a machine without it fails before anything loads
    hub = [m for m in list(args.model) + ([args.baseline] if args.baseline else []) if _is_hub(m)]
    if hub and not (args.pretrained or args.random_weights):
        raise UserError(f"{hub[0]} has no weights without --pretrained; pass --pretrained (downloads, or the local "
                        "cache) or --random-weights (a smoke test with random weights)")
    probes = resolve_probes(cfg.bench.probes)  # unknown probe names fail before anything loads
    from ..data import data_options

    wanted = next((c for c in map(model_data_config, args.model) if c), None) or {}
    size = cfg.data.image_size or wanted.get("size")
    crop = wanted.get("crop_pct") if not cfg.data.image_size else None
    options = data_options(cfg.data, **{k: v for k, v in {"size": size, "crop_pct": crop}.items() if v is not None})
    data = _load_data(cfg.data.dataset, "test", options)
    trained = _trained_size(args.model)
    if trained and not size and tuple(data.shape[1:]) != trained:
        # a checkpoint sees images at the size it was trained on: an 8 px folder on a 28 px model is read at 28
        warn(f"[bench] note: the data's images are {data.shape[1]}x{data.shape[2]} but the model was trained on "
            f"{trained[0]}x{trained[1]}; reading them at {trained[0]} px (pass --image-size to choose)")
        options["size"] = trained[0]
        data = _load_data(cfg.data.dataset, "test", options)
    val = _load_data(args.val or cfg.data.dataset, "val", options)
    settings_ = _settings(args, cfg, data, val)
    if "ood" in probes and settings_.mahalanobis:
        settings_.train = _load_data(cfg.data.dataset, "train", options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    models = [(spec, _load_model(spec, data, args.pretrained)) for spec in args.model]
    names = [_model_name(s) for s, _ in models]
    if len(set(names)) != len(names):
        raise UserError(f"two --model arguments share the name {names}; give distinct checkpoints")
    frames, seconds = [], {}
    start = time.time()
    for (spec, model), name in zip(models, names):
        rows = run_probes(model, name, probes, settings_)
        seconds[name] = rows.attrs.get("seconds", {})
        frames.append(rows)
    hardware = frames[0].attrs.get("device") if frames else None
    baseline_name = None
    if args.baseline:
        baseline_name = _model_name(args.baseline)
        if baseline_name not in names:
            base_probes = [p for p in ("clean", "corruptions") if p in probes] or ["corruptions"]
            base = run_probes(_load_model(args.baseline, data, args.pretrained), baseline_name, base_probes, settings_)
            seconds[baseline_name] = base.attrs.get("seconds", {})
            frames.append(base)
    rows = pd.concat(frames, ignore_index=True)
    total = round(time.time() - start, 1)
    summary = summarize(rows, baseline=baseline_name, n_bins=settings_.ece_bins)

    from ..config import file_provenance
    from ..data.store import write_table
    from ..robustness import ROWS_SCHEMA

    settings_doc = {k: v for k, v in vars(settings_).items() if k not in ("data", "val", "train", "label_groups")}
    from ..pipeline import stable_hash

    # what made these rows: the settings and the command's own arguments (models, folders, label map)
    digest = stable_hash({"config": json.loads(cfg.model_dump_json()), "models": args.model, "baseline": args.baseline,
                          "val": args.val, "label_map": args.label_map, "extra_sets": args.extra_set,
                          "folders": [args.corruption_folder, args.cue_conflict_folder, args.imagenet9_root,
                                      args.ood_folder], "pretrained": args.pretrained})
    write_table(rows, out / "rows.parquet", schema=ROWS_SCHEMA, config_hash=digest)
    doc = {"models": summary, "baseline": baseline_name, "probes": probes, "data": cfg.data.dataset,
           "evaluation_images": len(settings_.evaluation_set()), "seconds": seconds, "total_seconds": total,
           "skipped_unreadable": sorted(set(data.skipped) | set(val.skipped)),
           "settings": settings_doc, "label_map": args.label_map, "hardware": hardware,
           "random_weights": [_model_name(m) for m in hub] if args.random_weights and not args.pretrained else [],
           "provenance": file_provenance("synthclone.bench-summary/1", digest)}
    _write_atomic(out / "summary.json", lambda p: p.write_text(json.dumps(doc, indent=2, default=str)))
    if "calibration" in probes and not args.no_plots:
        from ..robustness.calibration import plot_reliability

        plot_reliability(rows, out / "plots", settings_.ece_bins)
    print(format_table({(f"{k} [random weights]" if k in doc["random_weights"] else k): v for k, v in summary.items()}))
    if doc["random_weights"]:
        warn(f"[bench] note: {', '.join(doc['random_weights'])} ran with random weights (--random-weights); "
            "their numbers say nothing about the pretrained model")
    say(f"[bench] {len(rows):,} rows in {total:.0f} s -> {out / 'rows.parquet'}, {out / 'summary.json'}")
    return 0

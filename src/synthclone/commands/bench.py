"""``synthclone bench``: run the robustness probes on one or more models.

Writes ``<out>/rows.parquet`` (one row per sample per condition; schema in
:mod:`synthclone.robustness`), ``<out>/summary.json`` (headline metrics per model, probe timings,
settings) and ``<out>/plots/`` (reliability diagrams), and prints a table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..device import add_device_argument
from . import positive_int


def add_arguments(parser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="MODEL",
                        help="CKPT_DIR | timm:NAME | torchvision:NAME | open_clip:NAME | small_clip | a registered "
                             "name; repeat to compare models")
    parser.add_argument("--probes", default="all", help="'all' or a comma list (see 'synthclone list probes')")
    parser.add_argument("--data", default="fashion-mnist",
                        help="the dataset whose test split is evaluated: a registered name (default fashion-mnist) or an "
                             "ImageFolder path (its splits as 'synthclone data info' shows)")
    parser.add_argument("--val", default=None,
                        help="validation data for temperature scaling (default: the val split of --data)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="bring images to this size (default: the model's input size for timm/torchvision/open_clip, "
                             "else the data's own)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers decoding images (default: the cores)")
    parser.add_argument("--skip-unreadable", action="store_true", help="leave unreadable image files out instead of failing")
    parser.add_argument("--cache-mb", type=int, default=None,
                        help="hold a split in memory when its decoded pixels take at most this many MiB (default 256; 0: stream)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--baseline", default=None, help="model normalising CE/mCE (run on the corruptions too)")
    parser.add_argument("--limit", type=positive_int, default=None, help="use at most N evaluation images in every probe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=positive_int, default=256)
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
                        help="any robustness.BenchSettings field, VALUE as JSON (e.g. pgd_steps=5, attacks='[\"fgsm\"]')")
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


def _settings(args, data, val):
    from dataclasses import fields

    from ..errors import UserError
    from ..robustness import BenchSettings

    s = BenchSettings(data=data, val=val, batch_size=args.batch_size, seed=args.seed, limit=args.limit,
                      extra_sets=list(args.extra_set), corruption_folder=args.corruption_folder,
                      cue_conflict_folder=args.cue_conflict_folder, imagenet9_root=args.imagenet9_root,
                      ood_folders=list(args.ood_folder), label_groups=_label_groups(args.label_map, data.classes))
    from ..robustness.core import NOT_OPTIONS, check_bench_options

    valid = {f.name for f in fields(BenchSettings)} - set(NOT_OPTIONS)
    for item in args.option:
        key, sep, raw = item.partition("=")
        if not sep or key not in valid:
            raise UserError(f"--option {item!r}: use KEY=VALUE with KEY one of {', '.join(sorted(valid))}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        check_bench_options({key: value}, "--option")
        setattr(s, key, value)
    return s


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
    from ..progress import say
    from ..robustness import resolve_probes, run_probes, summarize

    from ..models import model_data_config

    from ..device import resolve_device

    device = resolve_device(args.device)  # CUDA on a machine without it fails before anything loads
    hub = [m for m in list(args.model) + ([args.baseline] if args.baseline else []) if _is_hub(m)]
    if hub and not (args.pretrained or args.random_weights):
        raise UserError(f"{hub[0]} has no weights without --pretrained; pass --pretrained (downloads, or the local "
                        "cache) or --random-weights (a smoke test with random weights)")
    probes = resolve_probes(args.probes)  # unknown probe names fail before anything loads
    wanted = next((c for c in map(model_data_config, args.model) if c), None) or {}
    size = args.image_size or wanted.get("size")
    crop = wanted.get("crop_pct") if not args.image_size else None
    cache = None if args.cache_mb is None else args.cache_mb * 2 ** 20
    options = {k: v for k, v in {"size": size, "crop_pct": crop, "workers": args.workers, "cache_bytes": cache,
                                 "skip_unreadable": args.skip_unreadable or None}.items() if v is not None}
    data = _load_data(args.data, "test", options)
    val = _load_data(args.val or args.data, "val", options)
    settings = _settings(args, data, val)
    settings.device = device
    if "ood" in probes and settings.mahalanobis:
        settings.train = _load_data(args.data, "train", options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    models = [(spec, _load_model(spec, data, args.pretrained)) for spec in args.model]
    names = [_model_name(s) for s, _ in models]
    if len(set(names)) != len(names):
        raise UserError(f"two --model arguments share the name {names}; give distinct checkpoints")
    frames, seconds = [], {}
    start = time.time()
    for (spec, model), name in zip(models, names):
        rows = run_probes(model, name, probes, settings)
        seconds[name] = rows.attrs.get("seconds", {})
        frames.append(rows)
    hardware = frames[0].attrs.get("device") if frames else None
    baseline_name = None
    if args.baseline:
        baseline_name = _model_name(args.baseline)
        if baseline_name not in names:
            base_probes = [p for p in ("clean", "corruptions") if p in probes] or ["corruptions"]
            base = run_probes(_load_model(args.baseline, data, args.pretrained), baseline_name, base_probes, settings)
            seconds[baseline_name] = base.attrs.get("seconds", {})
            frames.append(base)
    rows = pd.concat(frames, ignore_index=True)
    total = round(time.time() - start, 1)
    summary = summarize(rows, baseline=baseline_name, n_bins=settings.ece_bins)

    from ..config import file_provenance
    from ..data.store import write_table
    from ..robustness import ROWS_SCHEMA

    write_table(rows, out / "rows.parquet", schema=ROWS_SCHEMA)
    settings_doc = {k: v for k, v in vars(settings).items() if k not in ("data", "val", "train", "label_groups")}
    doc = {"models": summary, "baseline": baseline_name, "probes": probes, "data": args.data,
           "evaluation_images": len(settings.evaluation_set()), "seconds": seconds, "total_seconds": total,
           "skipped_unreadable": sorted(set(data.skipped) | set(val.skipped)),
           "settings": settings_doc, "label_map": args.label_map, "hardware": hardware,
           "random_weights": [_model_name(m) for m in hub] if args.random_weights and not args.pretrained else [],
           "provenance": file_provenance("synthclone.bench-summary/1")}
    _write_atomic(out / "summary.json", lambda p: p.write_text(json.dumps(doc, indent=2, default=str)))
    if "calibration" in probes and not args.no_plots:
        from ..robustness.calibration import plot_reliability

        plot_reliability(rows, out / "plots", settings.ece_bins)
    print(format_table({k: v for k, v in summary.items()}))
    if doc["random_weights"]:
        say(f"[bench] note: {', '.join(doc['random_weights'])} ran with random weights (--random-weights); "
            "their numbers say nothing about the pretrained model")
    say(f"[bench] {len(rows):,} rows in {total:.0f} s -> {out / 'rows.parquet'}, {out / 'summary.json'}")
    return 0

"""``synthclone compare STORE [STORE ...]``: generator metrics of synthetic stores against the real test
split, without training (issue 18): precision, recall, density, coverage, Fréchet distance and
diversity on features of one extractor, per store and class, and the classification accuracy score
(CAS) when ``--cas-model`` names a classifier trained on real data.

    synthclone compare runs/q/generate-template-*/store runs/q/generate-language-enhancement-*/store \\
        --data fashion-mnist --features small_clip --per-class 200 --out runs/compare

Writes ``OUT/compare.json`` ({store: {"overall": metrics, "per_class": {class: metrics}, "seconds":
{metric: s}}}) and prints one row per store. Definitions and sources: :mod:`synthclone.generators.metrics`.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import add_config_arguments, load_settings, positive_int


def add_arguments(parser) -> None:
    parser.add_argument("stores", nargs="+", metavar="STORE", help="synthetic stores (synthclone generate / a study's "
                                                                   "generate-*/store folders) or ImageFolder dirs")
    parser.add_argument("--out", required=True, help="folder for compare.json")
    add_config_arguments(parser, "data")
    parser.add_argument("--data", help="the real dataset whose test split is the reference (default: data.dataset of "
                                       "--config, else fashion-mnist)")
    parser.add_argument("--features", default="small_clip",
                        help="feature extractor: small_clip, open_clip:NAME, timm:NAME or a checkpoint folder; its "
                             "features() embed every image (default: %(default)s)")
    parser.add_argument("--pretrained", default=None,
                        help="weights of the extractor: an open_clip tag or file, or 'true' for timm/torchvision "
                             "(default: none; open_clip models need one)")
    parser.add_argument("--k", type=positive_int, default=5, help="nearest neighbours of precision/recall/density/"
                                                                 "coverage (Naeem et al.: 5; default: %(default)s)")
    parser.add_argument("--per-class", type=positive_int, default=200,
                        help="images per class from each store and from the real test split (default: %(default)s)")
    parser.add_argument("--cas-model", default=None, help="a classifier trained on real data (checkpoint folder): "
                                                         "its accuracy on the generated images is the CAS (default: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-class subsets (default: %(default)s)")
    from ..device import add_device_argument

    add_device_argument(parser)


def run(args) -> int:
    import torch

    from ..data import data_options, load_dataset
    from ..data.store import load_store
    from ..device import resolve_device
    from ..errors import UserError
    from ..models import load_any_model
    from ..generators.metrics import METRICS, compare_stores
    from ..paths import atomic_write_text, check_out_dir
    from ..progress import say

    cfg = load_settings(args, flags={"data.dataset": args.data, "device": args.device})
    check_out_dir(args.out)
    device = resolve_device(cfg.device)
    real = load_dataset(cfg.data.dataset, split="test", **data_options(cfg.data))
    classes = list(real.classes)
    pretrained = {"true": True, None: False}.get(args.pretrained, args.pretrained)
    extractor = load_any_model(args.features, classes=classes, pretrained=pretrained,
                               in_chans=real.shape[0], input_size=real.shape[1:]).eval().to(device)
    cas = load_any_model(args.cas_model).eval().to(device) if args.cas_model else None
    if cas is not None and list(getattr(cas, "classes", None) or []) not in ([], classes):
        raise UserError(f"--cas-model {args.cas_model} has classes {list(cas.classes)[:3]}..., not the data's; "
                        "give a classifier trained on the real data")
    stores = {}
    for spec in args.stores:
        path = Path(spec)
        if not path.is_dir():
            raise UserError(f"store {spec} does not exist; give a folder written by synthclone generate")
        store = load_store(path, size=real.shape[1], channels=real.shape[0]) if (path / "store.json").is_file() \
            else load_dataset(str(path), split="train", size=real.shape[1])
        if list(store.classes) != classes:
            raise UserError(f"store {spec} has classes {list(store.classes)[:3]}..., not {cfg.data.dataset}'s; "
                            "compare stores made for this dataset")
        stores[str(path)] = store
    say(f"[compare] {args.per_class} real test images per class of {cfg.data.dataset}, features from {args.features}")
    report = compare_stores(real, stores, extractor, k=args.k, per_class=args.per_class, seed=args.seed, device=device,
                            cas=cas, progress_desc="compare")
    from ..config import file_provenance

    doc = {"data": cfg.data.dataset, "features": args.features, "k": args.k, "per_class": args.per_class,
           "stores": report, "provenance": file_provenance("synthclone.compare/1")}
    out = Path(args.out) / "compare.json"
    atomic_write_text(out, json.dumps(doc, indent=2))
    cols = METRICS + (["cas"] if cas is not None else [])
    width = max(len("store"), *(len(Path(s).parent.name or s) for s in report))
    print("  ".join([f"{'store':<{width}}"] + [f"{c:>9}" for c in cols]))
    for spec, r in report.items():
        name = Path(spec).parent.name if Path(spec).name == "store" else Path(spec).name
        print("  ".join([f"{name:<{width}}"] + [f"{r['overall'][c]:>9.4f}" for c in cols]))
    say(f"[compare] class-averaged metrics of {len(report)} stores -> {out}")
    return 0

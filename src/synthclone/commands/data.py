"""``synthclone data info NAME``: image count, shape, class names and split sizes of a dataset."""

from __future__ import annotations

import json

from ..errors import UserError


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    info = sub.add_parser("info", help="describe a dataset (name or ImageFolder path)")
    info.add_argument("dataset", help="fashion-mnist, digits, or a path to an ImageFolder directory")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")


def describe(spec: str) -> dict:
    from ..data import load_dataset

    if spec == "fashion-mnist":
        from ..data import fashion_mnist

        splits = {name: len(fashion_mnist.load(name)) for name in fashion_mnist.SPLIT_SIZES}
        sample = fashion_mnist.load("test")
        return {
            "dataset": spec,
            "images": sum(splits.values()),
            "shape": list(sample.shape),
            "classes": sample.classes,
            "splits": splits,
            "source": str(fashion_mnist.find_files()),
        }
    data = load_dataset(spec, split="test")
    counts = {c: int((data.labels == i).sum()) for i, c in enumerate(data.classes)}
    return {"dataset": spec, "images": len(data), "shape": list(data.shape), "classes": data.classes, "per_class": counts}


def run(args) -> int:
    if args.action != "info":
        raise UserError("say what to do: synthclone data info DATASET")
    info = describe(args.dataset)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dataset: {info['dataset']}")
    print(f"images:  {info['images']:,}")
    print(f"shape:   {' x '.join(map(str, info['shape']))} (C x H x W)")
    print(f"classes ({len(info['classes'])}): {', '.join(info['classes'])}")
    if "splits" in info:
        print("splits:  " + ", ".join(f"{k} {v:,}" for k, v in info["splits"].items()))
        print(f"source:  {info['source']}")
    else:
        print("per class: " + ", ".join(f"{k} {v}" for k, v in info["per_class"].items()))
    return 0

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
    """Image count, shape, classes and, per split, its size and how it was made."""
    from ..data import dataset_entry

    entry = dataset_entry(spec)
    splits, how, shape, classes, per_class = {}, {}, None, None, None
    for split in entry.splits:
        data = entry.load(split)
        splits[split] = len(data)
        how[split] = data.meta.get("split_how", "as registered")
        if split == "test" or shape is None:
            shape, classes = list(data.shape), list(data.classes)
            per_class = {c: int((data.labels == i).sum()) for i, c in enumerate(data.classes)}
    info = {"dataset": spec, "images": sum(splits.values()), "shape": shape, "classes": classes, "splits": splits,
            "how": how, "test_per_class": per_class}
    if entry.corpus_split:
        info["corpus_split"] = entry.corpus_split
    if entry.source is not None:
        info["source"] = str(entry.source())
    return info


def run(args) -> int:
    if args.action != "info":
        raise UserError("say what to do: synthclone data info DATASET")
    info = describe(args.dataset)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dataset: {info['dataset']}")
    print(f"images:  {info['images']:,}")
    print(f"shape:   {' x '.join(map(str, info['shape']))} (C x H x W; every image is brought to it)")
    print(f"classes ({len(info['classes'])}): {', '.join(info['classes'])}")
    width = max(len(k) for k in info["splits"])
    print("splits:")
    for split, n in info["splits"].items():
        note = " (the generator corpus: what the embedded models learnt from)" if split == info.get("corpus_split") else ""
        print(f"  {split:<{width}}  {n:>8,}  {info['how'][split]}{note}")
    if "source" in info:
        print(f"source:  {info['source']}")
    return 0

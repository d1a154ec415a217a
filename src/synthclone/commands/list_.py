"""``synthclone list [KIND]``: what is registered."""

from __future__ import annotations

import importlib

from ..errors import UserError

# kind -> (package, registry attribute)
KINDS = {
    "datasets": ("synthclone.data", "DATASETS"),
    "generators": ("synthclone.generators", "GENERATORS"),
    "prompts": ("synthclone.prompts", "PROMPTS"),
    "filters": ("synthclone.filters", "FILTERS"),
    "models": ("synthclone.models", "MODELS"),
    "regimes": ("synthclone.training", "REGIMES"),
    "probes": ("synthclone.robustness", "PROBES"),
    "corruptions": ("synthclone.robustness.corruption_ops", "CORRUPTIONS"),
}


def registry(kind: str):
    package, attr = KINDS[kind]
    return getattr(importlib.import_module(package), attr)


def add_arguments(parser) -> None:
    parser.add_argument("kind", nargs="?", help=f"one of: {', '.join(KINDS)} (default: all)")


def run(args) -> int:
    kinds = [args.kind] if args.kind else list(KINDS)
    for kind in kinds:
        if kind not in KINDS:
            raise UserError(f"unknown kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        reg = registry(kind)
        print(f"{kind}:")
        if not len(reg):
            print("  (none yet)")
        for name in reg.names():
            desc = reg.describe(name)
            print(f"  {name:<24} {desc}" if desc else f"  {name}")
        if kind == "generators":
            from ..generators.embedded import shipped_snapshots

            names = shipped_snapshots()
            print(f"  {'':<24} snapshots (generate.model: shipped:<name>; GENERATOR_CARD.md): {', '.join(names) or 'none'}")
    return 0

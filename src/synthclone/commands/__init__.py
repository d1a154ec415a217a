"""One module per ``synthclone`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1" if least == 1 else f"{value} must be 0 or more")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (a count of epochs, images, steps, a batch size)."""
    return _whole(text, 1)


def count(text: str) -> int:
    """An argparse type: an integer >= 0 (DataLoader workers, a cache size in MiB)."""
    return _whole(text, 0)


def add_config_arguments(parser, section: str, whole: bool = False) -> None:
    """``--config FILE`` and ``--set KEY=VALUE``: the same two for every subcommand that has settings."""
    what = "the study to run" if whole else f"its {section}: and data: sections give the defaults of the flags"
    parser.add_argument("--config", metavar="FILE|PRESET",
                        help=f"a study config (YAML file or a preset name such as quickstart): {what} "
                             "(default: none, the built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, VALUE read as YAML, e.g. --set {section}.seed=1 (repeatable; "
                             "the flags win over --set, which wins over --config)")


def load_settings(args, extra_overrides=(), flags=None, tree=None):
    """The validated :class:`~synthclone.config.RunConfig` of a command: ``--config`` (or ``tree``)
    <- ``--set`` <- ``extra_overrides`` (a shorthand flag's) <- ``flags`` ({config key: value or None})."""
    from ..config import merge, read_yaml

    if tree is None:
        tree = read_yaml(args.config) if getattr(args, "config", None) else {}
    return merge(tree, list(getattr(args, "overrides", [])) + list(extra_overrides), flags)

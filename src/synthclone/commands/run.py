"""``synthclone run [CONFIG] [--set key=value ...]``: the whole study from one config."""

from __future__ import annotations

from pathlib import Path

from ..config import load_config, write_resolved
from ..device import add_device_argument
from ..progress import say


def add_arguments(parser) -> None:
    parser.add_argument("config", nargs="?", help="YAML config (default: configs/quickstart.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    parser.add_argument("--out", help="run directory (default: <out_dir>/<name>)")
    parser.add_argument("--dry-run", action="store_true", help="validate the config, print the plan, run nothing")
    add_device_argument(parser)


def run(args) -> int:
    from ..pipeline import run_study

    config = args.config
    if config is None and Path("configs/quickstart.yaml").is_file():
        config = "configs/quickstart.yaml"
    overrides = list(args.overrides) + ([f"device={args.device}"] if args.device else [])
    cfg = load_config(config or "quickstart", overrides)
    run_dir = Path(args.out) if args.out else Path(cfg.out_dir) / cfg.name
    if args.dry_run:
        from ..pipeline import plan

        for line in plan(cfg):
            print(line)
        return 0
    from ..study import check

    check(cfg)  # names, and components asked to work outside what they were trained for: before anything is written
    write_resolved(cfg, run_dir)
    say(f"synthclone run: {cfg.name} -> {run_dir}")
    return run_study(cfg, run_dir)

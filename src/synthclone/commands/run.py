"""``synthclone run [CONFIG] [--set key=value ...]``: the whole study from one config."""

from __future__ import annotations

from pathlib import Path

from ..config import write_resolved
from ..device import add_device_argument
from ..errors import UserError
from ..progress import say
from . import add_config_arguments, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("config_file", nargs="?", metavar="CONFIG",
                        help="YAML config or preset name (default: configs/quickstart.yaml here, else the quickstart preset)")
    add_config_arguments(parser, "train", whole=True)
    parser.add_argument("--out", help="run directory (default: <out_dir>/<name>)")
    parser.add_argument("--dry-run", action="store_true", help="validate the config, print the plan, run nothing")
    add_device_argument(parser)


def run(args) -> int:
    from ..study import run_study

    if args.config_file and args.config:
        raise UserError(f"two configs given ({args.config_file} and --config {args.config}); give one")
    args.config = args.config or args.config_file
    if args.config is None:
        args.config = "configs/quickstart.yaml" if Path("configs/quickstart.yaml").is_file() else "quickstart"
    cfg = load_settings(args, flags={"device": args.device})
    run_dir = Path(args.out) if args.out else Path(cfg.out_dir) / cfg.name
    if args.dry_run:
        from ..study import plan

        for line in plan(cfg):
            print(line)
        return 0
    from ..study import check

    from ..paths import check_out_dir

    check_out_dir(run_dir, "--out (or out_dir / name)")
    check(cfg)  # names, and components asked to work outside what they were trained for: before anything is written
    write_resolved(cfg, run_dir)
    say(f"synthclone run: {cfg.name} -> {run_dir}")
    return run_study(cfg, run_dir)

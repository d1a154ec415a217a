"""``synthclone report RUN_DIR``: (re)build the HTML/Markdown report of a run from its rows."""

from __future__ import annotations

from pathlib import Path

from ..device import add_device_argument
from ..errors import UserError


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="a run directory written by 'synthclone run'")
    parser.add_argument("--out", help="where to write index.html and report.md (default: RUN_DIR/report)")
    add_device_argument(parser)


def run(args) -> int:
    import yaml

    from ..config import validate
    from ..report.build import build_report
    from ..study import finished_outputs, plan_models

    run_dir = Path(args.run_dir)
    cfg_file = run_dir / "config.yaml"
    if not cfg_file.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml); pass the folder 'synthclone run' wrote")
    tree = yaml.safe_load(cfg_file.read_text()) or {}
    tree.pop("_provenance", None)
    if args.device:
        tree["device"] = args.device
    cfg = validate(tree)
    from ..device import resolve_device

    resolve_device(cfg.device)  # the sample grids run the generator there
    outputs = finished_outputs(cfg, run_dir)
    benched = [k for k in outputs if k.startswith("bench-")]
    if not benched:
        raise UserError(f"{run_dir} has no finished bench stages yet; run 'synthclone run' on its config first")
    html, md = build_report(cfg, run_dir, outputs, plan_models(cfg), Path(args.out) if args.out else run_dir / "report")
    print(f"report: {html}")
    print(f"        {md}")
    return 0

"""``synthclone report RUN_DIR``: (re)build the HTML/Markdown report of a run from its rows."""

from __future__ import annotations

from pathlib import Path

from ..device import add_device_argument
from ..errors import UserError


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="a run directory written by 'synthclone run'")
    parser.add_argument("--out", help="where to write index.html and report.md (default: RUN_DIR/report)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a report setting of the run's config, e.g. --set report.confidence=0.9 or "
                             "--set report.formats=[md] (repeatable; only report.* keys: the rest names the run's stages)")
    parser.add_argument("--publish", metavar="DEST",
                        help="publish the finished run into DEST (e.g. docs/results/NAME): the Markdown report and "
                             "figures, findings, summary, config, stage timings and the rows the findings are "
                             "computed from, at most 20 MB; DEST is replaced whole")
    parser.add_argument("--time-log", dest="time_logs", action="append", default=[], metavar="FILE",
                        help="with --publish: the output of '/usr/bin/time -v synthclone run ...' (repeatable, one "
                             "per process that ran the study), for the run's total wall time and peak memory")
    parser.add_argument("--readme", dest="readmes", action="append", default=[], metavar="FILE",
                        help="with --publish: another Markdown file (e.g. the project README) whose claims table, "
                             "between the markers DEST/README.md uses, is rewritten (repeatable)")
    add_device_argument(parser)


def run(args) -> int:
    import yaml

    from . import load_settings
    from ..report.build import build_report
    from ..study import finished_outputs, plan_models

    outside = [o for o in args.overrides if not o.startswith("report.")]
    if outside:
        raise UserError(f"--set {outside[0]}: the report can change only report.* settings; the others name the "
                        "run's stages (rerun 'synthclone run' with them instead)")
    run_dir = Path(args.run_dir)
    cfg_file = run_dir / "config.yaml"
    if not cfg_file.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml); pass the folder 'synthclone run' wrote")
    tree = yaml.safe_load(cfg_file.read_text()) or {}
    cfg = load_settings(args, flags={"device": args.device}, tree=tree)
    from ..device import resolve_device

    resolve_device(cfg.device)  # the sample grids run the generator there
    if args.publish:
        from ..report.publish import publish

        cfg = cfg.model_copy(update={"report": cfg.report.model_copy(update={"formats": ["md"]})})
        for i, path in enumerate(publish(cfg, run_dir, Path(args.publish), args.time_logs, args.readmes)):
            print(f"{'published:' if i == 0 else '          '} {path}")
        return 0
    elif args.time_logs or args.readmes:
        raise UserError(f"{'--time-log' if args.time_logs else '--readme'} goes with --publish DEST (it belongs to a "
                        "published folder)")
    outputs = finished_outputs(cfg, run_dir)
    benched = [k for k in outputs if k.startswith("bench-")]
    if not benched:
        raise UserError(f"{run_dir} has no finished bench stages yet; run 'synthclone run' on its config first")
    written = build_report(cfg, run_dir, outputs, plan_models(cfg), Path(args.out) if args.out else run_dir / "report")
    for i, path in enumerate(written):
        print(f"{'report:' if i == 0 else '       '} {path}")
    return 0

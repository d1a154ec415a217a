"""The ``synthclone`` command line. ``main(argv)`` returns the exit code, so tests call it directly.

Each subcommand lives in ``synthclone/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so ``--help`` and
``list`` stay fast. Errors a user can fix (:class:`~synthclone.errors.UserError`) print one line and
exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from typing import List, Optional

from .errors import UserError

# name -> (module under synthclone.commands, one-line help)
COMMANDS = {
    "run": ("run", "run the whole study (generate -> train -> bench -> report) from a config"),
    "generate": ("generate", "make a synthetic dataset store with a text-to-image model"),
    "train": ("train", "train a recognizer on real, synthetic or mixed data"),
    "bench": ("bench", "run the robustness benchmark on a model"),
    "report": ("report", "build the HTML/Markdown report of a run directory"),
    "compare": ("compare", "generator metrics of synthetic stores (precision, recall, density, coverage, FD, CAS)"),
    "data": ("data", "inspect datasets (data info fashion-mnist)"),
    "list": ("list_", "list what is registered: datasets, generators, prompts, filters, models, regimes, probes, corruptions"),
    "pretrain": ("pretrain", "train the embedded text-to-image model or the small CLIP"),
}


DESCRIPTION = textwrap.fill("Is synthetic data from text-to-image models ready to train an image recognizer, and how robust is "
               "what it trains? synthclone runs the whole loop: prompts, generation, filtering, training on real / "
               "synthetic / mixed data, a robustness benchmark and a report that checks the research findings.", 78)
EPILOG = """start here:
  synthclone run quickstart            the embedded study (Fashion-MNIST, offline, about 5 minutes on 2 cores)
  synthclone run quickstart --dry-run  validate a config and print its stages
  synthclone report runs/quickstart    rebuild the report of a run
  synthclone COMMAND --help            the flags of one command (each shows its default)
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line with exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _load(module: str):
    return importlib.import_module(f"synthclone.commands.{module}")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="synthclone", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"synthclone {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines (warnings and errors still)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also debug lines: stage folders and hashes, what is loaded from where")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        _load(module).add_arguments(p)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``synthclone``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    from .allocator import retain_freed_memory
    from .progress import set_quiet, set_verbose

    retain_freed_memory()  # batched image work reuses freed tensors' pages (synthclone.allocator)
    if args.quiet:
        set_quiet(True)
    set_verbose(args.verbose)
    try:
        return int(_load(args._module).run(args) or 0)
    except UserError as exc:
        print(f"synthclone: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("synthclone: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``synthclone report``: not available yet (issue #7)."""

from ..errors import NotLandedError


def add_arguments(parser) -> None:
    parser.add_argument("rest", nargs="*", help="arguments (this subcommand has not landed yet)")


def run(args) -> int:
    raise NotLandedError("'synthclone report' has not landed yet (issue #7); see README for what runs today")

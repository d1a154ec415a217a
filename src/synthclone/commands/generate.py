"""``synthclone generate``: not available yet (issue #4)."""

from ..errors import NotLandedError


def add_arguments(parser) -> None:
    parser.add_argument("rest", nargs="*", help="arguments (this subcommand has not landed yet)")


def run(args) -> int:
    raise NotLandedError("'synthclone generate' has not landed yet (issue #4); see README for what runs today")

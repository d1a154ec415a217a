"""``synthclone train``: not available yet (issue #5)."""

from ..errors import NotLandedError


def add_arguments(parser) -> None:
    parser.add_argument("rest", nargs="*", help="arguments (this subcommand has not landed yet)")


def run(args) -> int:
    raise NotLandedError("'synthclone train' has not landed yet (issue #5); see README for what runs today")

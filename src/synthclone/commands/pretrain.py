"""``synthclone pretrain``: not available yet (issue #3)."""

from ..errors import NotLandedError


def add_arguments(parser) -> None:
    parser.add_argument("rest", nargs="*", help="arguments (this subcommand has not landed yet)")


def run(args) -> int:
    raise NotLandedError("'synthclone pretrain' has not landed yet (issue #3); see README for what runs today")

"""One module per ``synthclone`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""

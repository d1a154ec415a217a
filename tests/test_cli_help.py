"""Issue 17 item 10: user-facing help. Every flag of every subcommand says what it does, and a flag
with a default value says the default."""

import argparse

from synthclone.cli import build_parser


def _parsers(parser, prefix="synthclone"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_every_flag_has_help_and_names_its_default():
    missing, no_default = [], []
    for where, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            flag = f"{where} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                missing.append(flag)
                continue
            shown = action.default not in (None, False, [], argparse.SUPPRESS)
            if shown and "default" not in action.help and "%(default)" not in action.help:
                no_default.append(f"{flag} (default {action.default!r})")
    assert not missing, f"flags without help: {missing}"
    assert not no_default, f"flags whose help hides the default: {no_default}"


def test_top_level_help_is_for_users(capsys):
    from synthclone.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "make demo" not in out and "tests call" not in out  # not the module's developer docstring
    assert "synthclone run quickstart" in out  # how to start

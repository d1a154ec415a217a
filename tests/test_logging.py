"""Issue 17 item 10: status lines go through the ``synthclone`` logger: ``-q`` keeps warnings only,
``-v`` adds debug lines, and :func:`run_log` keeps every line with its time in a file."""

import pytest

from synthclone import progress


@pytest.fixture(autouse=True)
def _restore():
    yield
    progress.set_quiet(None)
    progress.set_verbose(False)


def _lines(capsys):
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("quiet, verbose, shown", [
    (False, False, ["status", "careful"]),
    (True, False, ["careful"]),
    (False, True, ["status", "careful", "detail"]),
])
def test_console_levels(quiet, verbose, shown, capsys):
    progress.set_quiet(quiet)
    progress.set_verbose(verbose)
    progress.say("status")
    progress.warn("careful")
    progress.debug("detail")
    assert _lines(capsys) == shown


def test_run_log_keeps_every_line_with_its_time(tmp_path, capsys):
    progress.set_quiet(True)
    log = tmp_path / "run" / "run.log"
    with progress.run_log(log):
        progress.say("status")
        progress.debug("detail")
    progress.say("after the block")
    with pytest.raises(ValueError), progress.run_log(log):
        raise ValueError("boom")
    lines = log.read_text().splitlines()
    assert [line.split(None, 3)[2:] for line in lines] == [["INFO", "status"], ["DEBUG", "detail"],
                                                        ["DEBUG", "stopped by ValueError: boom"]]
    assert all(line[:4].isdigit() for line in lines)
    assert _lines(capsys) == []  # quiet: nothing on stderr

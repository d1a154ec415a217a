"""The one atomic-write helper every writer uses (issue 17 item 11)."""

import pytest

from synthclone.paths import atomic_write, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "summary.json"
    atomic_write_text(path, "old")
    assert path.read_text() == "old"

    def half(p):
        p.write_text("half of the new")
        raise KeyboardInterrupt  # a kill in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert path.read_text() == "old"
    assert sorted(x.name for x in path.parent.iterdir()) == ["summary.json"]


def test_the_temp_file_keeps_the_suffix_and_mode_is_set(tmp_path):
    seen = []
    out = atomic_write(tmp_path / "plot.png", lambda p: (seen.append(p.suffix), p.write_bytes(b"x")), mode=0o644)
    assert seen == [".png"] and out.read_bytes() == b"x" and (out.stat().st_mode & 0o777) == 0o644

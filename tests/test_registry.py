import pytest

from synthclone.errors import UserError
from synthclone.registry import Registry


def test_register_create_names():
    reg = Registry("widget")

    @reg.register("b")
    def make_b(x=1):
        """Makes a b."""
        return ("b", x)

    @reg.register()
    def a():
        return "a"

    assert reg.names() == ["a", "b"]
    assert reg.create("b", x=3) == ("b", 3)
    assert reg.get("a") is a
    assert reg.describe("b") == "Makes a b."
    assert "a" in reg and "zzz" not in reg and len(reg) == 2


def test_unknown_name_lists_valid_ones():
    reg = Registry("probe")
    reg.register("clean")(lambda: None)
    reg.register("ood")(lambda: None)
    with pytest.raises(UserError) as info:
        reg.create("cleen")
    msg = str(info.value)
    assert "unknown probe 'cleen'" in msg and "clean, ood" in msg


def test_double_registration_of_other_callable_fails():
    reg = Registry("thing")
    reg.register("x")(lambda: 1)
    with pytest.raises(ValueError):
        reg.register("x")(lambda: 2)

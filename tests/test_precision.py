import pytest

from synthclone.errors import UserError
from synthclone.precision import cpu_has_bf16, resolve_precision


def test_auto_is_bf16_only_where_the_cpu_has_bf16_units():
    flags = set()
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    native = bool({"amx_bf16", "avx512_bf16"} & flags)
    assert cpu_has_bf16() is native
    assert resolve_precision("auto") == ("bf16" if native else "fp32")
    assert resolve_precision("bf16") == "bf16" and resolve_precision("fp32") == "fp32"
    with pytest.raises(UserError, match="precision 'fp8'"):
        resolve_precision("fp8")


def test_engine_and_generator_record_the_resolved_precision():
    from synthclone.generators import create_generator

    gen = create_generator("embedded", weights=None, tiny=True)
    assert gen.precision == resolve_precision("auto") and gen.config["precision"] == gen.precision

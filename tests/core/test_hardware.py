"""The CPU facts behind --precision=auto and the machine line of every result, on made-up cpuinfo."""

import pytest

from hiabp_tf.core import hardware
from hiabp_tf.core import models

ZEN3_FLAGS = frozenset("fpu sse2 avx avx2 fma f16c vaes".split())  # an AMD EPYC (Zen 3): no bfloat16
SAPPHIRE_RAPIDS_FLAGS = ZEN3_FLAGS | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
CPUINFO = ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 avx512_bf16\n\n"
           "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 avx512_bf16\nbugs\t\t: sysret_ss_attrs\n")


@pytest.mark.parametrize("flags_, expected", [
    (ZEN3_FLAGS, "float32"), (SAPPHIRE_RAPIDS_FLAGS, "bfloat16"), (frozenset({"avx512f", "amx_bf16"}), "bfloat16"),
    (frozenset(), "float32")])
def test_auto_precision_is_bfloat16_only_on_cpus_that_have_it(flags_, expected):
    assert models.resolve_precision("auto", flags_) == expected
    for explicit in models.PRECISIONS:  # an explicit choice is never changed
        assert models.resolve_precision(explicit, flags_) == explicit


def test_cpu_flags_and_model_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    assert hardware.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
    assert hardware.native_bfloat16(hardware.cpu_flags(str(cpuinfo)))
    assert hardware.cpu_model(str(cpuinfo)) == "AMD EPYC 7B13"


def test_without_cpuinfo_auto_means_float32(tmp_path):
    missing = str(tmp_path / "missing")
    assert hardware.cpu_flags(missing) == frozenset() and not hardware.native_bfloat16(frozenset())
    assert hardware.cpu_model(missing)  # the platform's name for it, never empty


def test_the_machine_line_names_cores_model_and_bfloat16(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: ZEN3_FLAGS)
    monkeypatch.setattr(hardware, "cpu_model", lambda: "AMD EPYC")
    monkeypatch.setattr(hardware, "cpu_cores", lambda: 2)
    assert hardware.describe() == "2 CPU cores (AMD EPYC, without bfloat16 instructions)"

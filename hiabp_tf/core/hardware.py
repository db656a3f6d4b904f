"""What the CPU is and can do, read from /proc/cpuinfo (Linux; elsewhere the answers are cautious):
which arithmetic `--precision=auto` picks, and the machine line every result carries, since wall times
and the bfloat16 lever differ from one 2-core machine to the next."""

from __future__ import annotations

import os
import platform

CPUINFO = "/proc/cpuinfo"
# bfloat16 arithmetic in hardware. Without it Keras' mixed_bfloat16 is emulated: 7.2x slower than
# float32 on a 2-core AMD EPYC (Zen 3), where a CPU with AVX512_BF16 ran it 1.3-1.6x faster.
NATIVE_BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpuinfo_lines(cpuinfo: str = CPUINFO) -> list[str]:
    try:
        with open(cpuinfo) as f:
            return f.read().splitlines()
    except OSError:
        return []


def cpu_flags(cpuinfo: str = CPUINFO) -> frozenset:
    """The instruction-set flags the CPU reports; empty where /proc/cpuinfo cannot be read."""
    return frozenset(flag for line in _cpuinfo_lines(cpuinfo) if line.startswith("flags") and ":" in line
                     for flag in line.split(":", 1)[1].split())


def native_bfloat16(flags=None) -> bool:
    """Whether the CPU has bfloat16 arithmetic in hardware (AVX512_BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in NATIVE_BFLOAT16_CPU_FLAGS)


def cpu_model(cpuinfo: str = CPUINFO) -> str:
    """The CPU's model name, e.g. "AMD EPYC"; the platform's processor or machine where it is not known."""
    name = next((line.split(":", 1)[1].strip() for line in _cpuinfo_lines(cpuinfo)
                 if line.startswith("model name") and ":" in line), "")
    return name or platform.processor() or platform.machine()


def cpu_cores() -> int:
    """The cores this process may run on (its affinity), else the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def describe() -> str:
    """The machine line of a result: cores, CPU model and whether it has bfloat16 in hardware."""
    return (f"{cpu_cores()} CPU cores ({cpu_model()}, "
            f"{'with' if native_bfloat16() else 'without'} bfloat16 instructions)")

"""``allocator.tune_allocator``: glibc's malloc keeps freed CPU tensors in the heap (what it changes is measured in
``benchmarks/bench_experiment.py --no-tune-allocator``; here only that it takes effect once and is safe to repeat)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

SCRIPT = """
import os, segattack.allocator as m
assert m.tune_allocator() is True and m.tune_allocator() is True
print("ok")
"""


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_tune_allocator_takes_effect_once() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"

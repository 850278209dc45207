"""The allocator thresholds are set where glibc is, and setting them is harmless twice."""

from __future__ import annotations

import platform
import sys

from stemprint.render.allocator import tune_allocator


def test_tune_allocator_on_glibc_only():
    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert tune_allocator() is expected
    assert tune_allocator() is expected  # idempotent

"""Fixtures for the analysis tests: synthesized stem packages written into tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from analysis_synth import synth_stems, write_package


@pytest.fixture
def stems() -> dict[str, np.ndarray]:
    """The four synthesized stems (4 s stereo, 48 kHz)."""
    return synth_stems()


@pytest.fixture
def make_package(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_package(stems, mix=None, **write_package_kwargs)`` → package dir."""
    counter = iter(range(1000))

    def make(stems: dict[str, np.ndarray], mix: np.ndarray | None = None, **kw: object) -> Path:
        if mix is None:
            mix = np.sum(list(stems.values()), axis=0)
        root = tmp_path / f"pkg{next(counter)}"
        return write_package(root, stems, mix, **kw)

    return make

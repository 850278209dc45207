"""The report's reader: float64 blocks to analyse, exact integers for lossless embedding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemprint.report.analysis import _Reader
from stemprint.report.inputs import ReportFile

_CASES = [
    ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "PCM_U8"),
    ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24"), ("FLAC", "PCM_S8"),
    ("AIFF", "PCM_24"),
]  # fmt: skip


@pytest.mark.parametrize(("container", "subtype"), _CASES)
def test_blocks_and_sink_frames_equal_what_libsndfile_decodes(
    tmp_path: Path, container: str, subtype: str
) -> None:
    rng = np.random.default_rng(7)
    x = np.clip(rng.standard_normal((4099, 2)) * 0.4, -1.0, 1.0)
    x[0], x[1] = 1.0, -1.0  # both rails: +1.0 clips to the top code, -1.0 is exact
    path = tmp_path / f"f.{container.lower()}"
    sf.write(path, x, 48000, subtype=subtype, format=container)
    facts = {"format": container, "subtype": subtype}
    reader = _Reader(ReportFile(0, path.name, path, facts, None, "#888888"))
    try:
        block = reader.read(5000)
        frames = reader.sink_frames(block)
    finally:
        reader.close()
    assert block.shape == (2, 4099)
    np.testing.assert_array_equal(block, sf.read(path, dtype="float64", always_2d=True)[0].T)
    want = sf.read(path, dtype="int32" if reader.is_int else "float64", always_2d=True)[0]
    assert frames.dtype == want.dtype
    np.testing.assert_array_equal(frames, want)

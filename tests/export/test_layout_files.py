"""Multichannel files say their layout: WAVE_FORMAT_EXTENSIBLE with the channel mask, read back
by soundfile and by an independent reader (ffprobe, skipped when absent)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.riff import riff_layout
from tests.conftest import write_session, write_wav

runner = CliRunner()


def _render(tmp_path, layout, bit_depth="24"):
    write_wav(tmp_path / "a.wav", 0.1 * np.random.default_rng(3).uniform(-1, 1, (1, 4800)))
    session = {
        "master": {"layout": layout},
        "tail_seconds": 0.0,
        "tracks": [{"name": "A", "clips": [{"file": "a.wav"}], "surround": {"azimuth_deg": 100}}],
    }
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["render", str(write_session(tmp_path, session)), "-o", str(out), "--bit-depth", bit_depth],
    )
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "manifest.json").read_text())


def _mask(path):
    fmt = riff_layout(path).find(b"fmt ")
    data = path.read_bytes()[fmt.data_offset : fmt.data_offset + fmt.size]
    return int.from_bytes(data[:2], "little"), int.from_bytes(data[20:24], "little")


@pytest.mark.parametrize(
    ("layout", "mask", "ffprobe_name"),
    [
        ("5.1", 0x3F, "5.1"),
        ("7.1", 0x63F, "7.1"),
    ],
)
def test_channel_mask_and_ffprobe(tmp_path, layout, mask, ffprobe_name):
    out, manifest = _render(tmp_path, layout)
    for entry in manifest["files"]:
        assert _mask(out / entry["path"]) == (0xFFFE, mask), entry["path"]
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed (apt-get install ffmpeg): independent check skipped")
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=channels,channel_layout",
            "-of",
            "json",
            str(out / "mix.wav"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["channel_layout"] == ffprobe_name
    assert stream["channels"] == {"5.1": 6, "7.1": 8}[layout]


def test_stereo_files_stay_plain_wav(tmp_path):
    out, manifest = _render(tmp_path, "stereo")
    fmt_tag, _mask_bytes = _mask(out / "mix.wav")
    assert fmt_tag == 0x0001

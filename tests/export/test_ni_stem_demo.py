"""The demo song as a Native Instruments Stems file: its four stems (returns split) decoded by
the ffmpeg CLI equal the WAV stems and sum to the premaster to -120 dBFS."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.demo import write_demo_session

runner = CliRunner()
STEMS = ["Drums", "Bass", "Music", "Vocals"]


def _decode(path, stream):
    out = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            f"0:a:{stream}",
            "-f",
            "f64le",
            "-acodec",
            "pcm_f64le",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, dtype="<f8").reshape(-1, 2)


def test_demo_stem_mp4(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (CI installs it with apt-get): decode check skipped")
    session = write_demo_session(tmp_path / "demo")
    session.write_text(
        session.read_text()
        + (f"\ndelivery:\n  returns: split\n  ni_stem: {{stems: [{', '.join(STEMS)}]}}\n")
    )
    out = tmp_path / "pkg"
    result = runner.invoke(app, ["render", str(session), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["role"] == "ni_stem")
    path = out / entry["path"]
    assert entry["codec"] == "alac" and entry["streams"] == ["Mix", *STEMS]
    check = runner.invoke(app, ["verify", str(path), "--profile", "ni-stem"])
    assert check.exit_code == 0, check.output
    premaster = sf.read(str(out / "premaster.wav"))[0]
    total = np.zeros_like(premaster)
    for index, name in enumerate(STEMS, start=1):
        decoded = _decode(path, index)
        wav = sf.read(str(out / "stems" / f"{name}.wav"))[0]
        assert decoded.shape == wav.shape == (manifest["length_samples"], 2)
        assert np.array_equal(decoded, wav), name  # ALAC is lossless: bit-exact
        total += decoded
    assert np.array_equal(_decode(path, 0), sf.read(str(out / "mix.wav"))[0])
    residual = np.max(np.abs(total - premaster))
    assert 20 * np.log10(residual) <= -120.0

"""Previews (MP3, Opus, AAC) through the CLI, checked with the ffmpeg CLI as the independent
reader: loudness and true peak by its ``ebur128`` filter, lag 0 and exact lengths from its
decode, identical bytes across renders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.export.previews import lag_samples
from tests.conftest import write_session, write_wav

runner = CliRunner()
FFMPEG, FFPROBE = shutil.which("ffmpeg"), shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(
    FFMPEG is None or FFPROBE is None,
    reason="the ffmpeg and ffprobe CLIs are not installed: previews are checked with them",
)

STREAMING = {"target_lufs": -14.0, "ceiling_dbtp": -1.0}
MAIN_PREVIEWS = [
    {"format": "mp3", "bitrate_kbps": 192, "stems": True,
     "normalize": {"target_lufs": -16.0, "ceiling_dbtp": -1.0}},
    {"format": "opus", "bitrate_kbps": 128, "normalize": STREAMING},
    {"format": "aac", "bitrate_kbps": 160, "normalize": STREAMING},
]  # fmt: skip


def _smooth_noise(rng: np.random.Generator, channels: int, n: int, taps: int = 8) -> np.ndarray:
    """Noise low-passed by a moving average: material lossy codecs keep close to the input."""
    raw = rng.standard_normal((channels, n + taps - 1))
    kernel = np.ones(taps) / np.sqrt(taps)
    return np.stack([np.convolve(row, kernel, "valid") for row in raw])


def _render(folder: Path, previews: list[dict[str, Any]], rate: int = 48000, clicks: float = 0.0,
            seconds: float = 2.0) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """A drums (noise, optional clicks), keys (two sines) and bass (mono) session, rendered."""
    rng = np.random.default_rng(11)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    drums = 0.08 * _smooth_noise(rng, 2, n) * (0.6 + 0.4 * np.cos(2 * np.pi * 2 * t))
    drums[:, rate // 3 :: rate // 2] += clicks
    keys = np.stack([0.05 * np.sin(2 * np.pi * 440 * t), 0.05 * np.sin(2 * np.pi * 660 * t)])
    bass = 0.1 * np.sin(2 * np.pi * 82.5 * t)[None, :]
    for name, signal in (("drums", drums), ("keys", keys), ("bass", bass)):
        write_wav(folder / f"{name}.wav", signal, rate, subtype="PCM_24")
    session = write_session(
        folder,
        {
            "name": "Preview test",
            "sample_rate": rate,
            "tracks": [
                {"name": "Drums", "clips": [{"file": "drums.wav"}]},
                {"name": "Keys", "clips": [{"file": "keys.wav", "start_seconds": 0.25}]},
                {"name": "Bass", "clips": [{"file": "bass.wav", "start_seconds": 0.1}]},
            ],
            "delivery": {"previews": previews, "mono_stems": True},
        },
    )
    out = folder / "out"
    result = runner.invoke(app, ["render", str(session), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "manifest.json").read_text())


def _previews(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in manifest["files"] if f["role"] == "preview"]


def ebur128(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) read by ffmpeg's ``ebur128`` filter."""
    assert FFMPEG is not None
    run = subprocess.run(
        [FFMPEG, "-nostats", "-hide_banner", "-i", str(path), "-af", "ebur128=peak=true",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = run.stderr[run.stderr.rindex("Summary:") :]
    loudness = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))  # type: ignore[union-attr]
    return loudness, peak


def ffmpeg_decode(path: Path, channels: int, rate: int) -> np.ndarray:
    """The file decoded by the ffmpeg CLI as float64 ``(channels, n)`` at ``rate``."""
    assert FFMPEG is not None
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "f64le", "-ac", str(channels),
         "-ar", str(rate), "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.float64).reshape(-1, channels).T


def ffprobe_stream(path: Path) -> dict[str, Any]:
    assert FFPROBE is not None
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=codec_name,sample_rate,channels,duration_ts", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)["streams"][0]


def _xcorr_lag(reference: np.ndarray, signal: np.ndarray, margin: int = 2048) -> int:
    """Lag of ``signal`` (mono) against ``reference`` (mono), searched in ±margin."""
    size = 1 << int(np.ceil(np.log2(len(signal) + len(reference) + margin)))
    spectrum = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size))
    corr = np.fft.irfft(spectrum, size)
    window = np.concatenate([corr[-margin:], corr[: margin + 1]])
    return int(np.argmax(window)) - margin


@pytest.fixture(scope="module")
def main_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _render(tmp_path_factory.mktemp("previews"), MAIN_PREVIEWS)


def test_every_preview_is_listed(main_package):
    out, manifest = main_package
    paths = sorted(p["path"] for p in _previews(manifest))
    assert paths == [
        "previews/mix.m4a", "previews/mix.mp3", "previews/mix.opus",
        "previews/stems/Bass.mp3", "previews/stems/Drums.mp3", "previews/stems/Keys.mp3",
    ]  # fmt: skip
    for entry in _previews(manifest):
        assert set(entry) >= {"path", "role", "name", "source", "format", "bitrate_kbps",
                              "gain_db", "loudness_lufs", "true_peak_dbtp", "lag_samples",
                              "sha256"}  # fmt: skip
        assert (out / entry["path"]).is_file() and (out / entry["source"]).is_file()
    bass = next(p for p in _previews(manifest) if p["name"] == "Bass")
    assert bass["channels"] == 1  # a mono stem stays mono


@needs_ffmpeg
def test_loudness_and_true_peak_read_by_ffmpeg(main_package):
    out, manifest = main_package
    for entry in _previews(manifest):
        normalize = entry["normalize"]
        loudness, peak = ebur128(out / entry["path"])
        assert normalize["limited_by"] == "target", entry["path"]
        assert abs(loudness - normalize["target_lufs"]) <= 0.5, (entry["path"], loudness)
        assert peak <= normalize["ceiling_dbtp"] + 0.1, (entry["path"], peak)
        assert abs(loudness - entry["loudness_lufs"]) <= 0.2  # our meter agrees with ffmpeg's
    keys = next(p for p in _previews(manifest) if p["name"] == "Keys")
    assert keys["gain_db"] > 6  # a quiet stem is raised while its true peak allows


@needs_ffmpeg
def test_lag_zero_and_exact_length_by_ffmpeg_decode(main_package):
    out, manifest = main_package
    for entry in _previews(manifest):
        wav, rate = sf.read(str(out / entry["source"]), always_2d=True)
        reference = wav.T * 10 ** (entry["gain_db"] / 20)
        decoded = ffmpeg_decode(out / entry["path"], reference.shape[0], rate)
        n = reference.shape[1]
        if entry["format"] == "aac":
            # The edit list declares the exact length; ffmpeg also decodes the last frame's
            # padding past it (under one AAC frame).
            assert int(ffprobe_stream(out / entry["path"])["duration_ts"]) == n
            assert n <= decoded.shape[1] < n + 1024
            assert entry["priming_samples"] == 1024 and entry["declared_length_samples"] == n
        else:
            assert decoded.shape[1] == n, entry["path"]
        assert _xcorr_lag(reference.sum(axis=0), decoded.sum(axis=0)) == 0, entry["path"]
        assert entry["lag_samples"] == 0 and entry["length_samples"] == n
        residual = decoded[:, :n] - reference
        snr_db = 10 * np.log10(np.sum(reference**2) / np.sum(residual**2))
        assert snr_db > 12, (entry["path"], snr_db)  # same material, same gain, aligned
    mp3 = next(p for p in _previews(manifest) if p["path"] == "previews/mix.mp3")
    opus = next(p for p in _previews(manifest) if p["path"] == "previews/mix.opus")
    assert mp3["priming_samples"] == 1105 and opus["priming_samples"] == 312


@needs_ffmpeg
def test_true_peak_cap_without_limiter(tmp_path):
    """Clicks on quiet noise: the target needs more gain than the true peak allows."""
    spec = {"format": "mp3", "bitrate_kbps": 256,
            "normalize": {"target_lufs": -9.0, "ceiling_dbtp": -1.0}}  # fmt: skip
    out, manifest = _render(tmp_path, [spec], clicks=0.5, seconds=1.5)
    (entry,) = _previews(manifest)
    loudness, peak = ebur128(out / entry["path"])
    assert entry["normalize"]["limited_by"] == "true_peak"
    cap_db = -1.0 - entry["source_true_peak_dbtp"]
    assert entry["gain_db"] <= cap_db + 1e-3  # never above the WAV's true-peak headroom
    assert loudness < -9.0 - 0.5
    assert peak <= -1.0 + 0.1
    assert entry["true_peak_dbtp"] <= -1.0  # after decoding, as re-measured
    assert all(p["true_peak_dbtp"] is not None for p in entry["passes"])


@needs_ffmpeg
def test_bytes_are_deterministic_and_opus_is_48k(tmp_path):
    specs = [
        {"format": "opus", "bitrate_kbps": 96, "normalize": {"target_lufs": -16.0}},
        {"format": "aac", "bitrate_kbps": 128},
        {"format": "mp3", "bitrate_kbps": 128},
        {"format": "mp3", "bitrate_kbps": 320},
    ]
    first, manifest = _render(tmp_path / "a", specs, rate=44100, seconds=1.0)
    second, again = _render(tmp_path / "b", specs, rate=44100, seconds=1.0)
    assert _previews(manifest) == _previews(again)
    for entry in _previews(manifest):
        data = (first / entry["path"]).read_bytes()
        assert data == (second / entry["path"]).read_bytes(), entry["path"]
        assert re.search(rb"Lav[fc]\d", data) is None  # no library version in the tags
    paths = {e["path"] for e in _previews(manifest)}
    assert {"previews/mix.128k.mp3", "previews/mix.320k.mp3"} <= paths
    plain = next(e for e in _previews(manifest) if e["path"] == "previews/mix.m4a")
    assert plain["gain_db"] == 0 and len(plain["passes"]) == 1 and plain["normalize"] is None
    opus = next(e for e in _previews(manifest) if e["format"] == "opus")
    assert ffprobe_stream(first / opus["path"])["sample_rate"] == "48000"
    wav, rate = sf.read(str(first / opus["source"]), always_2d=True)
    assert opus["sample_rate"] == 48000
    assert opus["length_samples"] == round(wav.shape[0] * 48000 / 44100)
    decoded = ffmpeg_decode(first / opus["path"], 2, rate)  # back to 44.1 kHz by ffmpeg
    assert decoded.shape[1] == wav.shape[0]
    assert _xcorr_lag(wav.sum(axis=1), decoded.sum(axis=0)) == 0


def test_lag_measure_finds_a_shift():
    rng = np.random.default_rng(5)
    reference = rng.standard_normal(4000)
    margin = 100
    padded = np.concatenate([np.zeros(margin + 37), reference, np.zeros(margin - 37)])
    assert lag_samples(reference, padded, margin) == 37
    assert lag_samples(np.zeros(10), np.zeros(30), 10) is None

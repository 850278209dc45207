"""Mono parts in a stereo sum: added to both channels at unity (issue #11).

`stemprint verify` used to refuse every mono stem of a stereo package ("stems/Mono.wav has 1
channel(s) but the mix has 2"), which is how DAWs export mono tracks and how stemprint writes a
stem whose channels are identical (``delivery.mono_stems``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_verify_support import (
    as_float32,
    cli,
    cli_json,
    live_report_equals_read_back,
    manifest,
    noise,
    peak_dbfs,
    write,
)

from stemprint.analysis.live import LiveFile, LiveMeasurement

N = 3 * 48000


def _parts(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A mono bass (1, N) and stereo keys (2, N), as FLOAT files hold them."""
    bass = as_float32(noise(N / 48000, seed, 0.3, channels=1))
    keys = as_float32(noise(N / 48000, seed + 1, 0.2))
    return bass, keys


def _foreign(
    root: Path, bass: np.ndarray, keys: np.ndarray, mix: np.ndarray, subtype: str = "FLOAT"
):
    write(root / "stems" / "Bass.wav", bass, subtype)
    write(root / "stems" / "Keys.wav", keys, subtype)
    write(root / "mix.wav", mix, subtype)
    return root


def test_mono_stem_in_a_stereo_package_nulls(tmp_path: Path) -> None:
    bass, keys = _parts()
    root = _foreign(tmp_path / "pkg", bass, keys, keys + bass)  # bass on both channels
    code, output = cli("verify", root)
    assert code == 0, output
    assert "stems/Bass.wav is mono" not in output  # an info line, not a warning
    code, report = cli_json(root)
    assert code == 0
    (null,) = report["nulls"]
    assert null["parts"] == ["stems/Bass.wav", "stems/Keys.wav"]
    assert null["residual_peak_dbfs"] < -130.0  # float32 rounding of the mix only
    mono = [f for f in report["findings"] if f["code"] == "null.mono_part"]
    assert [f["file"] for f in mono] == ["stems/Bass.wav"]
    assert "added to all 2 channels" in mono[0]["message"]


def test_mono_stem_24_bit(tmp_path: Path) -> None:
    bass, keys = _parts(9)
    root = _foreign(tmp_path / "pkg", bass, keys, keys + bass, "PCM_24")
    code, report = cli_json(root)
    assert code == 0
    # three independent 24-bit roundings: at most 1.5 LSB = -132.6 dBFS
    assert report["nulls"][0]["residual_peak_dbfs"] < -130.0


def test_a_late_mono_stem_fails_with_its_residual(tmp_path: Path) -> None:
    bass, keys = _parts()
    late = np.zeros_like(bass)
    late[:, 64:] = bass[:, :-64]
    root = _foreign(tmp_path / "pkg", late, keys, keys + bass)
    code, output = cli("verify", root)
    assert code == 1, output
    assert "stems do not null against mix.wav" in output
    assert "stems/Bass.wav is 64 samples late against mix.wav" in output  # mono, diagnosed
    code, report = cli_json(root)
    expected = peak_dbfs(as_float32(keys + bass) - (keys + late))
    assert report["nulls"][0]["residual_peak_dbfs"] == pytest.approx(expected, abs=0.01)
    bass_fit = next(s for s in report["nulls"][0]["stems"] if s["file"] == "stems/Bass.wav")
    assert bass_fit["offset_samples"] == 64


def test_stemprint_mono_stems_manifest(tmp_path: Path) -> None:
    """`delivery.mono_stems: true`: a stem whose two channels were identical is written mono."""
    bass, keys = _parts(3)
    root = tmp_path / "pkg"
    premaster = keys + bass
    write(root / "premaster.wav", premaster)
    write(root / "mix.wav", np.tanh(2 * premaster) / 2)  # the master bus limits
    write(root / "stems" / "Bass.wav", bass)
    write(root / "stems" / "Keys.wav", keys)
    manifest(
        root,
        [
            {"path": "mix.wav", "role": "mix", "channels": 2},
            {"path": "premaster.wav", "role": "premaster", "channels": 2},
            {"path": "stems/Bass.wav", "role": "stem", "channels": 1},
            {"path": "stems/Keys.wav", "role": "stem", "channels": 2},
        ],
        sample_rate=48000,
        length_samples=N,
        delivery={"mono_stems": True},
    )
    code, report = cli_json(root)
    assert code == 0, [f["message"] for f in report["findings"]]
    verdict = [n for n in report["nulls"] if n["decides_verdict"]]
    assert [n["reference"] for n in verdict] == ["premaster.wav"]
    assert verdict[0]["residual_peak_dbfs"] < -130.0


def test_a_stereo_part_cannot_sum_into_a_mono_mix(tmp_path: Path) -> None:
    bass, keys = _parts()
    root = _foreign(tmp_path / "pkg", keys, keys, bass)  # stereo stems, mono mix
    code, output = cli("verify", root)
    assert code == 1, output
    assert "stems/Bass.wav has 2 channel(s) but mix.wav, which it sums to, has 1" in output
    assert "not run (channel count differs between files)" in output


def _write_and_feed(root: Path, files: dict[str, tuple[np.ndarray, str, bool]], step: int):
    """Write each file and feed the same decoded blocks to a LiveMeasurement."""
    live_files = []
    decoded = []
    for rel, (x, role, mono_if_identical) in files.items():
        decoded.append(as_float32(x))  # what the writer hands over: the values on disk
        write(root / rel, x[:1] if mono_if_identical else x)
        live_files.append(LiveFile(root / rel, 48000, x.shape[0], 1.0, role, mono_if_identical))
    live = LiveMeasurement(live_files)
    for start in range(0, N, step):
        for f, x in zip(live_files, decoded, strict=True):
            live.monitor(f.path)(x[:, start : start + step])
    return live


@pytest.mark.parametrize("step", [4096, 70001])
def test_live_measurement_of_mono_parts_equals_reading_back(tmp_path, monkeypatch, step):
    bass, keys = _parts(11)
    stereo_pad = as_float32(np.tile(noise(N / 48000, 13, 0.1, channels=1), (2, 1)))
    root = tmp_path / "pkg"
    live = _write_and_feed(
        root,
        {
            "mix.wav": (keys + bass + stereo_pad, "mix", False),
            "stems/Bass.wav": (bass, "stem", False),  # written mono, fed mono
            "stems/Keys.wav": (keys, "stem", False),
            # fed stereo, identical channels: the writer rewrote it mono
            "stems/Pad.wav": (stereo_pad, "stem", True),
        },
        step,
    )
    manifest(
        root,
        [
            {"path": p, "role": r}
            for p, r in [
                ("mix.wav", "mix"),
                ("stems/Bass.wav", "stem"),
                ("stems/Keys.wav", "stem"),
                ("stems/Pad.wav", "stem"),
            ]
        ],
    )

    measured = live_report_equals_read_back(monkeypatch, root, live)
    assert measured["passed"] and measured["nulls"][0]["residual_peak_dbfs"] < -130
    pad = next(f for f in measured["files"] if f["label"] == "stems/Pad.wav")
    assert pad["channels"] == 1


def test_manifest_channels_are_checked(tmp_path: Path) -> None:
    bass, keys = _parts(4)
    root = _foreign(tmp_path / "pkg", np.tile(bass, (2, 1)), keys, keys + bass)
    manifest(
        root,
        [
            {"path": "mix.wav", "role": "mix"},
            {"path": "stems/Bass.wav", "role": "stem", "channels": 1},  # but it is stereo
            {"path": "stems/Keys.wav", "role": "stem", "channels": 2},
        ],
    )
    code, report = cli_json(root)
    assert code == 1
    (error,) = [f for f in report["findings"] if f["severity"] == "error"]
    assert error["code"] == "manifest.channels"
    assert error["message"] == "stems/Bass.wav has 2 channel(s), the manifest says 1"
    assert report["nulls"][0]["passed"]  # the same audio on both channels still nulls

"""The stereo fold-down (ITU-R BS.775-3 Lo/Ro) of 5.1/7.1 files: ffmpeg's ``pan`` filter as an
independent fold-down, its levels, and the live path against reading back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from post_synth import (
    FS,
    dme_package,
    dme_signals,
    ffmpeg_ebur128,
    ffmpeg_fold_down,
    in_channel,
    sine,
    write_multichannel,
)

from stemprint.analysis import measure_file, verify_package
from stemprint.analysis import verify as verify_module
from stemprint.analysis.live import LiveFile, LiveMeasurement
from stemprint.dsp.layouts import matrix


def _noise51(seed: int = 5, seconds: float = 6.0) -> np.ndarray:
    """Full-band noise in all six channels, peaks near −3 dBFS after the fold-down."""
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, (6, int(seconds * FS)))
    return x * np.array([[0.3], [0.3], [0.25], [0.5], [0.2], [0.2]])


def _dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.max(np.abs(x))))


def test_ffmpeg_pan_equals_the_bs775_matrix(tmp_path: Path) -> None:
    x = _noise51()
    src = write_multichannel(tmp_path / "pm51.wav", x, subtype="DOUBLE")
    ours = matrix("5.1", "stereo") @ x
    assert _dbfs(ours) > -6.0  # a loud fold-down: the residual is measured where it matters
    theirs = ffmpeg_fold_down(src, tmp_path / "loro.wav")
    assert theirs.shape == ours.shape
    assert _dbfs(theirs - ours) <= -120.0
    # ffmpeg with BS.775's printed 0.7071 applies exactly that coefficient: it equals the
    # 0.7071 matrix; against the exact √½ it differs by 7e-6 relative (about -109 dBFS here)
    printed = ffmpeg_fold_down(src, tmp_path / "loro_0p7071.wav", "0.7071")
    m = np.array(matrix("5.1", "stereo"))
    m[m == np.sqrt(0.5)] = 0.7071
    assert _dbfs(printed - m @ x) <= -120.0
    assert -115.0 < _dbfs(printed - ours) < -100.0


def test_fold_down_levels_match_the_ffmpeg_fold_down(tmp_path: Path) -> None:
    """verify --fold-down measures what ffmpeg's Lo/Ro file measures."""
    x = _noise51()
    src = write_multichannel(tmp_path / "pm51.wav", x, subtype="PCM_24")
    report = verify_package([src], fold_down=True)
    fold = report.file("pm51.wav").fold_down
    assert fold is not None and fold.source_layout == "5.1"
    loro = tmp_path / "loro.wav"
    theirs = ffmpeg_fold_down(src, loro)
    # from 24-bit input ffmpeg's pan runs in float32: about -144 dBFS from the float64 fold-down
    decoded = sf.read(str(src), dtype="float64", always_2d=True)[0].T
    assert _dbfs(theirs - matrix("5.1", "stereo") @ decoded) <= -120.0
    direct = measure_file(loro)
    assert fold.levels.loudness_lufs == pytest.approx(direct.loudness_lufs, abs=1e-5)
    assert fold.levels.true_peak_dbtp == pytest.approx(direct.true_peak_dbtp, abs=1e-5)
    assert abs(ffmpeg_ebur128(loro).integrated_lufs - fold.levels.loudness_lufs) <= 0.1
    # the LFE is left out, C and the surrounds at −3.01 dB: a 5.1 meter sees more
    assert fold.levels.loudness_lufs < report.file("pm51.wav").levels.loudness_lufs


def test_single_channel_fold_down() -> None:
    """A tone alone in C or Ls folds to 0.7071 in Lo (and Ro for C); alone in the LFE, nothing."""
    m = matrix("5.1", "stereo")
    tone = sine(-20.0, 1.0)
    for channel, expect_lo, expect_ro in ((2, 0.5**0.5, 0.5**0.5), (4, 0.5**0.5, 0.0),
                                          (3, 0.0, 0.0), (0, 1.0, 0.0)):  # fmt: skip
        lo, ro = m @ in_channel(tone, channel, 6)
        np.testing.assert_allclose(lo, expect_lo * tone, rtol=0, atol=1e-15)
        np.testing.assert_allclose(ro, expect_ro * tone, rtol=0, atol=1e-15)


def test_seven_one_folds_every_surround(tmp_path: Path) -> None:
    x = np.zeros((8, 2 * FS))
    x[6] = sine(-20.0, 2.0)  # Lss
    report = verify_package([write_multichannel(tmp_path / "s71.wav", x)], fold_down=True)
    fold = report.file("s71.wav").fold_down
    assert fold is not None and fold.source_layout == "7.1"
    assert fold.levels.sample_peak_dbfs_per_channel[0] == pytest.approx(-23.01, abs=0.01)
    assert fold.levels.sample_peak_dbfs_per_channel[1] == -np.inf


def test_fold_down_over_full_scale_is_a_warning(tmp_path: Path) -> None:
    t = np.arange(FS) / FS
    x = np.zeros((6, FS))
    x[0] = x[2] = x[4] = 0.5 * np.sin(2 * np.pi * 100 * t)  # L + 0.707 C + 0.707 Ls = 1.21
    src = write_multichannel(tmp_path / "hot.wav", x, subtype="PCM_24")
    report = verify_package([src], fold_down=True)
    warning = next(f for f in report.warnings if f.code == "levels.fold_down_over")
    assert "hot.wav folds down to stereo (Lo/Ro, BS.775-3) over full scale: peak +1.6" in (
        warning.message
    )
    assert report.file("hot.wav").fold_down.levels.over_full_scale_samples > 0
    plain = verify_package([src])
    assert plain.file("hot.wav").fold_down is None
    assert "levels.fold_down_over" not in {f.code for f in plain.warnings}


def _live(root: Path, signals: dict[str, np.ndarray], fold_down: bool) -> LiveMeasurement:
    """A live measurement fed the decoded samples of the package's files, in uneven blocks."""
    from post_synth import DME_PATHS

    files = [
        LiveFile(root / rel, FS, 6, 8388607 / 8388608, role) for rel, role in DME_PATHS.values()
    ]
    sums = [
        {"name": "DME", "parts": ["stems/DX.wav", "stems/MX.wav", "stems/FX.wav"],
         "reference": "PM.wav"},
        {"name": "M&E", "parts": ["stems/MX.wav", "stems/FX.wav"], "reference": "ME.wav"},
    ]  # fmt: skip
    live = LiveMeasurement(files, sums=sums, root=root, fold_down=fold_down)
    decoded = {f.path: sf.read(str(f.path), dtype="float64", always_2d=True)[0].T for f in files}
    n = next(iter(signals.values())).shape[1]
    for a in range(0, n, 30011):
        for f in files:
            live.monitor(f.path)(np.ascontiguousarray(decoded[f.path][:, a : a + 30011]))
    return live


@pytest.mark.parametrize("fold_down", [False, True])
def test_live_equals_reading_back(tmp_path: Path, monkeypatch, fold_down: bool) -> None:
    """Fold-downs and the dialogue-gated figure are the same live as read back, to the digit."""
    signals = dme_signals(seconds=5.0, dialogue_seconds=2.5)
    dme = dme_package(tmp_path / "pkg", signals)
    read_back = verify_package(dme.root, fold_down=fold_down).to_dict(reproducible=True)
    live = _live(dme.root, signals, fold_down)

    def no_read_back(*args: object, **kwargs: object) -> None:
        raise AssertionError("read back instead of using the live measurement")

    monkeypatch.setattr(verify_module, "_measure", no_read_back)
    from_live = verify_package(dme.root, live=live, fold_down=fold_down).to_dict(reproducible=True)
    assert from_live["files"] == read_back["files"]
    pm = from_live["files"][0]
    assert pm["dialogue_gated"]["label"] == "dialogue-gated (approximation)"
    assert (pm["fold_down"] is not None) == fold_down
    if fold_down:
        assert pm["fold_down"]["dialogue_gated"]["loudness_lufs"] is not None


def test_live_without_fold_down_meters_reads_back(tmp_path: Path) -> None:
    signals = dme_signals(seconds=2.0, dialogue_seconds=1.0)
    dme = dme_package(tmp_path / "pkg", signals)
    live = _live(dme.root, signals, fold_down=False)
    report = verify_package(dme.root, live=live, fold_down=True)  # falls back to reading
    assert report.file("PM.wav").fold_down is not None


def test_worker_processes_give_the_same_report(tmp_path: Path) -> None:
    """With workers, the files whose fold-down or gating blocks are wanted stay in this
    process (workers return levels only); the report is the same as in one process."""
    dme = dme_package(tmp_path / "pkg", dme_signals(seconds=3.0, dialogue_seconds=1.5))
    one = verify_package(dme.root, workers=1).to_dict(reproducible=True)["files"]
    assert verify_package(dme.root, workers=3).to_dict(reproducible=True)["files"] == one
    folded = verify_package(dme.root, workers=3, fold_down=True).to_dict(reproducible=True)
    assert [f["levels"] for f in folded["files"]] == [f["levels"] for f in one]

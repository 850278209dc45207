"""Loudness for every layout: explicit libebur128 channel maps, per-channel peaks, gating blocks,
and ffmpeg's own ``ebur128`` filter as an independent reader of 5.1 and 7.1 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from post_synth import (
    FS,
    channel_mask,
    dme_package,
    ffmpeg_ebur128,
    in_channel,
    sine,
    write_multichannel,
)

from stemprint.analysis import LevelMeter, measure_file, verify_package
from stemprint.analysis.meters import gated_loudness, loudness_channel_weights
from stemprint.dsp.layouts import LAYOUT_CHANNELS

#: A 1 kHz sine at −20 dBFS in one weight-1 channel (BS.1770-4: −20 − 3.01 + 0.691 − 0.691).
FRONT_LUFS = -23.0036
#: The same in a surround channel, weighted 1.41 (+1.49 dB).
SURROUND_LUFS = FRONT_LUFS + 10 * np.log10(1.41)


def measured(x: np.ndarray) -> LevelMeter:
    meter = LevelMeter(FS, x.shape[0])
    for a in range(0, x.shape[1], 65536):
        meter.process(x[:, a : a + 65536])
    return meter


@pytest.mark.parametrize("layout", ["mono", "stereo", "5.1", "7.1"])
def test_single_channel_tone_per_layout(layout: str) -> None:
    """−20 dBFS in one channel at a time: front −23.0, LFE excluded, surrounds −21.5."""
    names = LAYOUT_CHANNELS[layout]
    tone = sine(-20.0, 3.0)
    for k, name in enumerate(names):
        levels = measured(in_channel(tone, k, len(names))).result()
        assert levels.layout == layout
        if name == "LFE":
            assert levels.loudness_lufs == -np.inf, name
        elif name in ("Ls", "Rs", "Lrs", "Rrs", "Lss", "Rss"):
            assert levels.loudness_lufs == pytest.approx(SURROUND_LUFS, abs=0.005), name
            assert levels.loudness_lufs == pytest.approx(-21.51, abs=0.01)
        else:
            assert levels.loudness_lufs == pytest.approx(FRONT_LUFS, abs=0.005), name
        # true and sample peak stay per channel: the tone's channel only
        peaks = levels.true_peak_dbtp_per_channel
        assert len(peaks) == len(names) == len(levels.sample_peak_dbfs_per_channel)
        assert peaks[k] == pytest.approx(-20.0, abs=0.01)
        assert all(p == -np.inf for j, p in enumerate(peaks) if j != k)


def test_channel_weights_are_reported() -> None:
    assert loudness_channel_weights(6) == [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]
    assert loudness_channel_weights(8) == [1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.41, 1.41]
    assert loudness_channel_weights(2) == [1.0, 1.0]
    # 5 channels keep the 5.0 order L R C Ls Rs (EBU Tech 3341 case 6); 7 has no layout
    assert loudness_channel_weights(5) == [1.0, 1.0, 1.0, 1.41, 1.41]
    assert loudness_channel_weights(7) == [1.0] * 7
    levels = measured(np.tile(sine(-20.0, 1.0), (7, 1))).result()
    assert levels.layout is None and levels.loudness_channel_weights == [1.0] * 7
    # seven equal channels at weight 1: 10·log10(7) above one
    assert levels.loudness_lufs == pytest.approx(FRONT_LUFS + 10 * np.log10(7), abs=0.01)


def test_gating_blocks_reproduce_the_integrated_loudness() -> None:
    """The recorded 400 ms blocks, gated by BS.1770-4 §2.8, give libebur128's integrated
    loudness: the relative gate drops the quiet section, the absolute gate the silence."""
    rng = np.random.default_rng(4)
    n = 6 * FS
    x = 0.1 * rng.standard_normal((6, n))
    x[:, 2 * FS : 4 * FS] *= 0.01  # −40 dB: below the relative gate
    x[:, 5 * FS :] = 0.0  # silence: below the absolute gate
    meter = measured(x)
    levels = meter.result()
    gated = gated_loudness(meter.gating_block_energies)
    assert gated.blocks == (n - FS // 10 * 4) // (FS // 10) + 1  # one per 100 ms from 400 ms
    assert gated.loudness_lufs == pytest.approx(levels.loudness_lufs, abs=1e-9)
    # 2 s loud + blocks overlapping the quiet part by < 90 % are kept: 2 s + 3 + 3 blocks
    assert gated.kept_blocks == 17 + 3 + 10 + 3


def test_eight_channels_count_every_surround() -> None:
    """libebur128's default map ignores channels 7 and 8; the explicit 7.1 map counts them."""
    x = in_channel(sine(-20.0, 3.0), 7, 8)  # Rss alone
    assert measured(x).result().loudness_lufs == pytest.approx(SURROUND_LUFS, abs=0.005)


def test_per_channel_levels_of_a_surround_package(tmp_path: Path) -> None:
    dme = dme_package(tmp_path / "pkg")
    report = verify_package(dme.root)
    pm = report.file("PM.wav")
    assert pm.levels is not None and pm.levels.layout == "5.1"
    tp = pm.levels.true_peak_dbtp_per_channel
    assert len(tp) == 6
    assert tp[2] == pytest.approx(-20.0, abs=0.01)  # the dialogue tone in C
    # the 40 Hz LFE tone: measured, not weighted (the Annex filter's ripple: +0.014 dB at 40 Hz)
    assert tp[3] == pytest.approx(-20.0, abs=0.02)
    assert report.to_dict()["files"][0]["levels"]["loudness_channel_weights"][3] == 0.0


# --- ffmpeg's ebur128 filter, an independent implementation -----------------------------------


def _surround_files(root: Path) -> list[Path]:
    rng = np.random.default_rng(9)
    n = 8 * FS
    t = np.arange(n) / FS
    steps = np.zeros((6, n))
    for k in range(6):  # a different tone and on/off pattern per channel, LFE included
        gate = 0.3 + 0.7 * ((t % (1.0 + 0.3 * k)) < 0.5)
        steps[k] = 0.1 * np.sin(2 * np.pi * (200 + 150 * k) * t) * gate
    noise = 0.05 * rng.standard_normal((6, n)) * np.where(t < 4, 1.0, 0.2)
    noise[3] *= 4
    surround_only = in_channel(0.2 * np.sin(2 * np.pi * 997 * t), 4, 6)
    surround_only[3] = 0.5 * np.sin(2 * np.pi * 50 * t)  # a loud LFE that must not count
    signals = {"steps": steps, "noise": noise, "surround": surround_only}
    return [write_multichannel(root / f"{k}.wav", x) for k, x in signals.items()]


def test_ffmpeg_ebur128_agrees_on_5_1_files(tmp_path: Path) -> None:
    dme = dme_package(tmp_path / "pkg")
    files = _surround_files(tmp_path) + [dme.root / rel for rel in ("PM.wav", "ME.wav")]
    files += [dme.root / "stems" / f"{k}.wav" for k in ("DX", "MX", "FX")]
    report = verify_package(files)
    for path in files:
        assert channel_mask(path) == 0x3F  # ffmpeg reads 5.1 (FL FR FC LFE BL BR)
        ours = report.file(path.name).levels
        theirs = ffmpeg_ebur128(path)
        assert ours is not None
        # ffmpeg prints one decimal; the two meters agree to well within 0.1 LU
        assert abs(theirs.integrated_lufs - ours.loudness_lufs) <= 0.1, path.name
        # true peak: a different oversampling filter than BS.1770-4 Annex 2's
        assert abs(theirs.true_peak_dbfs - ours.true_peak_dbtp) <= 0.3, path.name
        # LRA (Tech 3342) agrees except where the programme stops dead: the two meters treat
        # the short-term windows sliding into the silence differently (DX: 4.8 vs 8.8 LU)
        if path.name != "DX.wav":
            assert abs(theirs.lra_lu - ours.loudness_range_lu) <= 0.3, path.name


def test_ffmpeg_ebur128_agrees_on_a_7_1_file(tmp_path: Path) -> None:
    """Material only in the rear and side surrounds: ffmpeg weighs BL/BR and SL/SR 1.41."""
    rng = np.random.default_rng(2)
    x = np.zeros((8, 6 * FS))
    x[4:] = 0.05 * rng.standard_normal((4, 6 * FS)) * np.array([[1.0], [0.5], [2.0], [1.5]])
    path = write_multichannel(tmp_path / "s71.wav", x)
    assert channel_mask(path) == 0x63F
    ours = measure_file(path)
    assert ours.layout == "7.1"
    assert abs(ffmpeg_ebur128(path).integrated_lufs - ours.loudness_lufs) <= 0.1

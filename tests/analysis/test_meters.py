"""Meter accuracy against signals with published or analytically known levels.

EBU Tech 3341 (loudness: integrated, momentary, short-term) and Tech 3342 (loudness range) test
cases are synthesized from their definitions: 1 kHz sines at given dBFS per channel. For a
1 kHz sine the K-weighting gain is such that a stereo sine at X dBFS per channel reads X LUFS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from analysis_synth import FS, write_wav

from stemprint.analysis import LevelMeter, TruePeakMeter, measure_file


def sine(
    level_dbfs: float, seconds: float, freq: float = 1000.0, channels: int = 2, fs: int = FS
) -> np.ndarray:
    """Sine at ``level_dbfs`` peak per channel, shape (channels, samples)."""
    t = np.arange(int(round(seconds * fs))) / fs
    x = 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq * t)
    return np.tile(x, (channels, 1))


def meter(x: np.ndarray, fs: int = FS, block: int = 65536) -> LevelMeter:
    m = LevelMeter(fs, x.shape[0])
    for a in range(0, x.shape[1], block):
        m.process(x[:, a : a + block])
    return m


def seq(*parts: tuple[float, float]) -> np.ndarray:
    """Concatenate (level_dbfs, seconds) 1 kHz stereo sine sections (level None = silence)."""
    return np.concatenate([sine(db, s) for db, s in parts], axis=1)


# --- EBU Tech 3341 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected_lufs"),
    [
        (((-23.0, 20.0),), -23.0),  # case 1
        (((-33.0, 20.0),), -33.0),  # case 2
        (((-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)), -23.0),  # case 3 (relative gate)
        (((-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)), -23.0),
        (((-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)), -23.0),  # case 5
    ],
)
def test_tech3341_integrated(parts: tuple[tuple[float, float], ...], expected_lufs: float) -> None:
    levels = meter(seq(*parts)).result()
    assert levels.loudness_lufs == pytest.approx(expected_lufs, abs=0.1)


def test_tech3341_case1_momentary_and_short_term() -> None:
    levels = meter(sine(-23.0, 20.0)).result()
    assert levels.max_momentary_lufs == pytest.approx(-23.0, abs=0.1)
    assert levels.max_short_term_lufs == pytest.approx(-23.0, abs=0.1)


def test_tech3341_case6_five_channels() -> None:
    # 5.0: L, R at -28 dBFS, C at -24 dBFS, Ls, Rs at -30 dBFS (surrounds weighted 1.41)
    x = np.concatenate([sine(-28.0, 20.0), sine(-24.0, 20.0, channels=1), sine(-30.0, 20.0)])
    assert meter(x).result().loudness_lufs == pytest.approx(-23.0, abs=0.1)


def test_tech3341_case9_short_term_constant() -> None:
    # 1.34 s at -20 dBFS then 1.66 s at -30 dBFS, repeated: every 3 s window holds one period,
    # so the short-term loudness is constant at -23 LUFS.
    x = np.concatenate([seq((-20.0, 1.34), (-30.0, 1.66)) for _ in range(5)], axis=1)
    assert meter(x).result().max_short_term_lufs == pytest.approx(-23.0, abs=0.1)


def test_max_momentary_of_a_burst() -> None:
    # 1 s at -20 dBFS inside -30 dBFS: momentary max -20; short-term max (1·0.01 + 2·0.001)/3
    x = seq((-30.0, 5.0), (-20.0, 1.0), (-30.0, 5.0))
    levels = meter(x).result()
    assert levels.max_momentary_lufs == pytest.approx(-20.0, abs=0.1)
    assert levels.max_short_term_lufs == pytest.approx(10 * np.log10(0.012 / 3), abs=0.1)


# --- EBU Tech 3342 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected_lra"),
    [
        (((-20.0, 20.0), (-30.0, 20.0)), 10.0),  # case 1
        (((-20.0, 20.0), (-15.0, 20.0)), 5.0),  # case 2
        (((-40.0, 20.0), (-20.0, 20.0)), 20.0),  # case 3
        (((-50.0, 20.0), (-35.0, 20.0), (-20.0, 20.0), (-35.0, 20.0), (-50.0, 20.0)), 15.0),
    ],
)
def test_tech3342_loudness_range(
    parts: tuple[tuple[float, float], ...], expected_lra: float
) -> None:
    assert meter(seq(*parts)).result().loudness_range_lu == pytest.approx(expected_lra, abs=1.0)


def test_true_peak_is_the_same_for_every_block_size() -> None:
    """Windows across block boundaries come from an edge of 22 samples: any blocking gives the
    peak of the whole signal fed at once, to the bit (mono and stereo, hot and quiet)."""
    rng = np.random.default_rng(11)
    t = np.arange(40000)
    signals = [
        0.3 * rng.standard_normal((2, 40000)),
        0.9 * np.sin(2 * np.pi * t * 11025 / 48000.3)[None, :],
        np.concatenate([1e-4 * rng.standard_normal((2, 30000)), sine(-1.0, 0.2)], axis=1),
    ]
    for x in signals:
        whole = TruePeakMeter(x.shape[0])
        whole.process(x)
        whole.flush()
        for block in (1, 2, 5, 11, 12, 13, 777, 4096):
            streamed = TruePeakMeter(x.shape[0])
            for a in range(0, x.shape[1], block):
                streamed.process(np.ascontiguousarray(x[:, a : a + block]))
            streamed.flush()
            assert np.array_equal(streamed.peak, whole.peak), block


def _libebur128_full(x: np.ndarray, fs: int) -> tuple[float, float]:
    """Integrated loudness and LRA from libebur128's own modes (I and LRA), as a reference."""
    import pyebur128

    from stemprint.analysis.meters import loudness_channel_map

    mode = pyebur128.MeasurementMode.MODE_I | pyebur128.MeasurementMode.MODE_LRA
    state = pyebur128.R128State(x.shape[0], fs, mode)
    for index, channel_type in enumerate(loudness_channel_map(x.shape[0])):
        state.set_channel(index, channel_type)
    state.add_frames(np.ascontiguousarray(x.T).reshape(-1), x.shape[1])
    return pyebur128.get_loudness_global(state), pyebur128.get_loudness_range(state)


def _level_steps(rng: np.random.Generator, fs: int, channels: int) -> np.ndarray:
    gains_db = (-10, -30, -20, -45, -15, -60, -25)
    noise = np.concatenate([rng.standard_normal(fs * 4) * 10 ** (g / 20) for g in gains_db])
    return np.stack([noise * (0.9**c) for c in range(channels)])


@pytest.mark.parametrize(
    ("name", "fs", "channels", "block"),
    [
        ("level steps", 48000, 2, 4096),
        ("level steps", 44100, 1, 1000),
        ("level steps", 48000, 6, 65536),
        ("music-like", 48000, 2, 777),
        ("tone", 96000, 2, 4096),
        ("silence", 48000, 2, 4096),
        ("2.5 s noise", 48000, 2, 4096),
    ],
)
def test_integrated_and_range_match_libebur128_modes(
    name: str, fs: int, channels: int, block: int
) -> None:
    """The meter builds integrated loudness and LRA from 100 ms energies; libebur128 sums the
    samples of every 400 ms and 3 s window itself. Same definitions: equal to 1e-9 LU."""
    rng = np.random.default_rng(7)
    if name == "level steps":
        x = _level_steps(rng, fs, channels)
    elif name == "music-like":
        t = np.arange(fs * 20) / fs
        envelope = (1 + np.sin(2 * np.pi * 0.13 * t)) ** 2 / 4
        tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
        x = np.stack([envelope * tone, envelope * 0.2 * rng.standard_normal(t.size)])
    elif name == "tone":
        x = sine(-20.0, 12.0, 997.0, channels, fs)
    elif name == "silence":
        x = np.zeros((channels, fs * 5))
    else:
        x = 0.1 * rng.standard_normal((channels, int(fs * 2.5)))
    levels = meter(x, fs, block).result()
    lufs, lra = _libebur128_full(x, fs)
    if np.isfinite(lufs):
        assert levels.loudness_lufs == pytest.approx(lufs, abs=1e-9)
    else:
        assert levels.loudness_lufs == -np.inf
    assert levels.loudness_range_lu == pytest.approx(lra, abs=1e-9)
    if name == "level steps":
        assert levels.loudness_range_lu > 15.0  # the gates and percentiles were exercised


# --- true peak (ITU-R BS.1770-4 Annex 2) ---------------------------------------------------


def faded(x: np.ndarray, fade: int = 4800) -> np.ndarray:
    """Raised-cosine fade in/out (no edge discontinuity to ring)."""
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
    env = np.ones(x.shape[-1])
    env[:fade], env[-fade:] = ramp, ramp[::-1]
    return x * env


@pytest.mark.parametrize("amplitude_dbfs", [0.0, -6.0])
def test_true_peak_quarter_rate_sine_45_degrees(amplitude_dbfs: float) -> None:
    # sin(pi/2 n + pi/4): every sample is ±0.707·A, the peaks fall between samples
    n = np.arange(FS * 2)
    a = 10 ** (amplitude_dbfs / 20)
    x = faded(a * np.sin(np.pi / 2 * n + np.pi / 4))
    levels = meter(np.stack([x, x])).result()
    assert levels.sample_peak_dbfs == pytest.approx(amplitude_dbfs - 3.01, abs=0.01)
    assert levels.true_peak_dbtp == pytest.approx(amplitude_dbfs, abs=0.3)
    assert levels.true_peak_dbtp - levels.sample_peak_dbfs > 2.7


def test_true_peak_equals_sample_peak_for_sampled_peaks() -> None:
    # 1 kHz at 48 kHz has a sample on every crest: true peak = sample peak (within tolerance)
    levels = meter(faded(sine(-1.0, 2.0))).result()
    assert levels.true_peak_dbtp == pytest.approx(-1.0, abs=0.3)
    assert levels.true_peak_dbtp >= levels.sample_peak_dbfs


def test_true_peak_sparse_and_dense_paths_agree() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 200_000)) * 0.05
    x[0, 123_457] = 0.9  # one isolated spike: sparse path
    x[0, 123_458] = -0.9  # the interpolated overshoot between them exceeds 0.9
    streamed = TruePeakMeter(1)
    for a in range(0, x.shape[1], 7919):
        streamed.process(x[:, a : a + 7919])
    streamed.flush()
    from numpy.lib.stride_tricks import sliding_window_view

    from stemprint.analysis.meters import _KERNEL

    padded = np.concatenate([np.zeros(11), x[0], np.zeros(11)])
    reference = max(np.abs(sliding_window_view(padded, 12) @ _KERNEL).max(), np.abs(x).max())
    assert streamed.peak[0] == pytest.approx(reference, rel=1e-12)
    assert streamed.peak[0] > 0.9


def _true_peak_signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    t = np.arange(FS * 2)
    envelope = (1 + np.sin(2 * np.pi * 0.7 * t / FS)) ** 2 / 4
    tone = 0.3 * np.sin(2 * np.pi * 220 * t / FS) + 0.05 * rng.standard_normal(t.size)
    impulses = np.zeros((1, FS))
    impulses[0, ::4801], impulses[0, 1::4801] = 0.8, -0.8
    return {
        "noise": 0.1 * rng.standard_normal((2, FS * 2)),
        "limited": 0.95 * np.tanh(3 * rng.standard_normal((2, FS))),
        "music-like": np.stack([envelope * tone, envelope * 0.2 * rng.standard_normal(t.size)]),
        "quarter-rate sine": np.sin(np.pi / 2 * t + np.pi / 4)[None, :],
        "square": 0.99 * np.sign(np.sin(2 * np.pi * 100 * t / FS))[None, :],
        "impulse pairs": impulses,
        "1e-160 noise": 1e-160 * rng.standard_normal((1, FS)),
        "silence": np.zeros((2, FS)),
    }


@pytest.mark.parametrize("name", list(_true_peak_signals()))
def test_skipped_windows_never_change_the_true_peak(name: str, monkeypatch) -> None:
    """Windows ruled out by the L1 or the energy bound could not have raised the peak: the
    meter gives, to the bit, the peak of interpolating every window."""
    from stemprint.analysis import meters

    x = _true_peak_signals()[name]
    peaks = []
    for skipping in (True, False):
        if not skipping:
            monkeypatch.setattr(meters, "_candidate_windows", lambda *args: None)
        streamed = TruePeakMeter(x.shape[0])
        for a in range(0, x.shape[1], 4099):
            streamed.process(np.ascontiguousarray(x[:, a : a + 4099]))
        streamed.flush()
        peaks.append(streamed.peak)
    assert np.array_equal(peaks[0], peaks[1])
    assert np.all(peaks[0] >= np.abs(x).max(axis=1))


# --- DC, clipping, correlation, silence -----------------------------------------------------


def test_dc_offset_correlation_and_peaks(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    left = 0.1 * rng.standard_normal(FS * 3) + 0.01
    right = -left + 0.02  # anti-phase apart from DC
    path = write_wav(tmp_path / "dc.wav", np.stack([left, right]))
    levels = measure_file(path)
    assert levels.dc_offset_per_channel[0] == pytest.approx(0.01, abs=2e-3)
    assert levels.dc_offset_per_channel[1] == pytest.approx(0.01, abs=2e-3)
    assert levels.channel_correlation is not None and levels.channel_correlation < -0.95
    assert levels.sample_peak_dbfs == pytest.approx(
        20 * np.log10(np.abs(np.stack([left, right]).astype(np.float32)).max()), abs=1e-4
    )


def test_clipped_runs_in_16_bit_file(tmp_path: Path) -> None:
    x = np.zeros((2, FS))
    x[0, 1000:1005] = 1.0  # 5 samples at positive full scale (32767/32768 in 16-bit)
    x[0, 2000:2002] = 1.0  # only 2: not a clipped run
    x[1, 24000:24003] = -1.0  # 3 at negative full scale
    path = tmp_path / "clip.wav"
    sf.write(str(path), x.T, FS, subtype="PCM_16")
    levels = measure_file(path)
    assert levels.clipped_run_count == 2
    runs = [(r.channel, r.start_sample, r.length_samples) for r in levels.clipped_runs]
    assert runs == [(0, 1000, 5), (1, 24000, 3)]
    assert levels.clipped_runs[1].start_seconds == pytest.approx(0.5)


def test_clipped_run_across_block_boundary() -> None:
    x = np.zeros((1, 10_000))
    x[0, 4095:4105] = 1.0  # crosses the 4096-frame block edge
    x[0, 8190:8192] = -1.0  # ends exactly at a block end, continues into next? no: 2 samples
    x[0, 8192:8193] = -1.0  # ... plus one more in the next block: a run of 3
    levels = meter(x, block=4096).result()
    runs = [(r.start_sample, r.length_samples) for r in levels.clipped_runs]
    assert runs == [(4095, 10), (8190, 3)]


def test_silence() -> None:
    levels = meter(np.zeros((2, FS))).result()
    assert levels.silent
    assert levels.sample_peak_dbfs == -np.inf
    assert levels.loudness_lufs == -np.inf
    assert levels.to_dict()["loudness_lufs"] is None


# --- over full scale (float) ----------------------------------------------------------------


@pytest.mark.parametrize("block", [7, 1000, 65536])
def test_float_overs_are_counted_not_clipped(block: int) -> None:
    """Samples above full scale in a float file: counted as overs, never as clipped runs, at
    any block size; a flat top exactly at full scale next to them is still a clipped run."""
    x = sine(+3.0, 1.0, freq=50.0)  # peaks at 1.41: a smooth waveform over full scale
    x[:, 30000:30010] = 1.0  # a flat top at full scale: clipped
    levels = meter(x, block=block).result()
    assert levels.over_full_scale_samples == int(np.count_nonzero(np.abs(x) > 1.0))
    first = int(np.flatnonzero((np.abs(x) > 1.0).any(axis=0))[0])
    assert levels.first_over_full_scale_seconds == pytest.approx(first / FS)
    assert [(r.start_sample, r.length_samples) for r in levels.clipped_runs] == [
        (30000, 10),
        (30000, 10),
    ]
    assert levels.sample_peak_dbfs == pytest.approx(3.0, abs=0.01)


def test_pcm_never_has_overs(tmp_path: Path) -> None:
    path = tmp_path / "full.wav"
    write_wav(path, np.clip(sine(+6.0, 0.5, freq=100.0), -1, 1), subtype="PCM_16")
    levels = measure_file(path)
    assert levels.over_full_scale_samples == 0 and levels.first_over_full_scale_seconds is None
    assert levels.clipped_run_count == 2 * 100  # 100 Hz for 0.5 s: a flat top per half period

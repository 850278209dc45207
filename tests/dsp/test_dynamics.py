"""SidechainCompressor against a slow reference and against hand-computed facts.

The reference below is written straight from the formulas in the module docstring of
:mod:`stemprint.dsp.dynamics` (Giannoulis, Massberg & Reiss, JAES 2012, for the soft knee),
one interval and one sample at a time, with none of the class's vectorisation.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from stemprint.dsp.dynamics import SidechainCompressor
from stemprint.errors import InputError

FS = 48000


def reference(
    main: np.ndarray,
    key: np.ndarray,
    *,
    sample_rate: int,
    threshold_db: float,
    ratio: float,
    attack_ms: float,
    release_ms: float,
    knee_db: float,
    makeup_db: float,
    detector: str,
    control_interval: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Output and linear gain per sample, from the documented formulas (slow, obvious)."""
    n = main.shape[1]
    length = control_interval
    floor_db = threshold_db - knee_db / 2.0

    def coefficient(time_ms: float) -> float:
        return 0.0 if time_ms == 0 else math.exp(-length / (time_ms / 1000.0 * sample_rate))

    def gain_computer_db(level_db: float) -> float:
        # GMR 2012 soft knee: static characteristic minus input = gain change in dB.
        over = level_db - threshold_db
        if 2.0 * over < -knee_db:
            return 0.0
        if 2.0 * abs(over) <= knee_db:
            return (1.0 / ratio - 1.0) * (over + knee_db / 2.0) ** 2 / (2.0 * knee_db)
        return threshold_db + over / ratio - level_db

    attack, release = coefficient(attack_ms), coefficient(release_ms)
    envelope = floor_db
    unity = 10.0 ** (makeup_db / 20.0)
    knots = [unity, unity]  # G_{-2}, G_{-1}: interval k ramps from knots[k] to knots[k + 1]
    gain = np.empty(n)
    for k in range(-(-n // length)):
        for j in range(length):
            t = k * length + j
            if t < n:
                f = (j + 1) / length
                gain[t] = knots[k] * (1.0 - f) + knots[k + 1] * f
        if (k + 1) * length > n:
            break
        window = key[:, k * length : (k + 1) * length]
        if detector == "peak":
            value = float(np.max(np.abs(window)))
            level = 20.0 * math.log10(value) if value > 0 else -math.inf
        else:
            value = float(np.mean(window**2))
            level = 10.0 * math.log10(value) if value > 0 else -math.inf
        level = max(level, floor_db)
        a = attack if level > envelope else release
        envelope = a * envelope + (1.0 - a) * level
        knots.append(10.0 ** ((gain_computer_db(envelope) + makeup_db) / 20.0))
    return main * gain, gain


def kick_train(
    seconds: float,
    level_dbfs: float = -6.0,
    period_s: float = 0.5,
    burst_s: float = 0.08,
    freq_hz: float = 60.0,
) -> np.ndarray:
    """Mono ``(1, n)`` key: a ``freq_hz`` sine burst of ``burst_s`` every ``period_s``."""
    t = np.arange(int(round(seconds * FS))) / FS
    on = (t % period_s) < burst_s
    return (10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq_hz * t) * on)[np.newaxis, :]


def sine(level_db: float, seconds: float, freq_hz: float = 1000.0) -> np.ndarray:
    """Mono ``(1, n)`` sine at ``level_db`` peak."""
    t = np.arange(int(round(seconds * FS))) / FS
    return (10 ** (level_db / 20) * np.sin(2 * np.pi * freq_hz * t))[np.newaxis, :]


def run_blocks(comp: SidechainCompressor, main, key, sizes) -> np.ndarray:
    """Process in blocks of the given sizes (cycled); the last block is whatever remains."""
    out, i, s = [], 0, 0
    n = main.shape[1]
    while i < n:
        size = sizes[s % len(sizes)]
        out.append(
            comp.process(main[:, i : i + size], None if key is None else key[:, i : i + size])
        )
        i += size
        s += 1
    return np.concatenate(out, axis=1)


def varied_signals(seed: int, seconds: float, key_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Stereo noise main and a key whose level jumps around threshold (noise × steps + kicks)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    main = 0.1 * rng.standard_normal((2, n))
    steps = np.repeat(10 ** (rng.uniform(-50, 0, size=n // 1000 + 1) / 20), 1000)[:n]
    key = steps * rng.standard_normal((key_channels, n)) * 0.3
    key[0] += kick_train(seconds, -3.0, period_s=0.12)[0, :n]
    return main, key


CONFIGS = [
    dict(detector="peak", control_interval=32, knee_db=0.0, attack_ms=1.0, release_ms=60.0),
    dict(detector="rms", control_interval=32, knee_db=12.0, attack_ms=5.0, release_ms=80.0),
    dict(detector="peak", control_interval=7, knee_db=6.0, attack_ms=0.0, release_ms=20.0),
    dict(detector="rms", control_interval=48, knee_db=3.0, attack_ms=2.0, release_ms=0.0),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("key_channels", [1, 3])
def test_matches_reference(config, key_channels):
    main, key = varied_signals(seed=7 + key_channels, seconds=0.5, key_channels=key_channels)
    params = dict(sample_rate=FS, threshold_db=-24.0, ratio=4.0, makeup_db=2.5, **config)
    want_out, want_gain = reference(main, key, **params)
    comp = SidechainCompressor(**params)
    out = run_blocks(comp, main, key, [1000, 333, 4096])
    assert np.max(np.abs(out - want_out)) < 1e-12
    # The last block's meter agrees with the reference gain there.
    tail = comp.gain_reduction_db
    want_tail = 2.5 - 20 * np.log10(want_gain[-tail.shape[0] :])
    assert np.max(np.abs(tail - want_tail)) < 1e-9
    # The signal really was compressed somewhere, and left alone somewhere.
    gr = 2.5 - 20 * np.log10(want_gain)
    assert gr.max() > 10.0 and gr.min() < 1e-9


@pytest.mark.parametrize("config", CONFIGS)
def test_block_size_independent(config):
    rng = np.random.default_rng(3)
    main, key = varied_signals(seed=11, seconds=3.0, key_channels=2)

    def render(sizes):
        comp = SidechainCompressor(FS, threshold_db=-24.0, ratio=6.0, makeup_db=1.0, **config)
        return run_blocks(comp, main, key, sizes)

    first = render([65536])
    for sizes in ([32], [33], [100], [1000], [4097], rng.integers(32, 9000, size=50).tolist()):
        assert np.array_equal(render(sizes), first), sizes
    assert np.array_equal(render([65536]), first)  # and every run
    # Blocks shorter than the control interval (carry over several calls) are exact too.
    short = SidechainCompressor(FS, threshold_db=-24.0, ratio=6.0, makeup_db=1.0, **config)
    assert np.array_equal(
        run_blocks(short, main[:, :3000], key[:, :3000], [1, 5, 2]), first[:, :3000]
    )


def test_reset_restarts_the_stream():
    main, key = varied_signals(seed=5, seconds=0.5, key_channels=2)
    comp = SidechainCompressor(FS, threshold_db=-20.0, ratio=3.0)
    first = run_blocks(comp, main, key, [999])
    comp.reset()
    assert np.array_equal(run_blocks(comp, main, key, [4097]), first)


@pytest.mark.parametrize(
    ("level_db", "knee_db", "expected_gr_db"),
    [
        (-10.0, 0.0, 7.5),  # hard knee: (1 − 1/4)·(−10 − (−20))
        (-30.0, 0.0, 0.0),  # below threshold
        (-25.0, 10.0, 0.0),  # lower knee edge T − W/2
        (-20.0, 10.0, 0.9375),  # centre: (3/4)·(W/2)²/(2W) = 0.75·25/20
        (-15.0, 10.0, 3.75),  # upper knee edge T + W/2: meets the hard-knee line, 0.75·5
        (-5.0, 10.0, 11.25),  # above the knee: 0.75·15
    ],
)
def test_static_curve_peak(level_db, knee_db, expected_gr_db):
    # 1 kHz at 48 kHz: every 32-sample interval holds a sample at the crest (period 48, crests
    # every 24 samples), so the peak detector reads exactly the sine's peak level.
    key = sine(level_db, 0.3)
    main = np.ones((2, key.shape[1]))
    comp = SidechainCompressor(
        FS, threshold_db=-20.0, ratio=4.0, attack_ms=0.01, release_ms=0.01, knee_db=knee_db
    )
    out = comp.process(main, key)
    steady = comp.gain_reduction_db[FS // 10 :]
    assert np.all(np.abs(steady - expected_gr_db) < 0.05)
    assert np.all(np.abs(-20 * np.log10(out[:, FS // 10 :]) - expected_gr_db) < 0.05)


def test_static_curve_rms_with_makeup():
    # 1.5 kHz: period 32 samples, so each interval's mean square is exactly half the peak².
    key = sine(-10.0 + 20 * math.log10(math.sqrt(2.0)), 0.3, freq_hz=1500.0)  # −10 dB RMS
    main = np.ones((2, key.shape[1]))
    comp = SidechainCompressor(
        FS,
        threshold_db=-20.0,
        ratio=4.0,
        attack_ms=0.01,
        release_ms=0.01,
        makeup_db=3.0,
        detector="rms",
    )
    out = comp.process(main, key)
    assert np.all(np.abs(comp.gain_reduction_db[FS // 10 :] - 7.5) < 0.05)
    # The output carries the makeup: 3 − 7.5 dB.
    assert np.all(np.abs(20 * np.log10(out[:, FS // 10 :]) - (3.0 - 7.5)) < 0.05)


def test_sidechain_ducking():
    seconds = 3.0
    rng = np.random.default_rng(21)
    main = 0.05 * rng.standard_normal((2, int(seconds * FS)))  # about −26 dBFS RMS
    key = kick_train(seconds, -6.0, period_s=0.5, burst_s=0.08)
    comp = SidechainCompressor(FS, threshold_db=-30.0, ratio=10.0, attack_ms=1.0, release_ms=40.0)
    out = comp.process(main, key)
    gr = comp.gain_reduction_db
    # Full reduction for a −6 dBFS key: (1 − 1/10)·(−6 + 30) = 21.6 dB.
    full = 0.9 * 24.0
    for onset in range(0, int(seconds * FS), FS // 2):
        during = gr[onset + int(0.02 * FS) : onset + int(0.08 * FS)]
        assert during.min() > full - 3.0 and during.max() < full + 1e-9
        # 320 ms (8 release time constants) after the burst: 21.6·e^−8 ≈ 0.007 dB.
        between = gr[onset + int(0.40 * FS) : onset + int(0.495 * FS)]
        assert between.max() < 0.05
    # The main is scaled by exactly that gain, the same on both channels.
    gain = 10 ** (-gr / 20)
    assert np.allclose(out, main * gain, rtol=1e-12, atol=0)
    # A silent key leaves the main untouched, bit for bit.
    silent = SidechainCompressor(FS, threshold_db=-30.0, ratio=10.0)
    assert np.array_equal(silent.process(main, np.zeros((1, main.shape[1]))), main)


def test_self_keyed_when_key_is_none():
    rng = np.random.default_rng(22)
    noise = 0.3 * rng.standard_normal((2, FS))
    params = dict(threshold_db=-30.0, ratio=4.0, detector="rms", attack_ms=5.0)
    a = SidechainCompressor(FS, **params)
    b = SidechainCompressor(FS, **params)
    assert np.array_equal(a.process(noise), b.process(noise, noise))
    assert a.gain_reduction_db[FS // 4 :].min() > 10.0
    # A stereo sine at −20 dB RMS keys itself: (1 − 1/4)·(−20 + 30) = 7.5 dB, exactly settled
    # because 1.5 kHz has a period of one 32-sample interval.
    main = np.repeat(sine(-20.0 + 20 * math.log10(math.sqrt(2.0)), 0.3, freq_hz=1500.0), 2, axis=0)
    out = SidechainCompressor(FS, **params).process(main)
    tail = slice(FS // 5, None)  # 40 attack time constants after the start
    assert np.allclose(out[:, tail], main[:, tail] * 10 ** (-7.5 / 20), rtol=1e-9, atol=0)


def envelope_trace(comp: SidechainCompressor, key: np.ndarray) -> np.ndarray:
    """Envelope after each interval: fed one interval per call."""
    length = comp.control_interval
    trace = []
    for i in range(0, key.shape[1], length):
        comp.process(key[:, i : i + length])
        trace.append(comp.envelope_db)
    return np.array(trace)


@pytest.mark.parametrize(("attack_ms", "release_ms"), [(10.0, 100.0), (7.3, 37.1), (0.5, 3.0)])
def test_time_constants(attack_ms, release_ms):
    length = 32
    step_at = FS  # a grid boundary: interval 1500
    low, high = 10 ** (-26 / 20), 10 ** (-6 / 20)
    key = np.full((1, 3 * FS), low)
    key[:, step_at : 2 * FS] = high  # up at 1 s, down at 2 s: DC, so the peak is exact
    comp = SidechainCompressor(
        FS, threshold_db=-60.0, ratio=2.0, attack_ms=attack_ms, release_ms=release_ms
    )
    trace = envelope_trace(comp, key)
    low_db, high_db = 20 * math.log10(low), 20 * math.log10(high)
    assert abs(trace[step_at // length - 1] - low_db) < 1e-6  # settled before the step
    up = low_db + (1 - 1 / math.e) * (high_db - low_db)
    # Envelope after interval k covers samples up to (k + 1)·L: time since the step.
    k_up = np.argmax(trace[step_at // length :] >= up)
    assert abs((k_up + 1) * length - attack_ms / 1000 * FS) <= length
    down = high_db - (1 - 1 / math.e) * (high_db - low_db)
    k_down = np.argmax(trace[2 * FS // length :] <= down)
    assert abs((k_down + 1) * length - release_ms / 1000 * FS) <= length


def test_detector_lag_and_zero_latency():
    # Attack 0: the envelope jumps in the interval of the step; the gain starts to move one
    # interval later and reaches its knot at the end of that interval (lag L … 2L − 1).
    length = 32
    step_at = 100 * length
    key = np.zeros((1, 200 * length))
    key[:, step_at:] = 0.5
    comp = SidechainCompressor(FS, threshold_db=-20.0, ratio=4.0, attack_ms=0.0)
    assert comp.latency_samples == 0
    comp.process(np.ones((1, key.shape[1])), key)
    gr = comp.gain_reduction_db
    full = 0.75 * (20 * math.log10(0.5) + 20)
    assert np.all(gr[: step_at + length] == 0.0)
    assert 0.0 < gr[step_at + length] < full
    assert np.all(np.diff(gr[step_at + length : step_at + 2 * length]) > 0)
    assert abs(gr[step_at + 2 * length - 1] - full) < 1e-9
    assert np.all(np.abs(gr[step_at + 2 * length :] - full) < 1e-9)


def test_empty_block_and_bad_input():
    comp = SidechainCompressor(FS, threshold_db=-20.0, ratio=4.0)
    assert comp.process(np.zeros((2, 0))).shape == (2, 0)
    with pytest.raises(InputError):
        comp.process(np.zeros((2, 64)), np.zeros((1, 63)))
    with pytest.raises(InputError):
        comp.process(np.zeros(64))
    for bad in (
        dict(ratio=0.5),
        dict(attack_ms=-1.0),
        dict(knee_db=-3.0),
        dict(detector="vu"),
        dict(control_interval=0),
        dict(threshold_db=math.nan),
    ):
        with pytest.raises(InputError):
            SidechainCompressor(FS, **bad)


def test_speed_report():
    seconds = 180
    rng = np.random.default_rng(0)
    main = 0.3 * rng.standard_normal((2, seconds * FS))
    key = kick_train(seconds)
    for detector in ("peak", "rms"):
        comp = SidechainCompressor(
            FS, threshold_db=-20.0, ratio=4.0, knee_db=6.0, detector=detector
        )
        begin = time.perf_counter()
        for i in range(0, main.shape[1], 8192):
            comp.process(main[:, i : i + 8192], key[:, i : i + 8192])
        elapsed = time.perf_counter() - begin
        print(
            f"SidechainCompressor {detector}: {seconds} s stereo at {FS} Hz in 8192-sample blocks: "
            f"{elapsed:.3f} s ({100 * elapsed / seconds:.3f} % of real time)"
        )

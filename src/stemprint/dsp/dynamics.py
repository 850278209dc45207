"""Sidechain-capable feed-forward compressor, bit-identical for every block size.

Signal flow (feed-forward, stereo-linked; Giannoulis, Massberg & Reiss, "Digital Dynamic Range
Compressor Design — A Tutorial and Analysis", J. Audio Eng. Soc. 60(6), 2012, hereafter *GMR*)::

    key ─► link channels ─► reduce per control interval ─► dB ─► ballistics ─► gain computer
                                                                                   │
    main ───────────────────────────────────────────────────────► × ◄── interpolate to audio rate

Notation: ``L`` = ``control_interval`` (samples), ``fs`` = ``sample_rate`` (Hz), ``T`` =
``threshold_db``, ``R`` = ``ratio``, ``W`` = ``knee_db``, ``M`` = ``makeup_db``. Interval ``k``
covers the absolute stream samples ``kL … kL + L − 1``: the grid is anchored to sample 0 of the
stream, not to the blocks, and a partial interval is carried across :meth:`process` calls.

1. **Link** the key channels per sample ``t`` (``C`` key channels)::

       peak: d[t] = max_c |key_c[t]|          rms: d[t] = (1/C) Σ_c key_c[t]²

2. **Reduce** per interval: ``v_k = max d[kL … kL+L−1]`` (peak) or the mean of ``d`` over the
   interval (rms, a mean square). The mean is summed in a fixed pairwise order (halving the
   interval), so it depends only on the interval's samples, never on the block it arrived in.

3. **Level** in dB, floored at the knee's lower edge ``F = T − W/2``::

       x_k = max(20·log10 v_k, F)   (peak)        x_k = max(10·log10 v_k, F)   (rms)

   For rms, ``10·log10`` of the mean square is ``20·log10`` of the RMS: the square root is taken
   in the log domain, after nothing but the interval mean. The floor changes nothing in the
   static curve (no gain change below ``F``) but makes ``release_ms`` mean what it says: the
   envelope decays from its peak towards ``F`` with that time constant, not towards an arbitrary
   −120 dB silence floor, which would make the release through the compression region almost
   instantaneous. With ``W = 0`` the design is equivalent (up to rounding) to smoothing the gain
   reduction in dB after the gain computer, the detector placement GMR recommend, since the gain
   reduction ``(1 − 1/R)·(x − T)`` is then a linear function of the floored level.

4. **Ballistics**: a one-pole smoother in dB run once per interval (GMR's "branching" detector)::

       y_k = a·y_{k−1} + (1 − a)·x_k,   a = a_A if x_k > y_{k−1} else a_R,
       a_A = exp(−L / (attack_ms/1000 · fs)),   a_R = exp(−L / (release_ms/1000 · fs)),

   with ``y_{−1} = F`` (no gain reduction) and ``a = 0`` for a zero time. After a step in
   ``x`` the envelope covers ``1 − 1/e`` of the step after ``attack_ms`` (``release_ms`` for a
   fall), rounded to whole intervals.

5. **Gain computer** (GMR's soft-knee static characteristic) on ``y_k``, plus makeup; the knot
   gain ``G_k`` is linear::

       g_k = 0                                       if 2(y_k − T) < −W
       g_k = (1/R − 1)·(y_k − T + W/2)² / (2W)       if 2|y_k − T| ≤ W
       g_k = T + (y_k − T)/R − y_k = (1/R − 1)(y_k − T)   if 2(y_k − T) > W
       G_k = 10^((g_k + M)/20),   G_{−1} = 10^(M/20)

6. **Interpolation** to audio rate, anchored to the grid. ``G_k`` is known once interval ``k``
   has been seen in full, i.e. at the start of interval ``k + 1``. Sample ``j`` (0 … L−1) of
   interval ``k`` gets::

       gain[kL + j] = G_{k−2}·(1 − f_j) + G_{k−1}·f_j,    f_j = (j + 1)/L,   G_{−2} = G_{−1}

   so the gain is continuous, piecewise linear, reaches each knot exactly, and is strictly causal.
   ``output_c = main_c · gain`` (the same gain on every main channel: stereo-linked).

**Latency.** The audio is not delayed: :attr:`SidechainCompressor.latency_samples` is 0 and the
engine must not compensate anything. The price is a *detector lag*: the gain reflecting interval
``k`` is reached at the end of interval ``k + 1``, between ``L`` and ``2L − 1`` samples after the
key samples that produced it (0.67–1.3 ms at 48 kHz with ``L = 32``). A design that ramps from
``G_{k−1}`` to ``G_k`` *during* interval ``k`` would need ``G_k`` before interval ``k`` has ended —
impossible when a block ends mid-interval, unless the audio is delayed by ``L`` samples.

**Determinism.** Every per-sample value is a fixed sequence of IEEE-754 operations on that
sample's inputs and on knots that depend only on the stream so far (elementwise NumPy ops, no
FMA, no reductions whose order depends on the block). The per-interval recursion runs in a Python
loop with :mod:`math` functions rather than NumPy's SIMD transcendentals, whose last bit can
depend on an element's position in the array (and so on the block size). Output is therefore
bit-identical for every block size and every run.

**Cost.** Per audio sample a few vectorised NumPy passes; per interval one loop iteration with a
``log10`` and an ``exp`` (1,500 iterations per second at 48 kHz, ``L = 32``).
"""

from __future__ import annotations

import math

import numpy as np

from stemprint.errors import InputError

DETECTORS = ("peak", "rms")
"""Valid values of the ``detector`` parameter."""

_LN10_OVER_20 = math.log(10.0) / 20.0


def _pairwise_sum_rows(a: np.ndarray) -> np.ndarray:
    """Sum each row of ``(m, L)`` ``a`` in a fixed halving order (bit-identical for any ``m``).

    NumPy's own reductions are pairwise too, but their blocking and SIMD paths are an
    implementation detail; halving by hand makes each row's result a function of that row alone.
    """
    while a.shape[1] > 1:
        width = a.shape[1]
        half = width // 2
        summed = a[:, :half] + a[:, half : 2 * half]
        if width % 2:
            summed[:, 0] += a[:, 2 * half]
        a = summed
    return a[:, 0]


class SidechainCompressor:
    """Feed-forward, stereo-linked compressor with an optional external key (sidechain).

    See the module docstring for the formulas. Parameters are fixed at construction.

    Parameters
    ----------
    sample_rate
        Sample rate in Hz (> 0).
    threshold_db
        Threshold ``T`` in dBFS (of the detector level: peak, or RMS).
    ratio
        Compression ratio ``R`` ≥ 1 (1 = no compression, ``math.inf`` = limiter).
    attack_ms, release_ms
        Time constants of the dB-domain envelope in milliseconds (≥ 0; 0 = instantaneous).
    knee_db
        Width ``W`` of the soft knee in dB (≥ 0; 0 = hard knee).
    makeup_db
        Gain added after compression, in dB.
    detector
        ``"peak"`` (max |key| per interval) or ``"rms"`` (mean square per interval).
    control_interval
        ``L``: samples per detector interval and gain knot (≥ 1).

    Attributes
    ----------
    latency_samples : int
        Always 0: the audio is not delayed (the detector lags by ``L … 2L − 1`` samples).
    gain_reduction_db : numpy.ndarray
        ``(n,)`` gain reduction of the last processed block in dB at audio rate, ≥ 0 (0 = none),
        makeup excluded. Computed on access.
    envelope_db : float
        Current envelope ``y`` in dB (after the last complete interval).
    """

    def __init__(
        self,
        sample_rate: int,
        threshold_db: float = 0.0,
        ratio: float = 1.0,
        attack_ms: float = 1.0,
        release_ms: float = 100.0,
        knee_db: float = 0.0,
        makeup_db: float = 0.0,
        detector: str = "peak",
        control_interval: int = 32,
    ) -> None:
        fix_numbers = "use finite numbers in range"
        if not sample_rate > 0:
            raise InputError(f"sample_rate must be > 0, got {sample_rate}", fix=fix_numbers)
        if not ratio >= 1.0:
            raise InputError(f"ratio must be >= 1, got {ratio}", fix="use 1 (off) … inf (limit)")
        for name, value in (("attack_ms", attack_ms), ("release_ms", release_ms)):
            if not (value >= 0.0 and math.isfinite(value)):
                raise InputError(f"{name} must be finite and >= 0, got {value}", fix=fix_numbers)
        if not (knee_db >= 0.0 and math.isfinite(knee_db)):
            raise InputError(f"knee_db must be finite and >= 0, got {knee_db}", fix=fix_numbers)
        for name, value in (("threshold_db", threshold_db), ("makeup_db", makeup_db)):
            if not math.isfinite(value):
                raise InputError(f"{name} must be finite, got {value}", fix=fix_numbers)
        if detector not in DETECTORS:
            raise InputError(
                f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}",
                fix="use 'peak' or 'rms'",
            )
        if int(control_interval) != control_interval or control_interval < 1:
            raise InputError(
                f"control_interval must be an integer >= 1, got {control_interval}",
                fix="use 32 (the default) or another power of two",
            )

        self.sample_rate = int(sample_rate)
        self.threshold_db = float(threshold_db)
        self.ratio = float(ratio)
        self.attack_ms = float(attack_ms)
        self.release_ms = float(release_ms)
        self.knee_db = float(knee_db)
        self.makeup_db = float(makeup_db)
        self.detector = detector
        self.control_interval = int(control_interval)
        self.latency_samples: int = 0
        self.timeline_lag_samples = 0

        interval = self.control_interval
        self._attack_coeff = self._coefficient(self.attack_ms)
        self._release_coeff = self._coefficient(self.release_ms)
        self._floor_db = self.threshold_db - self.knee_db / 2.0
        # dB per decade of the reduced value: amplitude (peak) or power (mean square).
        self._db_per_decade = 20.0 if detector == "peak" else 10.0
        # Linear value whose level is the floor: below it the log is skipped (and log(0) avoided).
        self._floor_value = 10.0 ** (self._floor_db / self._db_per_decade)
        self._unity_knot = math.exp(_LN10_OVER_20 * self.makeup_db)
        # Ramp weights f_j = (j + 1)/L and 1 − f_j: the last sample of an interval gets the knot
        # exactly (weights 0 and 1).
        ramp = np.arange(1, interval + 1, dtype=np.float64) / interval
        self._weight_end = ramp
        self._weight_start = 1.0 - ramp
        self.reset()

    def _coefficient(self, time_ms: float) -> float:
        """One-pole coefficient per control interval: ``exp(−L / (time_s · fs))``."""
        if time_ms == 0.0:
            return 0.0
        return math.exp(-self.control_interval / (time_ms / 1000.0 * self.sample_rate))

    def anchor_to_timeline(self, lag_samples: int) -> None:
        """Anchor the control grid to the session timeline instead of the stream's first sample.

        When the stream lags the timeline by ``lag_samples`` (latency compensation upstream),
        the grid is shifted by as much, so that interval boundaries fall on the same timeline
        samples whatever the upstream latency: the output is then the same, only later. Resets.
        """
        self.timeline_lag_samples = int(lag_samples)
        self.reset()

    def reset(self) -> None:
        """Return to the start of a stream: no gain reduction, empty carry, grid re-anchored."""
        # Pretend the stream began with `phase` silent samples so that its first grid boundary
        # falls ``timeline_lag_samples`` (mod L) into it.
        phase = -self.timeline_lag_samples % self.control_interval
        self._position = phase
        self._carry = np.zeros(phase, dtype=np.float64)
        self._envelope_db = self._floor_db
        self._knot_before = self._unity_knot  # G_{c−2}, c = intervals completed so far
        self._knot_last = self._unity_knot  # G_{c−1}
        self._last_gain = np.zeros(0, dtype=np.float64)

    @property
    def envelope_db(self) -> float:
        """Envelope ``y`` in dB after the last complete control interval (the floor at start)."""
        return self._envelope_db

    @property
    def gain_reduction_db(self) -> np.ndarray:
        """``(n,)`` gain reduction of the last block in dB at audio rate (≥ 0, makeup excluded)."""
        with np.errstate(divide="ignore"):
            return self.makeup_db - 20.0 * np.log10(self._last_gain)

    def _link(self, key: np.ndarray) -> np.ndarray:
        """Per-sample detector value of ``(C, n)`` ``key``: ``max |key_c|`` or mean ``key_c²``."""
        if self.detector == "peak":
            linked = np.abs(key[0])
            for row in key[1:]:
                np.maximum(linked, np.abs(row), out=linked)
            return linked
        linked = key[0] * key[0]
        for row in key[1:]:
            linked += row * row
        if key.shape[0] > 1:
            linked /= key.shape[0]
        return linked

    def _knots(self, values: list[float]) -> list[float]:
        """Run ballistics and gain computer over the reduced values; return the knot gains."""
        # Locals: this loop is the only per-interval Python code (≈1,500 iterations/s at 48 kHz).
        log10 = math.log10
        exp = math.exp
        floor_db = self._floor_db
        floor_value = self._floor_value
        db_per_decade = self._db_per_decade
        attack = self._attack_coeff
        release = self._release_coeff
        threshold = self.threshold_db
        half_knee = self.knee_db / 2.0
        inv_two_knee = 1.0 / (2.0 * self.knee_db) if self.knee_db > 0.0 else 0.0
        slope = 1.0 / self.ratio - 1.0
        makeup = self.makeup_db
        unity = self._unity_knot
        k = _LN10_OVER_20
        envelope = self._envelope_db
        knots: list[float] = []
        append = knots.append
        for value in values:
            level = db_per_decade * log10(value) if value > floor_value else floor_db
            if level < floor_db:
                level = floor_db
            if level > envelope:
                envelope = attack * envelope + (1.0 - attack) * level
            else:
                envelope = release * envelope + (1.0 - release) * level
            over = envelope - threshold
            if over <= -half_knee:
                append(unity)
            elif over < half_knee:
                q = over + half_knee
                append(exp(k * (slope * q * q * inv_two_knee + makeup)))
            else:
                append(exp(k * (slope * over + makeup)))
        self._envelope_db = envelope
        return knots

    def process(self, main: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
        """Compress one block of the stream.

        Parameters
        ----------
        main
            ``(channels, n)`` audio to compress, linear full scale (converted to float64).
        key
            ``(key_channels, n)`` sidechain signal on the same sample clock, or ``None`` to key
            from ``main`` itself.

        Returns
        -------
        numpy.ndarray
            ``(channels, n)`` float64: ``main`` times the stereo-linked gain.
        """
        main = np.asarray(main, dtype=np.float64)
        key = main if key is None else np.asarray(key, dtype=np.float64)
        if main.ndim != 2 or key.ndim != 2:
            raise InputError(
                f"main and key must be (channels, samples), got {main.shape} and {key.shape}",
                fix="pass 2-D arrays; a mono signal is shape (1, n)",
            )
        n = main.shape[1]
        if key.shape[1] != n:
            raise InputError(
                f"key has {key.shape[1]} samples, main has {n}",
                fix="feed the key block by block with the main signal",
            )
        if key.shape[0] < 1:
            raise InputError("key has no channels", fix="pass at least one key channel")
        if n == 0:
            self._last_gain = np.zeros(0, dtype=np.float64)
            return main.copy()

        interval = self.control_interval
        offset = self._position % interval  # samples of the current interval seen before

        # Detector: prepend the carried partial interval, reduce every complete interval.
        linked = self._link(key)
        if offset:
            linked = np.concatenate((self._carry, linked))
        complete = linked.shape[0] // interval
        grid = linked[: complete * interval].reshape(complete, interval)
        if self.detector == "peak":
            reduced = grid.max(axis=1) if complete else np.zeros(0)
        else:
            reduced = _pairwise_sum_rows(grid) / interval if complete else np.zeros(0)
        self._carry = linked[complete * interval :].copy()

        # Knots G_{c−2}, G_{c−1} (c: the interval the block starts in), then one knot per
        # interval completed in this block.
        knots = np.array(
            [self._knot_before, self._knot_last, *self._knots(reduced.tolist())],
            dtype=np.float64,
        )
        self._knot_before = float(knots[-2])
        self._knot_last = float(knots[-1])

        # The block touches intervals c … c + spans − 1; interval c + i ramps from knots[i] to
        # knots[i + 1]. Padding the block to whole intervals keeps every sample's weights on the
        # absolute grid.
        spans = (offset + n + interval - 1) // interval
        start = knots[:spans, np.newaxis]
        end = knots[1 : spans + 1, np.newaxis]
        gain = (start * self._weight_start + end * self._weight_end).reshape(-1)
        gain = gain[offset : offset + n]
        self._last_gain = gain
        self._position += n
        return main * gain

"""Null test: do the stems, summed at unity, rebuild the mix sample for sample?

Two parts:

* :class:`NullAccumulator` streams over the **whole** files (fed block by block by
  :func:`stemprint.analysis.verify.verify_package`): residual = reference − Σ stems, in float64.
  It gives the residual peak and RMS (dBFS) that decide pass/fail, the least-squares gain between
  the stem sum and the reference, and per-block energy profiles (to place the excerpt).
* :func:`diagnose_null` explains a failed null on a bounded **excerpt** (default 6 s around the
  earliest block whose residual is within :data:`EXCERPT_NEAR_MAX_DB` of the largest, plus ±1 s
  of margin for the lag search), so it costs the same for a 3-minute song and a 3-hour film.

The diagnosis fits the model ``m[n] ≈ Σᵢ gᵢ·sᵢ[n + dᵢ]``: stem ``i`` is ``dᵢ`` samples late
(negative: early) and printed at ``1/|gᵢ|`` of its level (``gᵢ < 0``: polarity-inverted). It
states only what it can show; nothing it fitted but did not confirm is stated, in a finding or
in :class:`StemFit` (so a repair that applies the report applies nothing else).

1. **Lag curves.** For stem ``i`` and its target ``tᵢ = m − Σ_{j≠i} gⱼ·sⱼ(dⱼ)`` (the reference
   minus the other stems as currently modelled, on the frames where those have samples), FFT
   cross-correlation ``cᵢ(k) = Σₙ tᵢ[n]·sᵢ[n + k]`` for ``|k| ≤ K`` gives, at every lag, the
   least-squares gain ``gᵢ(k) = cᵢ(k)/Wᵢ(k)`` and the energy it leaves,
   ``Rᵢ(k) = Tᵢ(k) − cᵢ(k)²/Wᵢ(k)``; ``Wᵢ(k)`` is the stem's energy in the shifted window,
   ``Tᵢ(k)`` the target's energy where that window lies in the stem file (zero padding is no
   evidence). Two curves follow: ``qᵢ(k) = max(Rᵢ(k), floor)/Tᵢ(k)``, the fraction left where
   the stem has samples, and ``totalᵢ(k) = max(Rᵢ(k), floor) + (T − Tᵢ(k)) + gᵢ(k)²·Oᵢ(k)``,
   the energy left over the whole excerpt: the material the lag would lose outside the stem
   file counts, and so does the stem's own material ``Oᵢ(k)`` it would place before the
   reference's start or after its end (the mix holds every stem sample). ``floor`` is the
   files' quantization noise (``LSB²/12`` per PCM file and value) plus the power of an RMS
   :data:`LAG_FLOOR_BELOW_THRESHOLD_DB` below the threshold: fits that both null are equal.
2. **Chance level.** ``cᵢ = median_k cᵢ'(k)²/Wᵢ(k)`` for the correlation ``cᵢ'`` of the stem
   with what a fit leaves where it has samples: the energy a fit at a random lag explains. An
   improvement is *significant* when it exceeds :data:`SIGNIFICANCE` times that, and *clear*
   when it lowers the residual by a ratio (:data:`LAG_MARGIN_DB` for lags, :data:`CONFIRM_DB`
   for corrections); either counts, so a real fault is found under a large unexplained
   residual (a missing stem, a limiter) and a chance correlation is not.
3. **Lag decision.** Candidates are the distinct peaks of ``1 − q`` (local minima of ``q`` at
   least a main lobe apart, the :data:`MAX_PEAKS` best by ``total``) and the current lag (0 at
   first). The candidate with the least ``total`` wins (it explains the most and loses the
   least material); candidates within the chance scale of it tie (``c·S + 2·sqrt(c·S·E)``: the
   cross terms of what a fit explains, ``E``, with what it leaves, at chance level ``c`` and
   ``S =`` :data:`SIGNIFICANCE`), and a tied candidate that another fits clearly or
   significantly better on their common frames drops out (a lag contradicted by the stem's own
   samples, such as its zero lead-in, loses to one that only leaves material past the file's
   end). Periodic material (a 55 Hz sine, a chord repeating every second) can leave several:
   lags a period apart fit equally where the stem has samples. The current lag is **kept**
   when it is among them, or fits as well as the single winner on their common frames: when
   lag 0 is among the equal fits, no offset is claimed. Otherwise a single winner is taken,
   and several make the offset **ambiguous** (never stated as a fact).
4. **Separation.** Each round every stem proposes its best ``(lag, gain)``; the proposal that
   lowers ``Σ(m − model)²`` the most is applied if it lowers it clearly or significantly and
   changes the model by at least the threshold at its peak. Rounds repeat until no proposal
   qualifies: the largest fault goes first, so the smaller ones are then measured on a clean
   target (several simultaneous faults are separated, not blended). A stem whose lag is
   ambiguous proposes nothing, not even a gain at a wrong lag.
5. **Confirmation.** A joint least-squares fit of one gain per stem at the chosen lags; then
   every aspect it would state (an offset, a polarity inversion, a stem gain beyond
   :data:`GAIN_TOLERANCE_DB`, or one common gain of all stems) is undone alone. It is stated
   only if undoing it raises the residual energy clearly or significantly and changes the model
   by at least the threshold at its peak; aspects that fail are reset to nominal, weakest first.
6. **What is left.** If the reference's gain relative to the fitted model falls as the level
   rises, consistently (per sample, or per 20 ms window, by more than :data:`DYNAMICS_DROP_DB`
   at :data:`DYNAMICS_CONSISTENCY` of the loud samples or windows), the reference has dynamics
   processing; gain findings are then symptoms and are withheld, as they are while a stem's lag
   is ambiguous (its misplaced material biases every gain fit). Otherwise a residual still at
   or above the threshold is: an ambiguous offset, when a stem's lag could not be decided;
   material a stem's file does not hold, when it lies entirely in that stem's digital silence
   at its file's start or end and begins at the cut; a missing stem, when no stem at any lag
   explains more than :data:`MISSING_MAX_EXPLAINED` of it; else several faults that cannot be
   separated. A residual only where a shifted stem has no samples is material lost from that
   file.

Energies are compared on the frames where every shifted stem lies inside its file. RMS values
are ``20·log10(sqrt(mean(x²)))`` over all channels and samples (a full-scale square wave is
0 dBFS RMS; a full-scale sine −3.01 dBFS RMS). A one-channel stem of a multichannel reference
is added to every channel (mono at unity), as the null itself does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .audio import AudioInfo, Float64Array, amplitude_to_db, power_to_db, read_excerpt
from .findings import Finding, Severity, to_jsonable

#: Default pass threshold: the residual peak must stay below this level (dBFS).
DEFAULT_NULL_THRESHOLD_DBFS = -60.0
#: Default length of the diagnosis excerpt (seconds).
EXCERPT_SECONDS = 6.0
#: Default largest time offset searched by the diagnosis (seconds, each way).
MAX_LAG_SECONDS = 1.0
#: The excerpt goes to the earliest block with a residual energy this close to the largest (dB).
EXCERPT_NEAR_MAX_DB = 1.0
#: Per-stem gains closer than this to 0 dB are not reported (dB).
GAIN_TOLERANCE_DB = 0.05
#: Gain drop at high levels that marks dynamics processing (dB).
DYNAMICS_DROP_DB = 0.5
#: Fraction of the loud samples (windows) whose gain must be below the typical one for a drop
#: to count as dynamics processing.
DYNAMICS_CONSISTENCY = 0.75
#: A lag fits clearly better than another when it leaves this much less residual (dB).
LAG_MARGIN_DB = 1.0
#: In lag decisions, residuals with an RMS this far below the threshold count as a null (dB).
LAG_FLOOR_BELOW_THRESHOLD_DB = 20.0
#: A correction lowers the residual clearly when it lowers its energy this much (dB).
CONFIRM_DB = 0.5
#: A residual is a missing stem only if no stem, at any lag, explains more of it than this.
MISSING_MAX_EXPLAINED = 0.1
#: An improvement is real, not chance, when it is this many times the chance level: the median
#: energy the stem explains of the leftover at any lag.
SIGNIFICANCE = 100.0
#: The chance level is the median over every this many lags (a sample is plenty).
CHANCE_LAG_STEP = 4
#: Relative float64 floor of the residual energies (rounding of the FFT correlation).
FLOAT_FLOOR = 1e-12
#: A zero-filled edge is lost material when the leftover starts within this of the cut (s).
CUT_SECONDS = 0.005
#: Rounds of the separation at most (each applies one correction).
MAX_ROUNDS = 24
#: Distinct peaks a lag decision weighs at most (periodic material has hundreds).
MAX_PEAKS = 64
#: Blocking diagnoses: the fit is not trustworthy enough to repair from (see ``repair``).
AMBIGUOUS_CODES = frozenset(
    {"null.offset_ambiguous", "null.not_separable", "null.unexplained", "null.reference_clipped"}
)


@dataclass
class StemFit:
    """What the diagnosis found for one stem against the reference.

    ``offset_samples`` and ``gain`` are the **stated** model: they differ from nominal (0, 1.0)
    exactly where a finding says so, so a repair that applies them applies the report.

    Attributes
    ----------
    file
        Label of the stem file.
    offset_samples
        Stated time offset of the stem: positive when the stem is late (its material comes that
        many samples after the reference's), negative when early. To fix, move it
        ``offset_samples`` earlier.
    gain
        Stated linear factor the stem needs to match its part of the reference (1.0 = right
        level, negative = polarity-inverted).
    correlation
        Normalised correlation of the stem at the stated lag with its target (−1 … +1).
    error_peak_dbfs
        Peak of the stated correction ``gain·stem(shifted) − stem`` on the excerpt (dBFS).
    fitted_gain
        Joint least-squares gain at the stated lag, before confirmation (measurement only).
    lag_margin_db
        Peak ratio of the lag decision: how much more residual energy the best lag outside the
        chosen lag's main lobe leaves (dB); ``None`` if the stem was not analysed.
    offset_ambiguous
        Several distinct lags fit equally well and the current one is not among them.
    offset_candidates_samples
        Those lags (samples, best first), when ``offset_ambiguous``.
    confirm_db
        Per stated aspect (``offset``, ``polarity``, ``gain``, ``common_gain``): how much the
        residual energy rises when that aspect alone is undone (dB).
    """

    file: str
    offset_samples: int = 0
    gain: float = 1.0
    correlation: float = 0.0
    error_peak_dbfs: float = float("-inf")
    fitted_gain: float = 1.0
    lag_margin_db: float | None = None
    offset_ambiguous: bool = False
    offset_candidates_samples: list[int] = field(default_factory=list)
    confirm_db: dict[str, float] = field(default_factory=dict)

    @property
    def hot_db(self) -> float:
        """How much louder the stem is printed than its part in the reference (dB)."""
        return -amplitude_to_db(abs(self.gain)) if self.gain != 0 else float("inf")


@dataclass
class NullResult:
    """Outcome of nulling the stems against one reference (the mix or the pre-master).

    Attributes
    ----------
    reference
        Label of the reference file.
    reference_role
        ``mix`` or ``premaster``.
    threshold_dbfs
        Pass threshold on the residual peak (dBFS).
    length_samples
        Samples per channel compared (the longest file; shorter files count as zero-padded).
    residual_peak_dbfs, residual_rms_dbfs
        Peak and RMS of reference − Σ stems over the whole files (dBFS).
    reference_peak_dbfs, reference_rms_dbfs
        The reference's own peak and RMS (dBFS), for scale.
    stems_gain_db
        Least-squares level of the stem sum relative to the reference (dB; −1.5 means the stems
        sum 1.5 dB below it).
    passed
        ``residual_peak_dbfs < threshold_dbfs``.
    decides_verdict
        Whether this null decides the package verdict (the pre-master null does when there is
        one; the mix null is then reported for information).
    excerpt_start_seconds, excerpt_seconds
        Where the diagnosis looked, if it ran.
    dynamics_drop_db
        Gain of the reference relative to the stem model at the loudest moments minus at
        typical levels (dB; strongly negative under a limiter), if diagnosed.
    model_residual_peak_dbfs
        Peak of reference − stated model on the analysed frames of the excerpt (dBFS), if
        diagnosed: what the stated findings leave unexplained (not in :meth:`to_dict`, whose
        keys are the same whether or not a null was diagnosed, apart from the diagnosis keys).
    stems
        Per-stem fit, if diagnosed.
    diagnoses
        Plain-words explanations of the failure.
    skipped_reason
        Why the null test did not run (mismatched sample rates or channel counts), if so.
    """

    reference: str
    reference_role: str
    threshold_dbfs: float
    length_samples: int = 0
    residual_peak_dbfs: float = float("-inf")
    residual_rms_dbfs: float = float("-inf")
    reference_peak_dbfs: float = float("-inf")
    reference_rms_dbfs: float = float("-inf")
    stems_gain_db: float = 0.0
    passed: bool = False
    decides_verdict: bool = True
    excerpt_start_seconds: float | None = None
    excerpt_seconds: float | None = None
    dynamics_drop_db: float | None = None
    model_residual_peak_dbfs: float | None = None
    stems: list[StemFit] = field(default_factory=list)
    diagnoses: list[Finding] = field(default_factory=list)
    skipped_reason: str | None = None

    def offsets(self) -> dict[str, int]:
        """Stated time offset per stem label (samples, positive = late)."""
        return {s.file: s.offset_samples for s in self.stems}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict with stable keys."""
        return to_jsonable(
            {
                "reference": self.reference,
                "reference_role": self.reference_role,
                "threshold_dbfs": self.threshold_dbfs,
                "passed": self.passed,
                "decides_verdict": self.decides_verdict,
                "skipped_reason": self.skipped_reason,
                "length_samples": self.length_samples,
                "residual_peak_dbfs": self.residual_peak_dbfs,
                "residual_rms_dbfs": self.residual_rms_dbfs,
                "reference_peak_dbfs": self.reference_peak_dbfs,
                "reference_rms_dbfs": self.reference_rms_dbfs,
                "stems_gain_db": self.stems_gain_db,
                "excerpt_start_seconds": self.excerpt_start_seconds,
                "excerpt_seconds": self.excerpt_seconds,
                "dynamics_drop_db": self.dynamics_drop_db,
                "stems": [
                    {
                        "file": s.file,
                        "offset_samples": s.offset_samples,
                        "gain": s.gain,
                        "hot_db": s.hot_db,
                        "correlation": s.correlation,
                        "error_peak_dbfs": s.error_peak_dbfs,
                        "fitted_gain": s.fitted_gain,
                        "lag_margin_db": s.lag_margin_db,
                        "offset_ambiguous": s.offset_ambiguous,
                        "offset_candidates_samples": list(s.offset_candidates_samples),
                        "confirm_db": dict(s.confirm_db),
                    }
                    for s in self.stems
                ],
                "diagnoses": [d.to_dict() for d in self.diagnoses],
            }
        )


def _dot(a: Float64Array, b: Float64Array) -> float:
    """Inner product of two 1-D arrays without BLAS (OpenBLAS threads large dots, which only
    thrashes next to other busy cores)."""
    return float(np.einsum("i,i->", a, b))


class NullAccumulator:
    """Streams reference and stem-sum blocks and accumulates the null statistics.

    Parameters
    ----------
    block_frames
        Size of the blocks that will be fed (for the energy profile used to place the excerpt).
    """

    def __init__(self, block_frames: int) -> None:
        self.block_frames = block_frames
        self.residual_peak = 0.0
        self.residual_sumsq = 0.0
        self.reference_peak = 0.0
        self.reference_sumsq = 0.0
        self.sum_sumsq = 0.0
        self.cross = 0.0
        self.values = 0
        self.frames = 0
        self.block_energy: list[float] = []  # reference energy per block
        self.residual_block_energy: list[float] = []  # residual energy per block

    def add(self, reference: Float64Array, stem_sum: Float64Array) -> None:
        """Add one block of reference and of Σ stems, both float64 ``(channels, samples)``."""
        residual = reference - stem_sum
        if residual.size:
            self.residual_peak = max(self.residual_peak, float(np.abs(residual).max()))
            self.reference_peak = max(self.reference_peak, float(np.abs(reference).max()))
        r = residual.ravel()
        m = reference.ravel()
        s = stem_sum.ravel()
        residual_energy = _dot(r, r)
        self.residual_sumsq += residual_energy
        self.residual_block_energy.append(residual_energy)
        ref_energy = _dot(m, m)
        self.reference_sumsq += ref_energy
        self.sum_sumsq += _dot(s, s)
        self.cross += _dot(m, s)
        self.values += r.size
        self.frames += reference.shape[1]
        self.block_energy.append(ref_energy)

    def result(
        self, reference: str, role: str, threshold_dbfs: float, decides_verdict: bool
    ) -> NullResult:
        """Return the whole-file null numbers (no diagnosis yet)."""
        n = max(self.values, 1)
        gain = self.cross / self.sum_sumsq if self.sum_sumsq > 0 else 1.0
        peak_dbfs = amplitude_to_db(self.residual_peak)
        return NullResult(
            reference=reference,
            reference_role=role,
            threshold_dbfs=threshold_dbfs,
            length_samples=self.frames,
            residual_peak_dbfs=peak_dbfs,
            residual_rms_dbfs=power_to_db(self.residual_sumsq / n),
            reference_peak_dbfs=amplitude_to_db(self.reference_peak),
            reference_rms_dbfs=power_to_db(self.reference_sumsq / n),
            stems_gain_db=-amplitude_to_db(abs(gain)) if gain != 0 else float("-inf"),
            passed=bool(peak_dbfs < threshold_dbfs),
            decides_verdict=decides_verdict,
        )

    def excerpt_center(self, common_frames: int | None = None) -> int:
        """Where to diagnose: centre (frames) of the earliest block whose residual energy is
        within :data:`EXCERPT_NEAR_MAX_DB` of the largest.

        The residual is largest where the fault shows (the offset stem plays, the limiter
        works, the missing stem plays). Among blocks about as large, the earliest: a file's
        start holds its lead-in (a late stem's leading zeros), the evidence that decides the
        offset of material that repeats (a sustained tone is the same in every block). Blocks
        past ``common_frames`` (the shortest file) are skipped, so a length mismatch does not
        pull the excerpt onto the zero-padded tail. Falls back to the block where the reference
        is loudest.
        """
        energy = np.asarray(self.residual_block_energy)
        if common_frames is not None:
            usable = max(common_frames // self.block_frames, 1)
            energy = energy[:usable]
        if energy.size == 0:
            return 0
        if not np.any(energy > 0):
            energy = np.asarray(self.block_energy[: energy.size])
        near = energy >= energy.max() * 10.0 ** (-EXCERPT_NEAR_MAX_DB / 10.0)
        k = int(np.argmax(near))  # the first block near the maximum
        return k * self.block_frames + self.block_frames // 2


def _fast_len(n: int) -> int:
    """Smallest 2·3·5-smooth integer ≥ n (fast FFT size)."""
    best = 1 << max(int(n - 1).bit_length(), 0)
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _bin_gain(m: Float64Array, p: Float64Array, mask: np.ndarray) -> float | None:
    pp = _dot(p[mask], p[mask])
    if pp <= 0 or np.count_nonzero(mask) < 50:
        return None
    return _dot(m[mask], p[mask]) / pp


def _dynamics_drop_db(m: Float64Array, p: Float64Array, sample_rate: int) -> float | None:
    """How much the reference's gain relative to the model ``p`` falls at high levels (dB).

    Two views, the stronger wins: per sample (soft clippers, instantaneous limiting), comparing
    the least-squares gain of the top 1 % / 0.1 % of ``|p|`` with the 20-80 % band; and per 20 ms
    window (limiters and compressors with attack/release), comparing the loudest 10 % of windows
    with the median band of windows. A view counts only when the drop is consistent: at least
    :data:`DYNAMICS_CONSISTENCY` of its loud samples (windows) have a gain below the typical one.
    Dynamics processing lowers nearly all of them; material missing from the model, which is
    unrelated to its level, lowers about half (a tone's phase at a few drum hits is no limiter).

    Parameters
    ----------
    m, p
        Reference and model, float64 ``(channels, samples)``.
    """
    mf, pf = m.ravel(), p.ravel()
    mag = np.abs(pf)
    if not np.any(mag > 0):
        return None
    drops: list[float] = []
    q20, q80, q99, q999 = np.quantile(mag, [0.2, 0.8, 0.99, 0.999])
    body = _bin_gain(mf, pf, (mag >= q20) & (mag <= q80))
    if body and body > 0:
        for q in (q99, q999):
            loud = (mag >= q) & (mag > 0)
            top = _bin_gain(mf, pf, loud)
            if top and top > 0 and np.mean(mf[loud] / pf[loud] < body) >= DYNAMICS_CONSISTENCY:
                drops.append(amplitude_to_db(top / body))
    win = max(sample_rate // 50, 1)
    nwin = m.shape[1] // win
    if nwin >= 20:
        mw = m[:, : nwin * win].reshape(m.shape[0], nwin, win)
        pw = p[:, : nwin * win].reshape(p.shape[0], nwin, win)
        pp = np.einsum("cwn,cwn->w", pw, pw)
        mp = np.einsum("cwn,cwn->w", mw, pw)
        live = pp > 0
        if np.count_nonzero(live) >= 20:
            level = pp[live]
            gains = mp[live] / pp[live]
            lo, hi, top = np.quantile(level, [0.3, 0.7, 0.9])
            mid_mask = (level >= lo) & (level <= hi)
            top_mask = level >= top
            g_mid = float(np.sum(mp[live][mid_mask]) / np.sum(level[mid_mask]))
            g_top = float(np.sum(mp[live][top_mask]) / np.sum(level[top_mask]))
            consistent = np.mean(gains[top_mask] < g_mid) >= DYNAMICS_CONSISTENCY
            if g_mid > 0 and g_top > 0 and np.std(gains) > 0 and consistent:
                drops.append(amplitude_to_db(g_top / g_mid))
    return min(drops) if drops else None


Span = tuple[int, int]


@dataclass
class _Excerpt:
    """The analysed excerpt and what every lag search on it reuses.

    A *span* ``(a, b)`` is a range of excerpt frames a lag search is restricted to: the frames
    where every other stem, at its current lag, lies inside its file. Material another stem
    lost outside its file is no evidence about this stem's lag.

    Attributes
    ----------
    sample_rate
        Hz.
    start, frames
        First frame and length of the excerpt (frames of the reference).
    lag
        Largest lag searched each way (samples).
    reference
        ``(channels, frames)``.
    stems
        ``(channels, frames + 2·lag)`` each, from ``lag`` frames before the excerpt, zero
        outside the file; one-channel stems already spread to every channel.
    stem_lengths
        Length of each stem file (frames).
    reference_length
        Length of the reference file (frames).
    nfft
        FFT size of the lag searches.
    spectra
        ``rfft`` of each stem excerpt.
    cumulative_power
        Per stem, ``Σ`` of its power over its first ``j`` frames, ``j = 0 … frames + 2·lag``.
    floor_per_value
        Quantization noise power of the files, summed, per value (``LSB²/12`` per PCM file).
    lag_floor_per_value
        ``floor_per_value`` plus the power of an RMS :data:`LAG_FLOOR_BELOW_THRESHOLD_DB`
        below the threshold: lag fits leaving less than that are equal (both null).
    """

    sample_rate: int
    start: int
    frames: int
    lag: int
    reference: Float64Array
    stems: list[Float64Array]
    stem_lengths: list[int]
    reference_length: int
    nfft: int
    spectra: list[np.ndarray]
    cumulative_power: list[Float64Array]
    floor_per_value: float
    lag_floor_per_value: float
    _self_corr: dict[tuple[int, int, int, int], Float64Array] = field(default_factory=dict)
    _bounds: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _windows: dict[tuple[int, int, int], Float64Array] = field(default_factory=dict)
    _usable: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict)
    _outside: dict[int, Float64Array] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        """Channels of the reference."""
        return int(self.reference.shape[0])

    @property
    def whole(self) -> Span:
        """The span of the whole excerpt."""
        return 0, self.frames

    def shifted(self, i: int, offset: int) -> Float64Array:
        """Stem ``i`` as it lines up with the excerpt when it is ``offset`` samples late."""
        o = self.lag + offset
        return self.stems[i][:, o : o + self.frames]

    def bounds(self, i: int, offset: Any, span: Span | None = None) -> tuple[Any, Any]:
        """Frames ``[lo, hi)`` of ``span`` (default: the excerpt) where stem ``i`` shifted by
        ``offset`` lies in its file."""
        a, b = span or self.whole
        lo = np.clip(-self.start - offset, a, b)
        hi = np.clip(self.stem_lengths[i] - self.start - offset, a, b)
        return lo, np.maximum(hi, lo)

    def lag_bounds(self, i: int, span: Span) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`bounds` of stem ``i`` for every lag ``k = −lag … lag`` (cached)."""
        key = (i, *span)
        if key not in self._bounds:
            self._bounds[key] = self.bounds(i, np.arange(-self.lag, self.lag + 1), span)
        return self._bounds[key]

    def window_energy(self, i: int, span: Span) -> Float64Array:
        """``Wᵢ(k)``: stem ``i``'s energy on the frames of ``span``, shifted by every lag
        (cached)."""
        key = (i, *span)
        if key not in self._windows:
            a, b = span
            j = np.arange(2 * self.lag + 1)
            cum = self.cumulative_power[i]
            self._windows[key] = cum[j + b] - cum[j + a]
        return self._windows[key]

    def outside_reference(self, i: int) -> Float64Array:
        """Per lag, the energy of stem ``i``'s material (in the ±lag margin) that the lag would
        place before the reference's start or after its end (cached)."""
        if i not in self._outside:
            k = np.arange(-self.lag, self.lag + 1)
            cum = self.cumulative_power[i]
            n = cum.size - 1
            first = self.lag + k  # ext index of the window's first frame
            before = np.clip(k - self.start + self.lag, 0, first)
            after = np.clip(
                self.reference_length + k - self.start + self.lag, first + self.frames, n
            )
            self._outside[i] = (cum[before] - cum[0]) + (cum[n] - cum[after])
        return self._outside[i]

    def usable(self, i: int, span: Span) -> np.ndarray:
        """Lags whose window lies in the file over at least half of ``span`` and holds
        material (index ``k + lag``; cached)."""
        key = (i, *span)
        if key not in self._usable:
            lo, hi = self.lag_bounds(i, span)
            enough = hi - lo >= max((span[1] - span[0]) // 2, 1)
            self._usable[key] = enough & (self.window_energy(i, span) > 0)
        return self._usable[key]

    def spectrum(self, x: Float64Array, span: Span | None = None) -> np.ndarray:
        """``rfft`` at the lag-search size of a ``(channels, frames)`` buffer, zero outside
        ``span``."""
        if span is not None and span != self.whole:
            masked = np.zeros_like(x)
            masked[:, span[0] : span[1]] = x[:, span[0] : span[1]]
            x = masked
        return np.fft.rfft(x, self.nfft, axis=1)

    def correlate(self, i: int, target_spectrum: np.ndarray) -> Float64Array:
        """``c(k) = Σ_c Σₙ t[c, n]·sᵢ[c, n + k]`` for ``k = −lag … lag`` (index ``k + lag``)."""
        spec = np.einsum("cf,cf->f", np.conj(target_spectrum), self.spectra[i])
        return np.fft.irfft(spec, self.nfft)[: 2 * self.lag + 1]

    def self_correlation(self, i: int, offset: int, span: Span) -> Float64Array:
        """:meth:`correlate` of stem ``i`` shifted by ``offset`` (on ``span``) with itself."""
        key = (i, offset, *span)
        if key not in self._self_corr:
            spectrum = self.spectrum(self.shifted(i, offset), span)
            self._self_corr[key] = self.correlate(i, spectrum)
        return self._self_corr[key]


@dataclass
class _LagChoice:
    """Outcome of one lag decision: ``kept`` (the current lag is among the best fits), ``moved``
    (a new lag, unambiguous) or ``ambiguous`` (several distinct lags fit equally)."""

    lag: int
    status: str
    margin_db: float | None = None
    candidates: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Aspect:
    """One statement the diagnosis could make: ``offset``, ``polarity`` or ``gain`` of one stem,
    or ``common_gain`` of all fitted stems."""

    kind: str
    stems: tuple[int, ...]


def _energy(x: Float64Array, lo: int, hi: int) -> float:
    """``Σ x²`` over frames ``[lo, hi)`` of a ``(channels, frames)`` buffer."""
    part = x[:, lo:hi]
    return float(np.einsum("ij,ij->", part, part))


def _peak(x: Float64Array, lo: int, hi: int) -> float:
    part = x[:, lo:hi]
    return float(np.abs(part).max()) if part.size else 0.0


def _read(info: AudioInfo, start: int, frames: int, channels: int) -> Float64Array:
    """Excerpt of one file with the reference's channels (a mono file goes to every channel)."""
    x = read_excerpt(info, start, frames)
    if x.shape[0] == 1 and channels > 1:
        x = np.ascontiguousarray(np.broadcast_to(x, (channels, frames)))
    if x.shape[0] != channels:
        raise ValueError(f"{info.path.name} has {x.shape[0]} channels, the reference {channels}")
    return x


def _quantization_power(info: AudioInfo) -> float:
    """Noise power per value of a PCM encoding, ``LSB²/12`` (0 for floating point)."""
    bits = info.bit_depth
    if info.is_float or bits is None:
        return 0.0
    return float((2.0 ** -(bits - 1)) ** 2 / 12.0)


def _excerpt(
    reference: AudioInfo,
    stems: list[tuple[str, AudioInfo]],
    start: int,
    frames: int,
    lag: int,
    threshold_dbfs: float,
) -> _Excerpt:
    channels = reference.channels
    ext = [_read(info, start - lag, frames + 2 * lag, channels) for _, info in stems]
    nfft = _fast_len(frames + 2 * lag)
    cumulative = [np.concatenate([[0.0], np.cumsum(np.einsum("ij,ij->j", x, x))]) for x in ext]
    quantization = _quantization_power(reference) + sum(
        _quantization_power(info) for _, info in stems
    )
    return _Excerpt(
        sample_rate=reference.sample_rate,
        start=start,
        frames=frames,
        lag=lag,
        reference=_read(reference, start, frames, channels),
        stems=ext,
        stem_lengths=[info.length_samples for _, info in stems],
        reference_length=reference.length_samples,
        nfft=nfft,
        spectra=[np.fft.rfft(x, nfft, axis=1) for x in ext],
        cumulative_power=cumulative,
        floor_per_value=quantization,
        lag_floor_per_value=quantization
        + 10.0 ** ((threshold_dbfs - LAG_FLOOR_BELOW_THRESHOLD_DB) / 10.0),
    )


def _unexplained(
    ex: _Excerpt, i: int, target: Float64Array, corr: Float64Array, span: Span
) -> tuple[Float64Array, Float64Array]:
    """What stem ``i`` at lag ``k`` leaves of ``target`` (zero outside ``span``), for
    ``k = −lag … lag``.

    Returns
    -------
    q, total
        ``q``: fraction of the target's energy left unexplained where the shifted stem lies in
        its file (``inf`` where that window covers less than half the span or holds nothing);
        ``total``: energy left over the whole span, counting the target outside the window
        (the material that lag would lose) and the stem's material that the lag would place
        before the reference's start or after its end (the mix holds every stem sample) as
        unexplained.
    """
    lo, hi = ex.lag_bounds(i, span)
    frames = hi - lo
    power = np.einsum("ij,ij->j", target, target)
    cum = np.concatenate([[0.0], np.cumsum(power)])
    t_energy = cum[hi] - cum[lo]
    w = ex.window_energy(i, span)
    ok = ex.usable(i, span) & (t_energy > 0)
    explained = np.divide(corr**2, w, out=np.zeros_like(w), where=w > 0)
    floor = ex.lag_floor_per_value * ex.channels * frames + FLOAT_FLOOR * t_energy
    left = np.maximum(t_energy - explained, floor)
    q = np.where(ok, left / np.where(ok, t_energy, 1.0), np.inf)
    gain = np.divide(corr, w, out=np.zeros_like(w), where=w > 0)
    misplaced = gain**2 * ex.outside_reference(i)  # stem material the mix cannot hold there
    return q, left + (cum[-1] - t_energy) + misplaced


def _chance(ex: _Excerpt, i: int, corr: Float64Array, span: Span) -> float:
    """Chance level: the median energy stem ``i`` explains, over its usable lags, of the signal
    (on ``span``) whose correlation with it is ``corr`` (a fit at a random lag explains about
    this much)."""
    u = np.flatnonzero(ex.usable(i, span))[::CHANCE_LAG_STEP]  # a sample of lags is plenty
    if not u.size:
        return 0.0
    return float(np.median(corr[u] ** 2 / ex.window_energy(i, span)[u]))


def _leftover_chance(
    ex: _Excerpt,
    i: int,
    target: Float64Array,
    corr: Float64Array,
    offset: int,
    gain: float,
    span: Span,
) -> float:
    """Chance level of what ``gain`` × stem ``i`` at ``offset`` leaves of ``target``, on the
    frames of ``span`` where that window has samples: material the lag loses outside the file
    is not chance (a periodic stem's lost lead-in correlates with it at every lag)."""
    lo, hi = (int(x) for x in ex.bounds(i, offset, span))
    if (lo, hi) == span:  # nothing lost: the leftover's correlation is corr − gain·self
        return _chance(ex, i, corr - gain * ex.self_correlation(i, offset, span), span)
    sub = (lo, hi)
    left = _masked(target - gain * ex.shifted(i, offset), sub)
    return _chance(ex, i, ex.correlate(i, ex.spectrum(left)), sub)


def _main_lobe(q: Float64Array, j: int) -> tuple[int, int]:
    """Lags ``[lo, hi)`` around ``j`` where the explained fraction stays ≥ half its peak."""
    half = 0.5 * (1.0 - q[j])
    inside = np.isfinite(q) & (1.0 - q >= half)
    left = np.flatnonzero(~inside[:j])
    right = np.flatnonzero(~inside[j + 1 :])
    lo = int(left[-1]) + 1 if left.size else 0
    hi = j + 1 + int(right[0]) if right.size else q.size
    return lo, hi


def _peak_margin_db(q: Float64Array, j: int) -> float | None:
    """Peak ratio at lag index ``j``: residual of the best lag outside its main lobe over its own
    (dB). 0 when no lag lies outside the lobe (the curve has no distinct peak); ``None`` when
    lag ``j`` itself cannot be judged."""
    if not np.isfinite(q[j]):
        return None
    lo, hi = _main_lobe(q, j)
    outside = np.isfinite(q)
    outside[lo:hi] = False
    if not outside.any():
        return 0.0
    return float(10.0 * np.log10(q[outside].min() / q[j]))


def _candidate_peaks(q: Float64Array, total: Float64Array, j: int) -> list[int]:
    """Lag indices of the distinct peaks of the fit, best ``total`` first (``j``, the least
    ``q``, included).

    A distinct peak is a local minimum of ``q`` at least the main lobe's width of ``j`` away
    from every peak already taken (in ``total`` order), so that ripple inside one lobe is one
    peak; at most :data:`MAX_PEAKS` are taken. ``q`` only locates peaks: it is unfair between
    lags whose windows cover differently polluted frames, so ``total`` ranks them.
    """
    lo, hi = _main_lobe(q, j)
    width = max(hi - lo, 1)
    qq = np.where(np.isfinite(q), q, np.inf)
    inner = (qq[1:-1] <= qq[:-2]) & (qq[1:-1] <= qq[2:]) & np.isfinite(qq[1:-1])
    idx = np.flatnonzero(inner) + 1
    idx = idx[(idx < lo) | (idx >= hi)]
    if idx.size > 8 * MAX_PEAKS:  # the best by total are the ones that can win
        idx = idx[np.argpartition(total[idx], 8 * MAX_PEAKS)[: 8 * MAX_PEAKS]]
    taken = [j]
    for p in idx[np.argsort(total[idx], kind="stable")]:
        if len(taken) >= MAX_PEAKS:
            break
        if min(abs(int(p) - t) for t in taken) >= width:
            taken.append(int(p))
    return sorted(taken, key=lambda p: float(total[p]))


def _fit_left(ex: _Excerpt, i: int, target: Float64Array, k: int, lo: int, hi: int) -> float:
    """Energy the least-squares fit of stem ``i`` at lag ``k`` leaves of ``target[lo:hi]``."""
    s, t = ex.shifted(i, k)[:, lo:hi], target[:, lo:hi]
    ss, ts = float(np.einsum("ij,ij->", s, s)), float(np.einsum("ij,ij->", t, s))
    tt = float(np.einsum("ij,ij->", t, t))
    return max(tt - ts * ts / ss, 0.0) if ss > 0 else tt


def _current_holds(
    ex: _Excerpt,
    i: int,
    target: Float64Array,
    current: int,
    other: int,
    chance: float,
    span: Span,
) -> bool:
    """Whether lag ``current`` fits ``target`` as well as lag ``other``.

    Both are measured on the frames of ``span`` where both windows lie in the file (the same
    frames, so a residual unevenly spread in time favours neither). ``other`` is better when it
    leaves :data:`LAG_MARGIN_DB` less residual (a clear drop), or explains more by at least
    :data:`SIGNIFICANCE` times the chance level (a real gain under a large leftover).
    """
    a0, b0 = (int(x) for x in ex.bounds(i, current, span))
    a1, b1 = (int(x) for x in ex.bounds(i, other, span))
    lo, hi = max(a0, a1), min(b0, b1)
    if hi - lo < max((span[1] - span[0]) // 4, 1):
        return True  # not comparable on enough frames: claim nothing new
    floor = ex.lag_floor_per_value * ex.channels * (hi - lo)
    kept = _fit_left(ex, i, target, current, lo, hi)
    if kept <= floor:
        return True  # the current lag already nulls here
    moved = _fit_left(ex, i, target, other, lo, hi)
    clear = kept > 10.0 ** (LAG_MARGIN_DB / 10.0) * max(moved, floor)
    significant = kept - moved > max(SIGNIFICANCE * chance, floor)
    return not (clear or significant)


def _winners(
    ex: _Excerpt,
    i: int,
    target: Float64Array,
    corr: Float64Array,
    peaks: list[int],
    total: Float64Array,
    reference: int,
    span: Span,
) -> tuple[float, list[int]]:
    """Chance level of what candidate ``reference`` leaves, and the candidates (lag indices)
    that tie with the least total on that scale and that no other fits better in-file."""
    w = ex.window_energy(i, span)[reference]
    chance = _leftover_chance(ex, i, target, corr, reference - ex.lag, corr[reference] / w, span)
    # Two totals differ by chance through the cross terms of what they explain with what is
    # left: about 2·sqrt(explained·chance) each, so a tie is judged on that scale.
    explained = float(corr[reference]) ** 2 / w
    tolerance = (
        SIGNIFICANCE * chance
        + 2.0 * np.sqrt(SIGNIFICANCE * chance * explained)
        + ex.lag_floor_per_value * ex.channels * ex.frames
    )
    least = min(float(total[p]) for p in peaks)
    tied = [p - ex.lag for p in peaks if total[p] - least <= tolerance]
    return chance, [p + ex.lag for p in _best_fitting(ex, i, target, tied, chance, span)]


def _best_fitting(
    ex: _Excerpt, i: int, target: Float64Array, lags: list[int], chance: float, span: Span
) -> list[int]:
    """Among ``lags`` (equal in total), those no other fits clearly or significantly better on
    their common frames: a tournament (the champion meets each in turn), then every lag that
    holds against the champion. Linear in ``len(lags)``."""
    champion = lags[0]
    for lag in lags[1:]:
        if not _current_holds(ex, i, target, champion, lag, chance, span):
            champion = lag
    return [champion] + [
        lag
        for lag in lags
        if lag != champion and _current_holds(ex, i, target, lag, champion, chance, span)
    ]


def _choose_lag(
    ex: _Excerpt, i: int, target: Float64Array, corr: Float64Array, current: int, span: Span
) -> _LagChoice:
    """Decide stem ``i``'s lag from its curves (index ``k + lag``; see the module docstring).

    The candidates are the distinct peaks of the fit (:func:`_candidate_peaks`) and the current
    lag. The one that leaves the least energy in total wins; candidates that leave no more than
    the chance scale above it (``c·S + 2·sqrt(c·S·E)`` for chance level ``c``, ``S`` =
    :data:`SIGNIFICANCE` and ``E`` the energy the best explains) are equal in total, and among
    those only the ones no other fits clearly or significantly better on their common frames
    remain
    (:func:`_best_fitting`): a lag contradicted by the stem's own samples, such as its zero
    lead-in, loses to one that only leaves material past the file's end. Exactly periodic
    material can leave several: the offset is then ambiguous. The current lag is kept when it
    is among them, or fits as well as the single winner on their common frames
    (:func:`_current_holds`). The chance level is that of what the best-fitting one leaves;
    ``target`` is zero outside ``span`` and ``corr`` its correlation with the stem.
    """
    lag = ex.lag
    q, total = _unexplained(ex, i, target, corr, span)
    finite = np.isfinite(q)
    j_cur = current + lag
    if not finite.any():
        return _LagChoice(current, "kept")
    peaks = _candidate_peaks(q, total, int(np.argmin(q)))
    if finite[j_cur] and j_cur not in peaks:
        peaks = sorted([*peaks, j_cur], key=lambda p: float(total[p]))
    best = peaks[0]
    chance, winners = _winners(ex, i, target, corr, peaks, total, best, span)
    if winners[0] != best:  # what the best-fitting candidate leaves is the fairer chance level
        chance, winners = _winners(ex, i, target, corr, peaks, total, winners[0], span)
    if j_cur in winners:
        return _LagChoice(current, "kept", _peak_margin_db(q, j_cur))
    if len(winners) == 1:
        if _current_holds(ex, i, target, current, winners[0] - lag, chance, span):
            return _LagChoice(current, "kept", _peak_margin_db(q, j_cur))
        return _LagChoice(winners[0] - lag, "moved", _peak_margin_db(q, winners[0]))
    if all(_current_holds(ex, i, target, current, p - lag, chance, span) for p in winners):
        return _LagChoice(current, "kept", _peak_margin_db(q, j_cur))
    return _LagChoice(current, "ambiguous", _peak_margin_db(q, best), [p - lag for p in winners])


def _model(ex: _Excerpt, offsets: list[int], gains: list[float]) -> Float64Array:
    out = np.zeros_like(ex.reference)
    for i, (d, g) in enumerate(zip(offsets, gains, strict=True)):
        if g:
            out += g * ex.shifted(i, d)
    return out


def _interval(ex: _Excerpt, offsets: list[int], members: list[int]) -> Span:
    """Excerpt frames where every stem in ``members`` at its offset lies in its file."""
    lo, hi = 0, ex.frames
    for i in members:
        a, b = ex.bounds(i, offsets[i])
        lo, hi = max(lo, int(a)), min(hi, int(b))
    return lo, max(hi, lo)


def _separate(
    ex: _Excerpt, offsets: list[int], gains: list[float], active: list[int], threshold: float
) -> tuple[dict[int, _LagChoice], dict[int, float]]:
    """Greedy separation (module docstring, step 3); updates ``offsets`` and ``gains``.

    A proposal qualifies when it changes the model by at least ``threshold`` at its peak and
    lowers the residual energy clearly (:data:`CONFIRM_DB`) or significantly (by
    :data:`SIGNIFICANCE` times the chance level of what it leaves). Returns each active stem's
    lag decision in the last round (the one nothing qualified in) and the chance level of that
    round's residual against each stem.
    """
    choices: dict[int, _LagChoice] = {}
    chances: dict[int, float] = {}
    confirm = 10.0 ** (CONFIRM_DB / 10.0)
    for _ in range(MAX_ROUNDS):
        residual = ex.reference - _model(ex, offsets, gains)
        spectra: dict[Span, np.ndarray] = {}
        best: tuple[float, int, int, float] | None = None
        for i in active:
            others = [j for j in active if j != i]
            span = _interval(ex, offsets, others)
            if span not in spectra:
                spectra[span] = ex.spectrum(residual, span)
            current = ex.shifted(i, offsets[i])
            target = _masked(residual + gains[i] * current, span)
            corr_r = ex.correlate(i, spectra[span])
            chances[i] = _chance(ex, i, corr_r, span)
            corr = corr_r + gains[i] * ex.self_correlation(i, offsets[i], span)
            choice = _choose_lag(ex, i, target, corr, offsets[i], span)
            choices[i] = choice
            w = float(ex.window_energy(i, span)[choice.lag + ex.lag])
            if choice.status == "ambiguous" or w <= 0:
                continue  # an undecided lag proposes nothing, not even a gain at a wrong lag
            k, g = choice.lag, float(corr[choice.lag + ex.lag]) / w
            if k == offsets[i] and abs(g - gains[i]) <= 1e-12 * abs(gains[i]):
                continue
            lo, hi = _interval(ex, offsets, active)
            a, b = ex.bounds(i, k, span)
            lo, hi = max(lo, int(a)), min(hi, int(b))
            if hi - lo < max(ex.frames // 4, 1):
                continue
            change = g * ex.shifted(i, k)[:, lo:hi] - gains[i] * current[:, lo:hi]
            before = _energy(residual, lo, hi)
            after = _energy(residual[:, lo:hi] - change, 0, hi - lo)
            floor = ex.floor_per_value * ex.channels * (hi - lo)
            clear = before >= confirm * max(after, floor)
            chance = _leftover_chance(ex, i, target, corr, k, g, span)
            significant = before - after >= max(SIGNIFICANCE * chance, floor)
            if not (clear or significant) or float(np.abs(change).max()) < threshold:
                continue
            if best is None or before - after > best[0]:
                best = (before - after, i, k, g)
        if best is None:
            break
        _, i, offsets[i], gains[i] = best
    return choices, chances


def _masked(x: Float64Array, span: Span) -> Float64Array:
    """``x`` with the frames outside ``span`` set to zero (a new array)."""
    out = np.zeros_like(x)
    out[:, span[0] : span[1]] = x[:, span[0] : span[1]]
    return out


def _joint_gains(
    ex: _Excerpt, offsets: list[int], gains: list[float], fit: list[int], lo: int, hi: int
) -> None:
    """Least-squares gains of the stems in ``fit`` at their offsets on frames ``[lo, hi)``
    (the other stems stay as they are); updates ``gains``."""
    if not fit or hi <= lo:
        return
    fixed = [g if i not in fit else 0.0 for i, g in enumerate(gains)]
    target = (ex.reference - _model(ex, offsets, fixed))[:, lo:hi].ravel()
    a = np.stack([ex.shifted(i, offsets[i])[:, lo:hi].ravel() for i in fit])
    solution = np.linalg.lstsq(a @ a.T, a @ target, rcond=None)[0]
    for j, i in enumerate(fit):
        gains[i] = float(solution[j])


def _gain_db(g: float) -> float:
    return amplitude_to_db(abs(g)) if g else float("-inf")


def _aspects(
    offsets: list[int], gains: list[float], fit: list[int], allow_gain: bool
) -> list[_Aspect]:
    """What the current model would state about the stems in ``fit``."""
    db = [_gain_db(gains[i]) for i in fit]
    common = (
        allow_gain
        and bool(fit)
        and all(offsets[i] == 0 and gains[i] > 0 for i in fit)
        and max(db) - min(db) < 0.1
        and abs(float(np.mean(db))) >= GAIN_TOLERANCE_DB
    )
    if common:
        return [_Aspect("common_gain", tuple(fit))]
    out = []
    for i in fit:
        if offsets[i]:
            out.append(_Aspect("offset", (i,)))
        if gains[i] < 0:
            out.append(_Aspect("polarity", (i,)))
        if allow_gain and abs(_gain_db(gains[i])) >= GAIN_TOLERANCE_DB:
            out.append(_Aspect("gain", (i,)))
    return out


def _undo(aspect: _Aspect, offsets: list[int], gains: list[float]) -> tuple[list[int], list[float]]:
    """The model with ``aspect`` alone reset to nominal."""
    d, g = list(offsets), list(gains)
    for i in aspect.stems:
        if aspect.kind == "offset":
            d[i] = 0
        elif aspect.kind == "polarity":
            g[i] = -g[i]
        else:  # gain, common_gain: unity with the sign kept
            g[i] = 1.0 if g[i] >= 0 else -1.0
    return d, g


def _snap_gains(gains: list[float], fit: list[int], allow_gain: bool) -> None:
    """Gains that would not be stated (within tolerance, or withheld) become ±1."""
    for i in fit:
        if not allow_gain or abs(_gain_db(gains[i])) < GAIN_TOLERANCE_DB:
            gains[i] = 1.0 if gains[i] >= 0 else -1.0


def _confirm(
    ex: _Excerpt,
    offsets: list[int],
    gains: list[float],
    fit: list[int],
    active: list[int],
    threshold: float,
    allow_gain: bool,
    chance: dict[int, float],
) -> dict[_Aspect, float]:
    """Keep only the aspects whose undoing raises the residual clearly (step 4).

    An aspect is kept when undoing it alone changes the model by at least ``threshold`` at its
    peak and raises the residual energy by :data:`CONFIRM_DB`, or by :data:`SIGNIFICANCE` times
    the chance level of its stems (``chance``, against the separated residual). Failing aspects
    are reset in ``offsets``/``gains``, weakest first. Returns the rise (dB) per kept aspect.
    """
    confirm = 10.0 ** (CONFIRM_DB / 10.0)
    while True:
        _snap_gains(gains, fit, allow_gain)
        aspects = _aspects(offsets, gains, fit, allow_gain)
        if not aspects:
            return {}
        residual = ex.reference - _model(ex, offsets, gains)
        lo0, hi0 = _interval(ex, offsets, active)
        rises: dict[_Aspect, float] = {}
        failing: list[tuple[float, _Aspect]] = []
        for aspect in aspects:
            d2, g2 = _undo(aspect, offsets, gains)
            lo1, hi1 = _interval(ex, d2, active)
            lo, hi = max(lo0, lo1), min(hi0, hi1)
            change = np.zeros((ex.channels, max(hi - lo, 0)))
            for i in aspect.stems:
                change += gains[i] * ex.shifted(i, offsets[i])[:, lo:hi]
                change -= g2[i] * ex.shifted(i, d2[i])[:, lo:hi]
            kept = _energy(residual, lo, hi)
            undone = _energy(residual[:, lo:hi] + change, 0, max(hi - lo, 0))
            floor = ex.floor_per_value * ex.channels * max(hi - lo, 1)
            rises[aspect] = float(10.0 * np.log10(max(undone, 1e-300) / max(kept, floor, 1e-300)))
            level = max(SIGNIFICANCE * max(chance.get(i, 0.0) for i in aspect.stems), floor)
            shown = undone >= confirm * max(kept, floor) or undone - kept >= level
            peak = float(np.abs(change).max()) if change.size else 0.0
            if not shown or peak < threshold:
                failing.append((rises[aspect], aspect))
        if not failing:
            return rises
        weakest = min(failing, key=lambda x: x[0])[1]
        offsets[:], gains[:] = _undo(weakest, offsets, gains)


def _explained_by_stems(
    ex: _Excerpt, residual: Float64Array, active: list[int], span: Span
) -> dict[int, float]:
    """Largest fraction of ``residual`` (on ``span``) each stem explains at any lag (its best LS
    fit)."""
    target = _masked(residual, span)
    spectrum = ex.spectrum(target)
    out = {}
    for i in active:
        q, _ = _unexplained(ex, i, target, ex.correlate(i, spectrum), span)
        out[i] = float(1.0 - q.min()) if np.isfinite(q).any() else 0.0
    return out


@dataclass
class _Model:
    """The stated model of a diagnosis and what it leaves (see :func:`_fit_model`)."""

    offsets: list[int]
    gains: list[float]
    fitted: list[float]
    active: list[int]
    ambiguous: list[int]
    choices: dict[int, _LagChoice]
    rises: dict[_Aspect, float]
    drop_db: float | None
    dynamics: bool
    residual: Float64Array
    interval: tuple[int, int]


def diagnose_null(
    result: NullResult,
    reference: AudioInfo,
    stems: list[tuple[str, AudioInfo]],
    center_frame: int,
    *,
    severity: Severity = "error",
    excerpt_seconds: float = EXCERPT_SECONDS,
    max_lag_seconds: float = MAX_LAG_SECONDS,
) -> None:
    """Explain a failed null; fills ``result.stems``, ``result.diagnoses`` and the excerpt fields.

    Only what the fit can show is stated (see the module docstring): every finding about a stem
    is a correction that, undone alone, raises the residual clearly or significantly; a lag
    that several peaks fit equally is reported as ambiguous, never as an offset.

    Parameters
    ----------
    result
        The whole-file null numbers from :meth:`NullAccumulator.result`.
    reference
        The reference file (mix or pre-master).
    stems
        ``(label, info)`` per stem, same sample rate as the reference and its channel count or
        one channel (added to every channel).
    center_frame
        Where to centre the excerpt (see :meth:`NullAccumulator.excerpt_center`).
    severity
        Severity of the diagnoses (``info`` for a null that does not decide the verdict).
    excerpt_seconds
        Length of the analysed excerpt (s).
    max_lag_seconds
        Largest time offset searched, each way (s).
    """
    fs = reference.sample_rate
    length = max(result.length_samples, 1)
    e = min(max(int(excerpt_seconds * fs), 1), length)
    start = int(min(max(center_frame - e // 2, 0), length - e))
    lag = max(min(int(max_lag_seconds * fs), e - 1), 0)
    result.excerpt_start_seconds = start / fs
    result.excerpt_seconds = e / fs
    ex = _excerpt(reference, stems, start, e, lag, result.threshold_dbfs)
    model = _fit_model(ex, 10.0 ** (result.threshold_dbfs / 20.0), fs)
    lo, hi = model.interval
    result.dynamics_drop_db = model.drop_db
    result.model_residual_peak_dbfs = amplitude_to_db(_peak(model.residual, lo, hi))
    result.stems = _fits(ex, stems, model)
    findings = _findings(result, ex, model, [label for label, _ in stems], severity)
    if not findings and not result.passed:
        findings.append(
            Finding(
                severity,
                "null.unexplained",
                f"the residual against {result.reference} could not be explained on the "
                f"analysed excerpt ({start / fs:.1f}–{(start + e) / fs:.1f} s)",
                file=result.reference,
                advice="listen to the residual; look for an edit, a late automation or a "
                f"time offset beyond ±{max_lag_seconds:g} s",
            )
        )
    result.diagnoses = findings


def _fit_model(ex: _Excerpt, threshold: float, sample_rate: int) -> _Model:
    """Steps 4-6 of the module docstring: separate, fit the gains jointly, detect dynamics,
    confirm; returns the stated model."""
    n = len(ex.stems)
    offsets, gains = [0] * n, [1.0] * n
    active = [i for i in range(n) if ex.cumulative_power[i][-1] > 1e-24]
    choices, chances = _separate(ex, offsets, gains, active, threshold)
    ambiguous = [i for i in active if choices.get(i, _LagChoice(0, "kept")).status == "ambiguous"]
    fit = [i for i in active if i not in ambiguous]
    _joint_gains(ex, offsets, gains, fit, *_interval(ex, offsets, active))
    fitted = list(gains)
    lo, hi = _interval(ex, offsets, active)
    if hi - lo < ex.frames // 2:
        lo, hi = 0, ex.frames
    p = _model(ex, offsets, gains)
    drop = _dynamics_drop_db(ex.reference[:, lo:hi], p[:, lo:hi], sample_rate)
    dynamics = (
        drop is not None
        and drop < -DYNAMICS_DROP_DB
        and _peak(ex.reference - p, lo, hi) >= threshold
    )
    # Gains are withheld when they are symptoms: of dynamics processing, or of a stem whose lag
    # could not be decided (its misplaced material biases every gain fit).
    allow_gain = not dynamics and not ambiguous
    rises = _confirm(ex, offsets, gains, fit, active, threshold, allow_gain, chances)
    return _Model(
        offsets=offsets,
        gains=gains,
        fitted=fitted,
        active=active,
        ambiguous=ambiguous,
        choices=choices,
        rises=rises,
        drop_db=drop,
        dynamics=dynamics,
        residual=ex.reference - _model(ex, offsets, gains),
        interval=_interval(ex, offsets, active),
    )


def _findings(
    result: NullResult, ex: _Excerpt, model: _Model, labels: list[str], severity: Severity
) -> list[Finding]:
    """The stated aspects, then what the model leaves (step 6)."""
    threshold = 10.0 ** (result.threshold_dbfs / 20.0)
    lo, hi = model.interval
    findings = _stated_findings(result, model.rises, result.reference, severity)
    if model.dynamics:
        assert model.drop_db is not None
        findings.append(_dynamics_finding(result, model.drop_db, severity))
    elif _peak(model.residual, lo, hi) >= threshold:
        findings += _zero_fill_findings(result, ex, model, labels, severity) or (
            _leftover_findings(result, ex, model, labels, severity)
        )
    elif max(_peak(model.residual, 0, lo), _peak(model.residual, hi, ex.frames)) >= threshold:
        findings += _lost_findings(result, ex, model, labels, severity)
    return findings


def _fits(ex: _Excerpt, stems: list[tuple[str, AudioInfo]], model: _Model) -> list[StemFit]:
    """One :class:`StemFit` per stem from the stated model."""
    lo, hi = model.interval
    out = []
    for i, (label, _) in enumerate(stems):
        choice = model.choices.get(i)
        d, g = model.offsets[i], model.gains[i]
        fit = StemFit(file=label, offset_samples=d, gain=g, fitted_gain=model.fitted[i])
        if choice is not None:
            fit.lag_margin_db = choice.margin_db
            fit.offset_ambiguous = choice.status == "ambiguous"
            fit.offset_candidates_samples = list(choice.candidates)
        fit.confirm_db = {a.kind: db for a, db in model.rises.items() if i in a.stems}
        s = ex.shifted(i, d)
        target = model.residual + g * s
        denom = np.sqrt(_energy(target, lo, hi) * _energy(s, lo, hi))
        if denom > 0:
            part_t, part_s = target[:, lo:hi], s[:, lo:hi]
            fit.correlation = float(np.einsum("ij,ij->", part_t, part_s) / denom)
        error = g * s - ex.shifted(i, 0)
        fit.error_peak_dbfs = amplitude_to_db(float(np.abs(error).max()) if error.size else 0.0)
        out.append(fit)
    return out


def _stated_findings(
    result: NullResult, rises: dict[_Aspect, float], ref_label: str, severity: Severity
) -> list[Finding]:
    """The confirmed aspects as findings, in stem order."""
    what = "the pre-master" if result.reference_role == "premaster" else "the mix"
    kinds = {a.kind for a in rises}
    if "common_gain" in kinds:
        level = result.stems_gain_db
        side = "below" if level < 0 else "above"
        return [
            Finding(
                severity,
                "null.common_gain",
                f"stems sum {abs(level):.2f} dB {side} {what} ({ref_label}): a level offset on "
                "every stem or on the mix bus",
                file=ref_label,
                advice=(
                    f"re-print the stems at unity (all stems are {abs(level):.2f} dB {side} "
                    f"{what}); check the master fader and any gain after the stem split"
                ),
                value=level,
            )
        ]
    out: list[Finding] = []
    for fit_index, fit in enumerate(result.stems):
        stated = {a.kind for a in rises if a.stems == (fit_index,)}
        out += _stem_findings(fit, ref_label, severity, stated)
    return out


def _stem_findings(
    fit: StemFit, ref_label: str, severity: Severity, stated: set[str]
) -> list[Finding]:
    out: list[Finding] = []
    d = fit.offset_samples
    if "offset" in stated:
        n = abs(d)
        unit = "sample" if n == 1 else "samples"
        state, move = ("late", "earlier") if d > 0 else ("early", "later")
        out.append(
            Finding(
                severity,
                "null.time_offset",
                f"{fit.file} is {n} {unit} {state} against {ref_label}",
                file=fit.file,
                advice=f"move {fit.file} {n} {unit} {move} (stemprint repair does this), or "
                "re-print it with the same start point as the mix",
                value=float(d),
            )
        )
    if "polarity" in stated:
        out.append(
            Finding(
                severity,
                "null.polarity",
                f"{fit.file} is polarity-inverted against {ref_label}",
                file=fit.file,
                advice=f"flip the polarity of {fit.file} (multiply by −1; stemprint repair does "
                "this), or re-print it",
                value=-1.0,
            )
        )
    hot = fit.hot_db
    if "gain" in stated:
        word = "hot" if hot > 0 else "low"
        out.append(
            Finding(
                severity,
                "null.stem_gain",
                f"{fit.file} is printed {abs(hot):.2f} dB {word} against {ref_label}",
                file=fit.file,
                advice=f"re-print {fit.file} at the mix's fader level "
                f"({'lower' if hot > 0 else 'raise'} it by {abs(hot):.2f} dB; stemprint repair "
                "does this)",
                value=hot,
            )
        )
    return out


def _dynamics_finding(result: NullResult, drop: float, severity: Severity) -> Finding:
    ref_label = result.reference
    if result.reference_role == "premaster":
        message = (
            f"{ref_label} has dynamics processing not in the stems: its peaks are "
            f"{-drop:.1f} dB lower than the stem sum predicts"
        )
        advice = "print the stems through the same bus processing, or bypass it on the pre-master"
    else:
        message = (
            "the mix appears to have master-bus dynamics processing (limiter/compressor): "
            f"at its loudest, {ref_label} is {-drop:.1f} dB below the stem sum; null the stems "
            "against the pre-master mix instead"
        )
        advice = (
            "add the pre-master (mix before the master bus) to the package as role "
            '"premaster" in manifest.json, or bypass the master-bus processing'
        )
    return Finding(
        severity, "null.master_dynamics", message, file=ref_label, advice=advice, value=drop
    )


def _leftover_findings(
    result: NullResult, ex: _Excerpt, model: _Model, labels: list[str], severity: Severity
) -> list[Finding]:
    """Name what the stated model leaves (step 6): an ambiguous offset, a missing stem, or
    several faults that cannot be separated."""
    ref_label = result.reference
    residual = model.residual
    if model.ambiguous:
        out = []
        for i in model.ambiguous:
            candidates = model.choices[i].candidates
            lags = ", ".join(f"{c:+d}" for c in candidates[:6])
            if len(candidates) > 6:
                lags += f" and {len(candidates) - 6} more"

            out.append(
                Finding(
                    severity,
                    "null.offset_ambiguous",
                    f"{labels[i]} does not line up with {ref_label}, but its time offset cannot "
                    f"be determined: the lags {lags} samples fit about equally well (periodic "
                    "material)",
                    file=labels[i],
                    advice=f"re-print {labels[i]} with the same start point as the mix; "
                    "stemprint repair does not guess an offset",
                )
            )
        return out
    lo, hi = model.interval
    explained = _explained_by_stems(ex, residual, model.active, (lo, hi))
    related = [i for i in model.active if explained[i] >= MISSING_MAX_EXPLAINED]
    if not related:
        return [
            Finding(
                severity,
                "null.missing_stem",
                "the residual holds material not in any stem: a stem is missing; residual RMS "
                f"{result.residual_rms_dbfs:.1f} dBFS "
                f"({result.reference_rms_dbfs - result.residual_rms_dbfs:.1f} dB below "
                f"{ref_label})",
                file=ref_label,
                advice="export the missing stem (listen to the residual: mix minus the stems), "
                "or check that every track is routed to exactly one stem",
                value=result.residual_rms_dbfs,
            )
        ]
    names = ", ".join(f"{labels[i]} ({100 * explained[i]:.0f} %)" for i in related)
    peak = amplitude_to_db(_peak(residual, lo, hi))
    return [
        Finding(
            severity,
            "null.not_separable",
            f"several faults, not separable: what is left against {ref_label} "
            f"(peak {peak:.1f} dBFS) still correlates with {names}, but no single correction "
            "of a stem removes it",
            file=ref_label,
            advice="fix the findings above (if any) and verify again, or re-print the stems "
            "from the session; listen to the residual",
            value=peak,
        )
    ]


def _zero_fill_findings(
    result: NullResult, ex: _Excerpt, model: _Model, labels: list[str], severity: Severity
) -> list[Finding]:
    """A leftover that lies entirely in one stem's run of digital silence at the start or end of
    its file, beginning right at the cut (within :data:`CUT_SECONDS`), is that stem's material
    the file does not hold (zero-filled by a shift or an export), not a missing stem."""
    threshold = 10.0 ** (result.threshold_dbfs / 20.0)
    lo, hi = model.interval
    cut = max(int(CUT_SECONDS * ex.sample_rate), 1)
    for i in model.active:
        for x, y, edge in _zero_runs(ex, i, model.offsets[i]):
            a, b = max(x, lo), min(y, hi)
            outside = max(_peak(model.residual, lo, a), _peak(model.residual, b, hi))
            at_cut = (
                _peak(model.residual, b - cut, b)
                if edge == "start"
                else (_peak(model.residual, a, a + cut))
            )
            if b - a > 0 and outside < threshold <= at_cut:
                peak = amplitude_to_db(_peak(model.residual, a, b))
                which = "first" if edge == "start" else "last"
                return [
                    Finding(
                        severity,
                        "null.lost_material",
                        f"{labels[i]} is digital silence for its {which} {y - x} samples while "
                        f"{result.reference} still has its material there (residual peak "
                        f"{peak:.1f} dBFS): the file does not hold it (zero-filled by a shift, or "
                        "cut short on export)",
                        file=labels[i],
                        advice=f"re-print {labels[i]} from the session over the full length of "
                        "the mix",
                        value=float(y - x),
                    )
                ]
    return []


def _zero_runs(ex: _Excerpt, i: int, offset: int) -> list[tuple[int, int, str]]:
    """Runs of exact zeros of stem ``i`` (at ``offset``) that touch its file's start or end
    inside the excerpt: ``(lo, hi, "start" | "end")``."""
    a, b = (int(x) for x in ex.bounds(i, offset))
    if b <= a:
        return []
    live = np.flatnonzero(np.any(ex.shifted(i, offset)[:, a:b] != 0.0, axis=0))
    if not live.size:
        return []
    out = []
    if live[0] > 0 and a == max(-ex.start - offset, 0):  # the run starts the file
        out.append((a, a + int(live[0]), "start"))
    if a + live[-1] + 1 < b and b == ex.stem_lengths[i] - ex.start - offset:  # it ends the file
        out.append((a + int(live[-1]) + 1, b, "end"))
    return out


def _lost_findings(
    result: NullResult, ex: _Excerpt, model: _Model, labels: list[str], severity: Severity
) -> list[Finding]:
    """The stated model nulls where every stem has samples; what is left lies where a shifted or
    short stem has none: that material is not in the file."""
    threshold = 10.0 ** (result.threshold_dbfs / 20.0)
    out = []
    for i in model.active:
        a, b = (int(x) for x in ex.bounds(i, model.offsets[i]))
        lost = ([(0, a)] if a > 0 else []) + ([(b, ex.frames)] if b < ex.frames else [])
        peak = max((_peak(model.residual, x, y) for x, y in lost), default=0.0)
        if peak < threshold:
            continue
        frames = sum(y - x for x, y in lost)
        where = " and ".join("start" if x == 0 else "end" for x, _ in lost)
        out.append(
            Finding(
                severity,
                "null.lost_material",
                f"{labels[i]} lacks {frames} samples of its material at the {where} of the "
                f"analysed excerpt, where {result.reference} still has it (residual peak "
                f"{amplitude_to_db(peak):.1f} dBFS there): they are not in the file, so "
                "re-aligning cannot restore them",
                file=labels[i],
                advice=f"re-print {labels[i]} from the session over the full length of the mix",
                value=float(frames),
            )
        )
    return out

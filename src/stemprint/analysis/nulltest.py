"""Null test: do the stems, summed at unity, rebuild the mix sample for sample?

Two parts:

* :class:`NullAccumulator` streams over the **whole** files (fed block by block by
  :func:`stemprint.analysis.verify.verify_package`): residual = reference − Σ stems, in float64.
  It gives the residual peak and RMS (dBFS) that decide pass/fail, the least-squares gain between
  the stem sum and the reference, and per-block energy profiles (to place the excerpt).
* :func:`diagnose_null` explains a failed null on a bounded **excerpt** (default 6 s around the
  block where the residual is largest, plus ±1 s of margin for the lag search), so it costs the
  same for a 3-minute song and a 3-hour film:

  1. per stem, FFT cross-correlation of the stem against its target (reference minus all the
     other stems) over lags of ±``max_lag_seconds``: the lag of the normalised maximum is the
     stem's time offset (exact to the sample), its sign the polarity;
  2. a joint least-squares fit of one gain per (shifted) stem: a common gain away from 0 dB is a
     level offset of the whole package, a single stem's gain a per-stem gain mismatch, a negative
     gain a polarity inversion;
  3. the residual left after that model: when the reference's gain relative to the model falls
     as the level rises (instantaneously or over 20 ms windows), the reference has dynamics
     processing (a limiter or compressor on the master bus); otherwise it holds material no
     stem has: a stem is missing.

RMS values are ``20·log10(sqrt(mean(x²)))`` over all channels and samples (a full-scale square
wave is 0 dBFS RMS; a full-scale sine −3.01 dBFS RMS).
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
#: Per-stem gains closer than this to 0 dB are not reported (dB).
GAIN_TOLERANCE_DB = 0.05
#: Gain drop at high levels that marks dynamics processing (dB).
DYNAMICS_DROP_DB = 0.5


@dataclass
class StemFit:
    """What the diagnosis found for one stem against the reference.

    Attributes
    ----------
    file
        Label of the stem file.
    offset_samples
        Time offset of the stem: positive when the stem is late (its material comes that many
        samples after the reference's), negative when early. To fix, move it ``offset_samples``
        earlier.
    gain
        Linear factor the stem needs to match its part of the reference (1.0 = right level,
        negative = polarity-inverted).
    correlation
        Normalised cross-correlation at the chosen lag (−1 … +1).
    error_peak_dbfs
        Peak of the correction ``gain·stem(shifted) − stem`` on the excerpt (dBFS): how much this
        stem alone contributes to the residual.
    """

    file: str
    offset_samples: int = 0
    gain: float = 1.0
    correlation: float = 0.0
    error_peak_dbfs: float = float("-inf")

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
    stems: list[StemFit] = field(default_factory=list)
    diagnoses: list[Finding] = field(default_factory=list)
    skipped_reason: str | None = None

    def offsets(self) -> dict[str, int]:
        """Detected time offset per stem label (samples, positive = late)."""
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
        """Where to diagnose: centre (frames) of the block with the most residual energy.

        The residual is largest where the fault shows (the offset stem plays, the limiter
        works, the missing stem plays). Blocks past ``common_frames`` (the shortest file) are
        skipped, so a length mismatch does not pull the excerpt onto the zero-padded tail.
        Falls back to the block where the reference is loudest.
        """
        energy = np.asarray(self.residual_block_energy)
        if common_frames is not None:
            usable = max(common_frames // self.block_frames, 1)
            energy = energy[:usable]
        if energy.size == 0:
            return 0
        if not np.any(energy > 0):
            energy = np.asarray(self.block_energy[: energy.size])
        k = int(np.argmax(energy))
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


def _lag_search(
    target: Float64Array, stem_ext: Float64Array, max_lag: int
) -> tuple[int, float, float]:
    """Best lag of ``stem_ext`` against ``target`` by FFT cross-correlation.

    Parameters
    ----------
    target
        ``(channels, E)``: what the stem should be on the excerpt.
    stem_ext
        ``(channels, E + 2·max_lag)``: the stem from ``max_lag`` samples before the excerpt.
    max_lag
        Largest lag searched each way (samples).

    Returns
    -------
    lag, correlation, score
        ``lag`` > 0 when the stem is late (``target[n] ≈ stem[n + lag]``); the normalised
        correlation at that lag (sign = polarity); the least-squares energy it explains.
    """
    e = target.shape[1]
    nfft = _fast_len(e + 2 * max_lag)
    spec = np.conj(np.fft.rfft(target, nfft, axis=1)) * np.fft.rfft(stem_ext, nfft, axis=1)
    corr = np.fft.irfft(spec.sum(axis=0), nfft)[: 2 * max_lag + 1]
    power = np.einsum("ij,ij->j", stem_ext, stem_ext)
    cum = np.concatenate([[0.0], np.cumsum(power)])
    k = np.arange(2 * max_lag + 1)
    window_energy = cum[k + e] - cum[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(window_energy > 0, corr**2 / window_energy, 0.0)
    best = int(np.argmax(score))
    if score[max_lag] >= score[best]:
        best = max_lag
    target_energy = float(np.einsum("ij,ij->", target, target))
    denom = np.sqrt(target_energy * window_energy[best])
    rho = float(corr[best] / denom) if denom > 0 else 0.0
    return best - max_lag, rho, float(score[best])


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
    with the median band of windows.

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
            top = _bin_gain(mf, pf, mag >= q)
            if top and top > 0:
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
            if g_mid > 0 and g_top > 0 and np.std(gains) > 0:
                drops.append(amplitude_to_db(g_top / g_mid))
    return min(drops) if drops else None


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

    Parameters
    ----------
    result
        The whole-file null numbers from :meth:`NullAccumulator.result`.
    reference
        The reference file (mix or pre-master).
    stems
        ``(label, info)`` per stem, same sample rate and channel count as the reference.
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
    thr = 10.0 ** (result.threshold_dbfs / 20.0)
    ref_label = result.reference
    what = "the pre-master" if result.reference_role == "premaster" else "the mix"

    m = read_excerpt(reference, start, e)
    ext = [read_excerpt(info, start - lag, e + 2 * lag) for _, info in stems]
    flat = [s[:, lag : lag + e] for s in ext]
    residual = m - np.sum(flat, axis=0)

    fits: list[StemFit] = []
    active: list[int] = []
    for i, (label, _) in enumerate(stems):
        fit = StemFit(file=label)
        fits.append(fit)
        if float(np.einsum("ij,ij->", ext[i], ext[i])) <= 1e-24:
            continue  # silent here: nothing to fit
        target = residual + flat[i]
        fit.offset_samples, fit.correlation, _ = _lag_search(target, ext[i], lag)
        active.append(i)
    shifted = {
        i: ext[i][:, lag + fits[i].offset_samples : lag + fits[i].offset_samples + e]
        for i in active
    }
    model = np.zeros_like(m)
    if active:
        a = np.stack([shifted[i].ravel() for i in active])
        gram = a @ a.T
        rhs = a @ m.ravel()
        gains = np.linalg.lstsq(gram, rhs, rcond=None)[0]
        for j, i in enumerate(active):
            fits[i].gain = float(gains[j])
            model += fits[i].gain * shifted[i]
            err = fits[i].gain * shifted[i] - flat[i]
            fits[i].error_peak_dbfs = amplitude_to_db(float(np.abs(err).max()))
    result.stems = fits
    # Judge what the model leaves only where every shifted stem has material: a stem printed
    # 128 samples late has lost its last 128 samples, which no re-alignment can bring back.
    valid = np.ones(e, dtype=bool)
    frames = start + np.arange(e)
    for i in active:
        d = fits[i].offset_samples
        if d:
            valid &= (frames + d >= 0) & (frames + d < stems[i][1].length_samples)
    if np.count_nonzero(valid) < e // 2:
        valid[:] = True
    m_valid, model_valid = m[:, valid], model[:, valid]
    model_residual_peak = float(np.abs(m_valid - model_valid).max()) if m.size else 0.0

    findings: list[Finding] = []
    drop = _dynamics_drop_db(m_valid, model_valid, fs)
    result.dynamics_drop_db = drop
    dynamics = drop is not None and drop < -DYNAMICS_DROP_DB and model_residual_peak >= thr

    significant = [fits[i] for i in active if fits[i].error_peak_dbfs >= result.threshold_dbfs]
    gains_db = [fits[i].hot_db for i in active if fits[i].gain > 0]
    common = (
        len(active) >= 1
        and all(fits[i].offset_samples == 0 and fits[i].gain > 0 for i in active)
        and len(gains_db) == len(active)
        and max(gains_db) - min(gains_db) < 0.1
        and abs(float(np.mean(gains_db))) >= GAIN_TOLERANCE_DB
        and bool(significant)
        and not dynamics
    )
    if common:
        level = result.stems_gain_db
        side = "below" if level < 0 else "above"
        findings.append(
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
        )
    else:
        for fit in significant:
            findings.extend(_stem_findings(fit, ref_label, severity, skip_gain=dynamics))
    if dynamics:
        assert drop is not None
        if result.reference_role == "premaster":
            message = (
                f"{ref_label} has dynamics processing not in the stems: its peaks are "
                f"{-drop:.1f} dB lower than the stem sum predicts"
            )
            advice = (
                "print the stems through the same bus processing, or bypass it on the pre-master"
            )
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
        findings.append(
            Finding(
                severity, "null.master_dynamics", message, file=ref_label, advice=advice, value=drop
            )
        )
    elif model_residual_peak >= thr:
        findings.append(
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
        )
    if not findings and not result.passed:
        findings.append(
            Finding(
                severity,
                "null.unexplained",
                f"the residual against {ref_label} could not be explained on the analysed "
                f"excerpt ({start / fs:.1f}–{(start + e) / fs:.1f} s)",
                file=ref_label,
                advice="listen to the residual; look for an edit, a late automation or a "
                "time offset beyond ±1 s",
            )
        )
    result.diagnoses = findings


def _stem_findings(
    fit: StemFit, ref_label: str, severity: Severity, *, skip_gain: bool
) -> list[Finding]:
    out: list[Finding] = []
    d = fit.offset_samples
    if d:
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
    if fit.gain < 0:
        out.append(
            Finding(
                severity,
                "null.polarity",
                f"{fit.file} is polarity-inverted against {ref_label}",
                file=fit.file,
                advice=f"flip the polarity of {fit.file} (multiply by −1), or re-print it",
                value=-1.0,
            )
        )
    hot = fit.hot_db
    if not skip_gain and abs(hot) >= GAIN_TOLERANCE_DB and np.isfinite(hot):
        word = "hot" if hot > 0 else "low"
        out.append(
            Finding(
                severity,
                "null.stem_gain",
                f"{fit.file} is printed {abs(hot):.2f} dB {word} against {ref_label}",
                file=fit.file,
                advice=f"re-print {fit.file} at the mix's fader level "
                f"({'lower' if hot > 0 else 'raise'} it by {abs(hot):.2f} dB)",
                value=hot,
            )
        )
    return out

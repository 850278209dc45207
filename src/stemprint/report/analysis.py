"""One streaming pass over the package's audio for everything the report draws.

Invariants
----------
* Every file is read once, block by block (:data:`~stemprint.analysis.audio.BLOCK_FRAMES`
  frames), all files in lockstep from sample 0: memory is a few blocks per file whatever the
  length. Blocks are the float64 samples the verification reads
  (:class:`~stemprint.planar.PlanarReader`, planar, WAVE PCM decoded from its bytes);
  integer PCM decodes to multiples of ``2**-31``, so the int32 the audio sinks take (lossless
  embedding) is the block times ``2**31``, exactly.
* Waveforms: per channel, the minimum and maximum of each of :data:`WAVE_BINS` equal bins
  (bin ``k`` holds samples ``⌊k·n/B⌋ … ⌊(k+1)·n/B⌋ − 1``; fewer bins when the file is shorter).
* True-peak marks: the bins where a channel's BS.1770-4 true peak (the meter's own 4×
  interpolation filter) reaches :data:`TRUE_PEAK_MARK_DBTP`; windows that cannot reach it are
  skipped by the filter's L1 bound, as in the meter, and so are the channels whose true peak
  in the verification stays 0.01 dB or more below it, so the marks are exact.
* Loudness over time: the weighted energy of every 100 ms hop, as the meter computes it
  (:class:`~stemprint.analysis.meters.HopEnergies`), momentary = mean of 4 hops, short-term =
  mean of 30, integrated = the BS.1770-4 gated loudness of the gating blocks so far; ``NaN``
  before a window is full.
* Spectrogram: the mean of the channels, Hann windows of about 85 ms, :data:`SPEC_COLUMNS`
  columns of one to :data:`SPEC_WINDOWS` windows each (as many as fit), power in dB re a
  full-scale sine on
  :data:`SPEC_ROWS` log-spaced rows from 20 Hz to the Nyquist frequency (or 20 kHz).
* Residuals: ``reference − Σ parts`` in float64 in the relation's order (a mono part added to
  every channel, a shorter file zero-padded), the peak over channels of each of
  :data:`WAVE_BINS` bins.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view

from stemprint.analysis.audio import BLOCK_FRAMES
from stemprint.analysis.meters import (
    _KERNEL_L1,
    _TAP_OFFSETS,
    _TAPS,
    HopEnergies,
    gated_loudness,
    hop_frames,
    interpolated_windows,
)
from stemprint.audiofile import probe
from stemprint.errors import AudioFileError
from stemprint.planar import PlanarReader, interleave

from .inputs import Relation, ReportFile, ReportInputs

WAVE_BINS = 1200
"""Bins per waveform and residual curve."""
TRUE_PEAK_MARK_DBTP = -1.0
"""True-peak level (dBTP) at or above which a bin is marked."""
SPEC_COLUMNS = 640
"""Spectrogram columns."""
SPEC_ROWS = 160
"""Spectrogram rows (log-spaced frequencies)."""
SPEC_WINDOWS = 4
"""Most windows averaged per spectrogram column (one when a column is shorter than four)."""
SPEC_LOW_HZ = 20.0
"""Lowest spectrogram frequency."""
LOUDNESS_POINTS = 400
"""Points of the running integrated loudness curve."""
_INT_UNSCALE = 2.0**31
_INT_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"})


HopSource = Callable[[Path, int], np.ndarray | None]
"""The 100 ms hop energies already measured of a file (``(path, channels)`` as on disk), as
:attr:`~stemprint.analysis.meters.LevelMeter.hop_energies` gives them, or ``None``."""


class AudioSink(Protocol):
    """Receives a file's samples as read: int32 (integer PCM) or float64, ``(frames, ch)``."""

    def feed(self, frames: np.ndarray, is_int: bool) -> None:
        """Take the next block."""

    def finish(self) -> None:
        """The file has ended."""


@dataclass
class FileCurves:
    """What the report draws for one file.

    Attributes
    ----------
    wave_min, wave_max
        ``(channels, bins)`` per-bin extremes (linear, full scale 1).
    marks
        Per channel, the bin indices where the true peak reaches :data:`TRUE_PEAK_MARK_DBTP`.
    spectrogram
        ``(SPEC_ROWS, columns)`` power in dB, row 0 the lowest frequency.
    spec_top_hz
        Frequency of the top spectrogram row's upper edge.
    momentary, short_term
        Loudness (LUFS) at the end of every 100 ms hop, ``NaN`` before the window is full.
    integrated
        ``(times_s, LUFS)`` of the running integrated loudness.
    hop_seconds
        Duration of one hop.
    """

    wave_min: np.ndarray
    wave_max: np.ndarray
    marks: list[np.ndarray]
    spectrogram: np.ndarray
    spec_top_hz: float
    momentary: np.ndarray
    short_term: np.ndarray
    integrated: tuple[np.ndarray, np.ndarray]
    hop_seconds: float


@dataclass
class ResidualCurve:
    """The residual of one relation over time.

    Attributes
    ----------
    relation
        The relation.
    peak
        ``(bins,)`` peak ``|reference − Σ parts|`` over the channels of each bin (linear).
    length
        Samples compared.
    """

    relation: Relation
    peak: np.ndarray
    length: int


@dataclass
class Analysis:
    """The result of the pass: curves by file label, residuals by relation index."""

    files: dict[str, FileCurves] = field(default_factory=dict)
    residuals: dict[int, ResidualCurve] = field(default_factory=dict)


class BinExtremes:
    """Streaming per-bin minimum and maximum of ``(channels, n)`` blocks over ``length`` samples.

    Parameters
    ----------
    length
        Samples the stream will hold.
    bins
        Bins wanted (at most ``length``).
    channels
        Rows of each block.
    """

    def __init__(self, length: int, bins: int, channels: int) -> None:
        self.bins = max(1, min(bins, length))
        self.edges = (np.arange(self.bins + 1, dtype=np.int64) * max(length, 1)) // self.bins
        self.high = np.full((channels, self.bins), -np.inf)
        self.low = np.full((channels, self.bins), np.inf)
        self.pos = 0

    def bin_of(self, sample: np.ndarray) -> np.ndarray:
        """Bin index of each sample position."""
        found = np.searchsorted(self.edges, sample, side="right") - 1
        return np.clip(found, 0, self.bins - 1)

    def feed(self, block: np.ndarray) -> None:
        """Add the next block."""
        n = block.shape[1]
        if n == 0:
            return
        a = self.pos
        first, last = (int(v) for v in self.bin_of(np.array([a, a + n - 1])))
        starts = np.concatenate(([0], self.edges[first + 1 : last + 1] - a)).astype(np.intp)
        span = slice(first, last + 1)
        self.high[:, span] = np.maximum(self.high[:, span], np.maximum.reduceat(block, starts, 1))
        self.low[:, span] = np.minimum(self.low[:, span], np.minimum.reduceat(block, starts, 1))
        self.pos = a + n


def over_positions(x: np.ndarray, threshold: float) -> np.ndarray:
    """Positions in ``x`` (from index 11 on) whose sample or interpolated value reaches
    ``threshold`` (linear), by the meter's BS.1770-4 interpolation filter and its arithmetic
    (:func:`~stemprint.analysis.meters.interpolated_windows`): a channel whose measured true
    peak reaches ``threshold`` has a position here."""
    mag = np.abs(x)
    windows = x.shape[0] - (_TAPS - 1)
    if windows <= 0:
        return np.zeros(0, dtype=np.int64)
    found = [np.flatnonzero(mag[_TAPS - 1 :] >= threshold) + (_TAPS - 1)]
    hot = mag > threshold / _KERNEL_L1
    if hot.any():
        candidate = hot[:windows].copy()
        for k in range(1, _TAPS):
            candidate |= hot[k : k + windows]
        starts = np.flatnonzero(candidate)
        for a in range(0, starts.shape[0], 4096):
            chunk = starts[a : a + 4096]
            values = interpolated_windows(x[_TAP_OFFSETS[:, None] + chunk])  # (12, m) gather
            peaks = np.maximum(values.max(axis=0), -values.min(axis=0))
            found.append(chunk[peaks >= threshold] + _TAPS // 2)
    return np.unique(np.concatenate(found))


class TruePeakMarks:
    """Bins of one file where each channel's true peak reaches a level.

    Parameters
    ----------
    bins
        The file's waveform bins (positions → bins).
    channels
        Channel count.
    level_dbtp
        The level a mark needs.
    peaks_dbtp
        Each channel's true peak over the whole file as the verification measured it, if
        known: a channel that never reaches the level is skipped (it has no mark to find).
    """

    def __init__(
        self,
        bins: BinExtremes,
        channels: int,
        level_dbtp: float,
        peaks_dbtp: list[float | None] | None = None,
    ) -> None:
        self.bins = bins
        self.threshold = 10.0 ** (level_dbtp / 20.0)
        self.history = np.zeros((channels, _TAPS - 1))
        self.marks = [np.zeros(bins.bins, dtype=bool) for _ in range(channels)]
        known = peaks_dbtp if peaks_dbtp and len(peaks_dbtp) == channels else None
        self.active = [
            ch for ch in range(channels) if known is None or _reaches(known[ch], level_dbtp)
        ]
        self.pos = 0

    def feed(self, block: np.ndarray) -> None:
        """Add the next block ``(channels, n)``."""
        n = block.shape[1]
        if n == 0 or not self.active:
            self.pos += n
            return
        buf = np.concatenate([self.history, block], axis=1)
        self.history = buf[:, -(_TAPS - 1) :].copy()
        origin = self.pos - (_TAPS - 1)
        for ch in self.active:
            row = buf[ch]
            if float(np.abs(row).max()) * _KERNEL_L1 < self.threshold:
                continue
            found = over_positions(row, self.threshold) + origin
            if found.size:
                self.marks[ch][self.bins.bin_of(np.clip(found, 0, None))] = True
        self.pos += n

    def result(self) -> list[np.ndarray]:
        """Marked bin indices per channel."""
        return [np.flatnonzero(m) for m in self.marks]


def _reaches(peak_dbtp: float | None, level_dbtp: float) -> bool:
    """Whether a measured true peak (``None``: silent) may reach the level (0.01 dB margin)."""
    return peak_dbtp is not None and peak_dbtp >= level_dbtp - 0.01


class Spectrogram:
    """Streaming spectrogram of one file's channel mean (module header)."""

    def __init__(self, length: int, sample_rate: int) -> None:
        self.window = 1 << max(8, round(math.log2(sample_rate * 0.085)))
        self.columns = max(1, min(SPEC_COLUMNS, length // max(self.window // 4, 1)))
        per = int(np.clip(length // (self.columns * self.window), 1, SPEC_WINDOWS))
        centres = (np.arange(self.columns * per) + 0.5) * length / (self.columns * per)
        top = max(length - self.window, 0)
        self.starts = np.clip(np.round(centres - self.window / 2), 0, top).astype(np.int64)
        self.column_of = np.arange(self.columns * per) // per
        self.power = np.zeros((self.columns, self.window // 2 + 1))
        self.counts = np.zeros(self.columns)
        self.hann = np.hanning(self.window + 2)[1:-1]
        self.sample_rate = sample_rate
        self.next = 0
        self.buf = np.zeros(0)
        self.buf_start = 0

    def feed(self, mono: np.ndarray) -> None:
        """Add the next block of the channel mean."""
        self.buf = np.concatenate([self.buf, mono])
        self._frames()

    def _frames(self) -> None:
        end = self.buf_start + self.buf.shape[0]
        first = self.next
        last = int(np.searchsorted(self.starts, end - self.window, side="right"))
        if last > first:
            offsets = self.starts[first:last] - self.buf_start
            frames = sliding_window_view(self.buf, self.window)[offsets]
            frames *= self.hann
            spectrum = np.fft.rfft(frames, axis=1)
            power = spectrum.real**2 + spectrum.imag**2
            columns = self.column_of[first:last]
            runs = np.flatnonzero(np.diff(columns, prepend=-1))
            self.power[columns[runs]] += np.add.reduceat(power, runs, axis=0)
            self.counts[columns[runs]] += np.diff(np.append(runs, columns.shape[0]))
            self.next = last
        keep = int(self.starts[self.next]) if self.next < self.starts.shape[0] else end
        drop = min(max(keep - self.buf_start, 0), self.buf.shape[0])
        self.buf = self.buf[drop:]
        self.buf_start += drop

    def result(self) -> tuple[np.ndarray, float]:
        """``(rows, columns)`` dB re a full-scale sine, and the top row's upper frequency."""
        self.buf = np.concatenate([self.buf, np.zeros(self.window)])
        self._frames()
        norm = (self.hann.sum() / 2.0) ** 2
        power = self.power / np.maximum(self.counts, 1)[:, None] / norm
        nyquist = self.sample_rate / 2.0
        top = min(20000.0, nyquist)
        edges = np.geomspace(SPEC_LOW_HZ, top, SPEC_ROWS + 1) / (nyquist / (power.shape[1] - 1))
        rows = band_means(power, edges).T
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(np.maximum(rows, 1e-30)), top


def band_means(power: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``(columns, bands)``: the mean of each column's piecewise-constant spectrum
    ``power`` ``(columns, bins)`` over each band ``[edges[i], edges[i+1])``, in bins (bin ``k``
    spans ``k − 0.5 … k + 0.5``)."""
    bins = power.shape[1]
    cum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1)], axis=1)
    pos = np.clip(edges + 0.5, 0.0, float(bins))

    def integral(at: np.ndarray) -> np.ndarray:
        whole = np.clip(np.floor(at).astype(np.int64), 0, bins - 1)
        return np.asarray(cum[:, whole] + (at - whole)[None, :] * power[:, whole])

    width = np.maximum(pos[1:] - pos[:-1], 1e-9)[None, :]
    return np.asarray((integral(pos[1:]) - integral(pos[:-1])) / width)


class LoudnessTrack:
    """Momentary, short-term and running integrated loudness of one file (module header)."""

    def __init__(self, sample_rate: int, channels: int, measured: np.ndarray | None = None) -> None:
        self.hop_seconds = hop_frames(sample_rate) / sample_rate
        # Hops the verification's meter already measured are taken as they are.
        self.hops = HopEnergies(sample_rate, channels) if measured is None else None
        self.energies: list[float] = [] if measured is None else measured.tolist()

    def feed(self, block: np.ndarray) -> None:
        """Add the next block ``(channels, n)``."""
        if self.hops is not None:
            self.energies.extend(self.hops.feed(np.ascontiguousarray(block)))

    def result(self) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Momentary and short-term per hop, and the running integrated ``(times, LUFS)``."""
        e = np.asarray(self.energies, dtype=np.float64)
        momentary, blocks = _window_lufs(e, 4)
        short, _ = _window_lufs(e, 30)
        hops = np.unique(np.linspace(4, max(e.shape[0], 4), LOUDNESS_POINTS).astype(np.int64))
        hops = hops[hops <= e.shape[0]]
        values = np.array([gated_loudness(blocks[: h - 3]).loudness_lufs for h in hops])
        values[~np.isfinite(values)] = np.nan
        return momentary, short, (hops * self.hop_seconds, values)


def _window_lufs(energies: np.ndarray, hops: int) -> tuple[np.ndarray, np.ndarray]:
    """Loudness of the mean of ``hops`` hops ending at each hop (``NaN`` before), and those
    window energies (from the first full window on)."""
    out = np.full(energies.shape[0], np.nan)
    if energies.shape[0] < hops:
        return out, np.zeros(0)
    cum = np.concatenate([[0.0], np.cumsum(energies)])
    mean = (cum[hops:] - cum[:-hops]) / hops
    with np.errstate(divide="ignore"):
        lufs = -0.691 + 10.0 * np.log10(np.maximum(mean, 0.0))
    lufs[~np.isfinite(lufs)] = np.nan
    out[hops - 1 :] = lufs
    return out, mean


def _channel_mean(block: np.ndarray) -> np.ndarray:
    """Mean of the rows of ``(channels, n)``, one row at a time (``sum(axis=0)`` of a
    transposed block walks memory across the rows and is many times slower)."""
    mono = block[0].copy()
    for row in block[1:]:
        mono += row
    if block.shape[0] > 1:
        mono *= 1.0 / block.shape[0]
    return mono


class FileAnalyser:
    """Everything drawn for one file, fed block by block."""

    def __init__(self, f: ReportFile, hops: np.ndarray | None = None) -> None:
        self.waves = BinExtremes(f.length, WAVE_BINS, f.channels)
        peaks = (f.facts.get("levels") or {}).get("true_peak_dbtp_per_channel")
        self.marks = TruePeakMarks(self.waves, f.channels, TRUE_PEAK_MARK_DBTP, peaks)
        self.spectrogram = Spectrogram(f.length, f.sample_rate)
        self.loudness = LoudnessTrack(f.sample_rate, f.channels, hops)

    def feed(self, block: np.ndarray) -> None:
        """Add the next block ``(channels, n)`` (float64)."""
        self.waves.feed(block)
        self.marks.feed(block)
        self.spectrogram.feed(_channel_mean(block))
        self.loudness.feed(block)

    def result(self) -> FileCurves:
        """The curves of the whole file."""
        spec, top = self.spectrogram.result()
        momentary, short, integrated = self.loudness.result()
        return FileCurves(
            self.waves.low, self.waves.high, self.marks.result(), spec, top,
            momentary, short, integrated, self.loudness.hop_seconds,
        )  # fmt: skip


class _Reader:
    """One file read in ``(channels, n)`` float64 blocks (:class:`~stemprint.planar.PlanarReader`:
    the values the verification reads)."""

    def __init__(self, f: ReportFile) -> None:
        self.file = f
        self.is_int = str(f.facts.get("subtype")) in _INT_SUBTYPES or (
            str(f.facts.get("format")) == "FLAC"
        )
        try:
            self.handle = PlanarReader(probe(f.path))
        except (OSError, sf.LibsndfileError, RuntimeError) as exc:
            raise AudioFileError(
                f"cannot open audio file ({exc})", file=str(f.path), fix="re-export the file"
            ) from exc

    def read(self, frames: int) -> np.ndarray:
        return self.handle.read(frames)

    def sink_frames(self, block: np.ndarray) -> np.ndarray:
        """``block`` as the sinks take it, ``(n, channels)``: int32 for integer PCM (its
        samples times ``2**31``, exact: integer PCM decodes to multiples of ``2**-31``)."""
        if self.is_int:
            return interleave(block * _INT_UNSCALE, np.int32)
        return interleave(block)

    def close(self) -> None:
        self.handle.close()


ANALYSIS_THREADS: int | None = None
"""Threads of the analysis pass (default: one per CPU)."""


def analyse(
    inputs: ReportInputs,
    sinks: Mapping[str, AudioSink] | None = None,
    block_frames: int = BLOCK_FRAMES,
    hops: HopSource | None = None,
) -> Analysis:
    """Read every file once, in lockstep, and compute the curves and residuals.

    Parameters
    ----------
    inputs
        The report's inputs (files and relations).
    sinks
        Receivers of the samples of some files (by label), for embedding.
    block_frames
        Frames per block.
    hops
        Loudness hops already measured (the render's own verification): those files are not
        K-weighted again.
    """
    files = [f for f in inputs.files if f.path.is_file()]
    readers = {f.label: _Reader(f) for f in files}
    analysers = {f.label: FileAnalyser(f, hops(f.path, f.channels) if hops else None)
                 for f in files}  # fmt: skip
    residuals = _residual_plans(inputs.relations, {f.label: f for f in files})
    steps = [_Step(f, readers[f.label], analysers[f.label], (sinks or {}).get(f.label))
             for f in files]  # fmt: skip
    total = max((f.length for f in files), default=0)
    # The files of one block are read and analysed in parallel (libsndfile, the FFTs and most
    # numpy work run without the GIL); each file's blocks stay in order, so nothing depends on
    # the timing. The residuals need every file's block: they follow.
    pool = ThreadPoolExecutor(min(ANALYSIS_THREADS or os.cpu_count() or 1, max(len(steps), 1)))
    try:
        for start in range(0, total, block_frames):
            found = pool.map(_Step.run, steps, [start] * len(steps), [block_frames] * len(steps))
            blocks = {
                step.file.label: block
                for step, block in zip(steps, found, strict=True)
                if block is not None
            }
            for plan in residuals:
                plan.feed(blocks, min(block_frames, total - start))
    finally:
        pool.shutdown()
        for reader in readers.values():
            reader.close()
    for step in steps:
        if step.sink is not None:
            step.sink.finish()
    out = Analysis()
    out.files = {label: a.result() for label, a in analysers.items()}
    out.residuals = {p.relation.index: p.result() for p in residuals}
    return out


@dataclass
class _Step:
    """One file's share of a block: read, hand to the sink, convert, analyse."""

    file: ReportFile
    reader: _Reader
    analyser: FileAnalyser
    sink: AudioSink | None

    def run(self, start: int, frames: int) -> np.ndarray | None:
        """The block from ``start``, float64 ``(channels, n)``; ``None`` past the file's end."""
        if start >= self.file.length:
            return None
        block = self.reader.read(min(frames, self.file.length - start))
        if self.sink is not None:
            self.sink.feed(self.reader.sink_frames(block), self.reader.is_int)
        self.analyser.feed(block)
        return block


class _ResidualPlan:
    """Streaming residual peak of one relation."""

    def __init__(self, relation: Relation, reference: ReportFile, parts: list[ReportFile]):
        self.relation = relation
        self.channels = reference.channels
        self.labels = [reference.label] + [p.label for p in parts]
        self.length = max([reference.length] + [p.length for p in parts])
        self.bins = BinExtremes(self.length, WAVE_BINS, 1)
        self.pos = 0

    def feed(self, blocks: Mapping[str, np.ndarray], frames: int) -> None:
        n = min(frames, self.length - self.pos)
        if n <= 0:
            return
        acc = np.zeros((self.channels, n))
        for label in self.labels[1:]:
            part = blocks.get(label)
            if part is not None:
                acc[:, : part.shape[1]] += part[:, :n]
        residual = -acc
        ref = blocks.get(self.labels[0])
        if ref is not None:
            residual[:, : ref.shape[1]] += ref[:, :n]
        peak = np.abs(residual[0])
        for row in residual[1:]:
            np.maximum(peak, np.abs(row), out=peak)
        self.bins.feed(peak[None, :])
        self.pos += n

    def result(self) -> ResidualCurve:
        return ResidualCurve(self.relation, np.maximum(self.bins.high[0], 0.0), self.length)


def _residual_plans(
    relations: Sequence[Relation], files: Mapping[str, ReportFile]
) -> list[_ResidualPlan]:
    """Relations whose files are all present and summable (the verification ran them)."""
    plans = []
    for relation in relations:
        reference = files.get(relation.reference)
        parts = [files.get(p) for p in relation.parts]
        if relation.null.get("skipped_reason") or reference is None or None in parts:
            continue
        found = [p for p in parts if p is not None]
        if any(p.channels not in (1, reference.channels) for p in found):
            continue
        plans.append(_ResidualPlan(relation, reference, found))
    return plans

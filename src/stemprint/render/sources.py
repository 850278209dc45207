"""Clip sources: probe audio files up front, then stream each clip's samples in session time.

Files are opened only while their clip plays and read sequentially, so memory does not grow with
session length. Samples come planar, ``(channels, frames)``, from
:class:`~stemprint.planar.PlanarReader` (the values libsndfile decodes, WAVE PCM decoded from its
bytes). A file at another sample rate is resampled with soxr (very high quality) as it
streams; soxr's streaming output equals its one-shot output, and the file is always fed in chunks
of :data:`READ_FRAMES`, so the result does not depend on the render block size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stemprint.dsp.automation import gain_db_lane_to_linear
from stemprint.dsp.fades import fade_gain
from stemprint.errors import AudioFileError, RenderError
from stemprint.graph.clips import ClipPlan
from stemprint.planar import PlanarReader, interleave

READ_FRAMES = 16384
"""Frames read from a file per call when resampling (fixed, for determinism)."""

INTEGER_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"})
"""libsndfile subtypes decoded from integers (FLAC reports these too)."""


class ClipReader:
    """Streams one clip's samples, gain and fades applied, in timeline order.

    The file is opened at the clip's first block and closed after its last.
    """

    def __init__(self, plan: ClipPlan, sample_rate: int) -> None:
        self.plan = plan
        self.sample_rate = sample_rate
        self._file: Any = None
        self._resampler: Any = None
        self._pending = np.zeros((plan.info.channels, 0))
        self._position = 0  # samples of the clip already delivered
        self._file_left = 0

    def _open(self) -> None:
        info = self.plan.info
        try:
            self._file = PlanarReader(info)
            self._file.seek(self.plan.offset_frames)
        except Exception as exc:  # noqa: BLE001
            raise AudioFileError(
                f"cannot read audio file {info.path}: {exc}", field=self.plan.where
            ) from None
        self._file_left = info.length_samples - self.plan.offset_frames
        if info.sample_rate != self.sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(
                info.sample_rate, self.sample_rate, info.channels, dtype="float64", quality="VHQ"
            )

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _read_file(self, frames: int) -> np.ndarray:
        """The next ``frames`` frames of the file, ``(channels, frames)``, a new array."""
        try:
            data = self._file.read(frames)
        except Exception as exc:  # noqa: BLE001
            raise AudioFileError(
                f"cannot read audio file {self.plan.info.path}: {exc}",
                field=self.plan.where,
                fix="the file is corrupt; re-export it",
            ) from None
        if data.shape[1] < frames:
            raise AudioFileError(
                f"audio file {self.plan.info.path} ended early (truncated or corrupt)",
                field=self.plan.where,
                fix="re-export the file",
            )
        self._file_left -= frames
        return data

    def _skip(self, n: int) -> None:
        """Skip the clip's first ``n`` session samples (gain and fades stay on the clip's own
        sample index)."""
        if self.plan.reverse or self.plan.loop:
            pass  # read by clip index: nothing to consume
        elif self._resampler is None:
            self._file.seek(self.plan.offset_frames + n)
            self._file_left -= n
        else:
            left = n
            while left > 0:
                step = min(left, READ_FRAMES)
                self._next(step)
                left -= step
        self._position += n

    def _read_mapped(self, first: int, n: int) -> np.ndarray:
        """Clip samples ``first … first + n`` of a reverse and/or loop clip (session rate)."""
        plan = self.plan
        span = plan.source_frames if plan.loop else plan.length_samples
        parts = []
        index = first
        while index < first + n:
            position = index % span if plan.loop else index
            run = min(first + n - index, span - position)
            if plan.reverse:
                self._file.seek(plan.offset_frames + span - position - run)
                parts.append(self._read_file(run)[:, ::-1])
            else:
                self._file.seek(plan.offset_frames + position)
                parts.append(self._read_file(run))
            index += run
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def _next(self, n: int) -> np.ndarray:
        """The next ``n`` clip samples, ``(channels, n)``, at the session rate, raw."""
        if self.plan.reverse or self.plan.loop:
            return self._read_mapped(self._position, n)
        if self._resampler is None:
            return self._read_file(n)
        while self._pending.shape[1] < n:
            frames = min(READ_FRAMES, self._file_left)
            chunk = self._read_file(frames) if frames else np.zeros((self.plan.info.channels, 0))
            last = self._file_left == 0
            # soxr streams interleaved (frames, channels) arrays.
            out = self._resampler.resample_chunk(interleave(chunk, np.float64), last=last)
            self._pending = np.concatenate([self._pending, out.T], axis=1)
            if last and self._pending.shape[1] < n:
                raise RenderError(f"{self.plan.where}: resampler returned too few samples")
        out, self._pending = self._pending[:, :n], self._pending[:, n:]
        return out

    @property
    def integer_coded(self) -> bool:
        """The file holds integer PCM: every decoded sample is finite, and none is ``-0.0``."""
        return self.plan.info.subtype in INTEGER_SUBTYPES

    def overlaps(self, block_start: int, n: int) -> bool:
        """The clip has samples in the ``n`` timeline samples from ``block_start``."""
        plan = self.plan
        return max(block_start, plan.start_sample) < min(block_start + n, plan.end_sample)

    def whole_block(self, block_start: int, n: int, channels: int) -> np.ndarray | None:
        """The block as a new ``(channels, n)`` array when this clip alone can give it plainly
        (it covers the block, same channels and rate, integer PCM, no fade, envelope, reverse or
        loop), else ``None`` (use :meth:`add_into`).

        The same values as :meth:`add_into` on zeros: ``0.0 + y == y`` for every ``y`` but
        ``-0.0``, which integer PCM never decodes to (nor times a positive clip gain).
        """
        plan = self.plan
        first = block_start - plan.start_sample  # clip index of the block's first sample
        if (
            first < 0
            or block_start + n > plan.end_sample
            or plan.reverse
            or plan.loop
            or plan.envelope is not None
            or plan.info.channels != channels
            or plan.info.sample_rate != self.sample_rate
            or not self.integer_coded
            or first < plan.fade_in_samples
            or first + n > plan.length_samples - plan.fade_out_samples
        ):
            return None
        self._ensure_open(block_start)
        if self._position != first:
            return None  # not where the stream stands (never in a render: blocks go in order)
        data = self._read_file(n)  # (channels, n), a new array
        self._position += n
        if plan.gain_linear != 1.0:
            data *= plan.gain_linear
        if self._position >= plan.length_samples:
            self.close()
        return data

    def _ensure_open(self, lo: int) -> None:
        """Open the file at the clip's first block; a render that starts inside the clip (a
        region) skips its beginning."""
        if self._file is None:
            self._open()
            if lo > self.plan.start_sample:
                self._skip(lo - self.plan.start_sample)

    def add_into(self, target: np.ndarray, block_start: int) -> None:
        """Add this clip's part of the block starting at timeline sample ``block_start``.

        Parameters
        ----------
        target
            ``(channels, n)`` float64 track buffer, added into in place. A mono clip on a stereo
            track goes to both channels at unity.
        block_start
            Timeline sample of ``target[:, 0]``.
        """
        plan = self.plan
        n = target.shape[1]
        lo = max(block_start, plan.start_sample)
        hi = min(block_start + n, plan.end_sample)
        if hi <= lo:
            return
        self._ensure_open(lo)
        count = hi - lo
        first = self._position  # index inside the clip of data[:, 0]
        data = self._next(count)  # (channels, count)
        self._position += count
        fade_from = plan.length_samples - plan.fade_out_samples
        in_fade = (
            (plan.fade_in_samples and first < plan.fade_in_samples)
            or (plan.fade_out_samples and first + count > fade_from)
            or plan.envelope is not None
        )
        view = target[:, lo - block_start : hi - block_start]
        if not in_fade:
            if plan.gain_linear == 1.0:
                view += data
            else:
                view += data * plan.gain_linear
        else:
            # dsp.fades conventions: a fade-in of n samples is f(i/n) at its index i (0 at the
            # first sample), a fade-out f(1 − i/n): overlapping fades of the same shape and
            # length form an exact crossfade (linear: constant amplitude; equal power: power).
            idx = np.arange(first, first + count, dtype=np.int64)
            gain = np.full(count, plan.gain_linear)
            if plan.fade_in_samples:
                gain *= fade_gain(plan.fade_in_shape, idx, plan.fade_in_samples, "in")
            if plan.fade_out_samples:
                out = fade_gain(plan.fade_out_shape, idx - fade_from, plan.fade_out_samples, "out")
                gain *= np.where(idx >= fade_from, out, 1.0)
            if plan.envelope is not None:
                gain *= gain_db_lane_to_linear(plan.envelope.values(first, count))
            view += data * gain
        if self._position >= plan.length_samples:
            self.close()

"""Clip sources: probe audio files up front, then stream each clip's samples in session time.

Files are opened only while their clip plays and read sequentially, so memory does not grow with
session length. A file at another sample rate is resampled with soxr (very high quality) as it
streams; soxr's streaming output equals its one-shot output, and the file is always fed in chunks
of :data:`READ_FRAMES`, so the result does not depend on the render block size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stemprint.dsp.automation import gain_db_lane_to_linear
from stemprint.dsp.fades import fade_gain
from stemprint.dsp.strip import db_to_linear
from stemprint.errors import AudioFileError, InputError, RenderError
from stemprint.model.load import LoadedSession, format_location
from stemprint.model.session import Clip

READ_FRAMES = 16384
"""Frames read from a file per call when resampling (fixed, for determinism)."""


@dataclass(frozen=True)
class AudioInfo:
    """What a clip needs to know about its file."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    subtype: str


@dataclass(frozen=True)
class ClipPlan:
    """A clip resolved to session samples.

    Attributes
    ----------
    start_sample
        Timeline position of the clip's first sample, at the session rate.
    length_samples
        Clip length at the session rate.
    offset_frames
        Where reading starts inside the file, in file frames (file rate).
    gain_linear
        Clip gain.
    fade_in_samples, fade_out_samples
        Linear fade lengths at the session rate.
    """

    info: AudioInfo
    where: str
    start_sample: int
    length_samples: int
    offset_frames: int
    gain_linear: float
    fade_in_samples: int
    fade_out_samples: int
    fade_in_shape: str = "linear"
    fade_out_shape: str = "linear"
    reverse: bool = False
    loop: bool = False
    source_frames: int = 0
    """Frames of the file from the offset to its end (the looped material)."""
    envelope: Any = None
    """``dsp.automation.AutomationLane`` of clip gain in dB on clip sample indices, or None."""

    @property
    def end_sample(self) -> int:
        """One past the clip's last timeline sample."""
        return self.start_sample + self.length_samples


def probe_audio(path: Path, where: str) -> AudioInfo:
    """Read a file's header; a missing or corrupt file raises :class:`AudioFileError`."""
    import soundfile as sf

    if not path.exists():
        raise AudioFileError(
            f"audio file not found: {path}",
            field=where,
            fix="check the path; clip paths are relative to the session file",
        )
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile raises RuntimeError subclasses
        raise AudioFileError(
            f"cannot read audio file {path}: {exc}",
            field=where,
            fix="the file is corrupt or not audio; re-export it as WAV, AIFF or FLAC",
        ) from None
    if info.frames <= 0:
        raise AudioFileError(
            f"audio file {path} holds no samples", field=where, fix="re-export the file"
        )
    if info.channels not in (1, 2):
        raise AudioFileError(
            f"audio file {path} has {info.channels} channels; tracks take mono or stereo",
            field=where,
            fix="split it into mono or stereo files, one track each",
        )
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), info.subtype)


def plan_clips(loaded: LoadedSession) -> tuple[dict[str, list[ClipPlan]], list[str]]:
    """Resolve every clip of every track to session samples, checking its file.

    Returns
    -------
    plans
        Clip plans by track name.
    warnings
        One line per file at another sample rate (resampled).

    Raises
    ------
    AudioFileError
        Missing, corrupt or multichannel file; a clip past the end of its file; fades longer than
        the clip.
    """
    session = loaded.session
    rate = session.sample_rate
    infos: dict[Path, AudioInfo] = {}
    warnings: list[str] = []
    plans: dict[str, list[ClipPlan]] = {}
    for t_index, track in enumerate(session.tracks):
        plans[track.name] = []
        for c_index, clip in enumerate(track.clips):
            loc = ("tracks", t_index, "clips", c_index)
            where = f"{loaded.path}:{loaded.line_of((*loc, 'file')) or '?'}: " + format_location(
                (*loc, "file")
            )
            path = (loaded.base_dir / clip.file).resolve()
            if path not in infos:
                infos[path] = probe_audio(path, where)
                if infos[path].sample_rate != rate:
                    warnings.append(
                        f"{clip.file}: {infos[path].sample_rate} Hz, resampled to {rate} Hz "
                        "(soxr, very high quality)"
                    )
            plans[track.name].append(_plan_clip(loaded, loc, clip, infos[path]))
    return plans, warnings


def _plan_clip(
    loaded: LoadedSession, loc: tuple[str | int, ...], clip: Clip, info: AudioInfo
) -> ClipPlan:
    rate = loaded.session.sample_rate
    tempo = loaded.session.tempo_map()
    file_seconds = info.frames / info.sample_rate
    offset_frames = round(clip.offset_seconds * info.sample_rate)
    if offset_frames >= info.frames:
        raise loaded.error(
            f"offset_seconds {clip.offset_seconds:g} is past the end of {clip.file} "
            f"({file_seconds:.6g} s long)",
            (*loc, "offset_seconds"),
            fix=f"use an offset below {file_seconds:.6g} s",
        )
    # Available material after the offset, in session samples (floor: never read past the end).
    available = math.floor((info.frames - offset_frames) * rate / info.sample_rate)
    try:
        start_sample = (
            tempo.sample(clip.start) if clip.start is not None else round(clip.start_seconds * rate)
        )
        if clip.duration is not None:
            start_position = clip.start if clip.start is not None else clip.start_seconds
            wanted: int | None = tempo.length_samples(start_position, clip.duration)
        elif clip.duration_seconds is not None:
            wanted = round(clip.duration_seconds * rate)
        else:
            wanted = None
    except (InputError, ValueError) as exc:
        message = exc.message if isinstance(exc, InputError) else str(exc)
        raise loaded.error(
            message, (*loc, "start"), fix="check the position and the tempo map"
        ) from None
    if (clip.reverse or clip.loop) and info.sample_rate != rate:
        raise loaded.error(
            f"reverse and loop clips need a file at the session rate ({rate} Hz); "
            f"{clip.file} is {info.sample_rate} Hz",
            (*loc, "reverse" if clip.reverse else "loop"),
            fix="convert the file to the session rate",
        )
    if clip.loop and wanted is None:
        raise loaded.error(
            "a loop clip needs a duration", (*loc, "loop"), fix="set duration or duration_seconds"
        )
    if wanted is None:
        length = available
    else:
        length = wanted
        if length > available and not clip.loop:  # a loop repeats its material instead
            max_seconds = (info.frames - offset_frames) / info.sample_rate
            raise loaded.error(
                f"clip runs past the end of {clip.file}: offset {clip.offset_seconds:g} s + "
                f"duration {length / rate:g} s > file length {file_seconds:.6g} s",
                (*loc, "duration_seconds" if clip.duration is None else "duration"),
                fix=f"shorten duration_seconds to at most {max_seconds:.6f}",
            )
    if length <= 0:
        raise loaded.error("clip has no samples at the session rate", (*loc, "duration_seconds"))
    fade_in = round(clip.fade_in_seconds * rate)
    fade_out = round(clip.fade_out_seconds * rate)
    if fade_in + fade_out > length:
        raise loaded.error(
            f"fades ({clip.fade_in_seconds:g} s + {clip.fade_out_seconds:g} s) are longer "
            f"than the clip ({length / rate:.6g} s)",
            (*loc, "fade_in_seconds"),
            fix="shorten the fades so they fit inside the clip",
        )
    return ClipPlan(
        info=info,
        where=format_location(loc),
        start_sample=start_sample,
        length_samples=length,
        offset_frames=offset_frames,
        gain_linear=db_to_linear(clip.gain_db),
        fade_in_samples=fade_in,
        fade_out_samples=fade_out,
        fade_in_shape=clip.fade_in_shape,
        fade_out_shape=clip.fade_out_shape,
        reverse=clip.reverse,
        loop=clip.loop,
        source_frames=info.frames - offset_frames,
        envelope=_envelope(loaded, loc, clip, rate),
    )


def _envelope(loaded: LoadedSession, loc: tuple[str | int, ...], clip: Clip, rate: int) -> Any:
    if not clip.gain_envelope:
        return None
    from stemprint.dsp.automation import AutomationLane

    try:
        return AutomationLane([(round(t * rate), db) for t, db in clip.gain_envelope], "linear")
    except (InputError, ValueError) as exc:
        message = exc.message if isinstance(exc, InputError) else str(exc)
        raise loaded.error(
            message, (*loc, "gain_envelope"), fix="points go in time order, seconds >= 0"
        ) from None


class ClipReader:
    """Streams one clip's samples, gain and fades applied, in timeline order.

    The file is opened at the clip's first block and closed after its last.
    """

    def __init__(self, plan: ClipPlan, sample_rate: int) -> None:
        self.plan = plan
        self.sample_rate = sample_rate
        self._file: Any = None
        self._resampler: Any = None
        self._pending = np.zeros((0, plan.info.channels))
        self._position = 0  # samples of the clip already delivered
        self._file_left = 0

    def _open(self) -> None:
        import soundfile as sf

        info = self.plan.info
        try:
            self._file = sf.SoundFile(str(info.path))
            self._file.seek(self.plan.offset_frames)
        except Exception as exc:  # noqa: BLE001
            raise AudioFileError(
                f"cannot read audio file {info.path}: {exc}", field=self.plan.where
            ) from None
        self._file_left = info.frames - self.plan.offset_frames
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
        try:
            data = self._file.read(frames, dtype="float64", always_2d=True)
        except Exception as exc:  # noqa: BLE001
            raise AudioFileError(
                f"cannot read audio file {self.plan.info.path}: {exc}",
                field=self.plan.where,
                fix="the file is corrupt; re-export it",
            ) from None
        if data.shape[0] < frames:
            raise AudioFileError(
                f"audio file {self.plan.info.path} ended early (truncated or corrupt)",
                field=self.plan.where,
                fix="re-export the file",
            )
        self._file_left -= frames
        return np.asarray(data)

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
                parts.append(self._read_file(run)[::-1])
            else:
                self._file.seek(plan.offset_frames + position)
                parts.append(self._read_file(run))
            index += run
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _next(self, n: int) -> np.ndarray:
        """The next ``n`` clip samples, ``(n, channels)``, at the session rate, raw."""
        if self.plan.reverse or self.plan.loop:
            return self._read_mapped(self._position, n)
        if self._resampler is None:
            return self._read_file(n)
        while self._pending.shape[0] < n:
            frames = min(READ_FRAMES, self._file_left)
            chunk = self._read_file(frames) if frames else np.zeros((0, self.plan.info.channels))
            last = self._file_left == 0
            out = self._resampler.resample_chunk(chunk, last=last)
            self._pending = np.concatenate([self._pending, out])
            if last and self._pending.shape[0] < n:
                raise RenderError(f"{self.plan.where}: resampler returned too few samples")
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

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
        if self._file is None:
            self._open()
            # A render that starts inside the clip (a region) skips its beginning.
            if lo > plan.start_sample:
                self._skip(lo - plan.start_sample)
        count = hi - lo
        first = self._position  # index inside the clip of data[:, 0]
        data = self._next(count).T  # (channels, count)
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

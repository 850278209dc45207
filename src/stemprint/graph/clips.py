"""Clip plans: every clip of the session resolved to timeline samples, its file checked.

Invariants
----------
- A :class:`ClipPlan` is immutable and complete: where its material starts in the file
  (``offset_frames``, file rate), where it lands on the timeline (``start_sample``, session
  rate), its length, gain, fades and envelope. ``render.sources`` streams it; nothing changes it.
- A clip never reads past the end of its file (lengths are floored at the session rate) unless it
  loops; fades fit inside the clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemprint.audiofile import AudioInfo, probe
from stemprint.errors import AudioFileError, InputError
from stemprint.model.load import LoadedSession, format_location
from stemprint.model.session import Clip
from stemprint.units import db_to_linear


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
    """Read a clip file's header: it must exist, hold samples and be mono or stereo."""
    fix = "check the path; clip paths are relative to the session file"
    info = probe(path, field=where, fix=fix)
    if info.length_samples <= 0:
        raise AudioFileError(
            f"audio file {path} holds no samples", field=where, fix="re-export the file"
        )
    if info.channels not in (1, 2):
        raise AudioFileError(
            f"audio file {path} has {info.channels} channels; tracks take mono or stereo",
            field=where,
            fix="split it into mono or stereo files, one track each",
        )
    return info


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
            where = f"{loaded.where((*loc, 'file'))}: " + format_location((*loc, "file"))
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
    file_seconds = info.length_samples / info.sample_rate
    offset_frames = round(clip.offset_seconds * info.sample_rate)
    if offset_frames >= info.length_samples:
        raise loaded.error(
            f"offset_seconds {clip.offset_seconds:g} is past the end of {clip.file} "
            f"({file_seconds:.6g} s long)",
            (*loc, "offset_seconds"),
            fix=f"use an offset below {file_seconds:.6g} s",
        )
    # Available material after the offset, in session samples (floor: never read past the end).
    available = math.floor((info.length_samples - offset_frames) * rate / info.sample_rate)
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
            max_seconds = (info.length_samples - offset_frames) / info.sample_rate
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
        source_frames=info.length_samples - offset_frames,
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

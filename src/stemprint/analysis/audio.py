"""Streaming access to the audio files of a stem package.

Everything here reads in blocks (:data:`BLOCK_FRAMES` frames at a time) so memory stays flat
whatever the length of the files. Blocks are float64 arrays shaped ``(channels, samples)``.
Blocks are returned as the transpose of the frame-interleaved buffer libsndfile fills, so
``block.T`` is C-contiguous and ``block.T.reshape(-1)`` is the interleaved buffer without a copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

from stemprint.errors import AudioFileError

#: Frames read per block by every streaming pass (about 1.4 s at 48 kHz).
BLOCK_FRAMES = 65536

#: File name extensions taken as audio when a package directory is scanned.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".bwf", ".rf64", ".w64", ".aif", ".aiff", ".aifc", ".flac"}
)

#: Bits of the integer PCM subtypes (libsndfile names).
_PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
#: Bits of the floating-point subtypes.
_FLOAT_BITS = {"FLOAT": 32, "DOUBLE": 64}

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says about one audio file.

    Attributes
    ----------
    path
        The file.
    sample_rate
        Samples per second per channel (Hz).
    channels
        Number of channels.
    length_samples
        Length in sample frames (samples per channel).
    format
        libsndfile container name (``WAV``, ``AIFF``, ``FLAC`` …).
    subtype
        libsndfile sample encoding (``PCM_24``, ``FLOAT`` …).
    """

    path: Path
    sample_rate: int
    channels: int
    length_samples: int
    format: str
    subtype: str

    @property
    def bit_depth(self) -> int | None:
        """Bits per sample of the encoding, or ``None`` for compressed/other encodings."""
        return _PCM_BITS.get(self.subtype) or _FLOAT_BITS.get(self.subtype)

    @property
    def is_float(self) -> bool:
        """Whether samples are stored as IEEE floating point (no fixed full scale)."""
        return self.subtype in _FLOAT_BITS

    @property
    def duration_seconds(self) -> float:
        """Length in seconds."""
        return self.length_samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def full_scale_positive(self) -> float:
        """Largest positive sample value the encoding can hold (:func:`full_scale_positive`)."""
        return full_scale_positive(self.subtype)


def full_scale_positive(subtype: str) -> float:
    """Largest positive sample value a libsndfile ``subtype`` holds, as read into float (≤ 1.0).

    Two's-complement PCM of ``b`` bits reads as ``k / 2**(b-1)``, so its largest positive value
    is ``1 - 2**-(b-1)``; floating point has no limit and reports 1.0 (0 dBFS).
    """
    bits = _PCM_BITS.get(subtype)
    if bits is None:
        return 1.0
    return 1.0 - 2.0 ** -(bits - 1)


def probe(path: Path) -> AudioInfo:
    """Read the header of one audio file.

    Parameters
    ----------
    path
        WAV, AIFF, FLAC or any other file libsndfile reads.

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioFileError
        If the file is missing, unreadable, corrupt or not audio.
    """
    if not path.exists():
        raise AudioFileError(
            "audio file not found", file=str(path), fix="check the path or the manifest entry"
        )
    if not path.is_file():
        raise AudioFileError("not a regular file", file=str(path), fix="pass an audio file")
    try:
        with sf.SoundFile(str(path)) as f:
            info = AudioInfo(
                path=path,
                sample_rate=int(f.samplerate),
                channels=int(f.channels),
                length_samples=int(f.frames),
                format=str(f.format),
                subtype=str(f.subtype),
            )
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioFileError(
            f"cannot read audio file ({exc})",
            file=str(path),
            fix="re-export it as WAV, AIFF or FLAC; the file is corrupt or not audio",
        ) from exc
    if info.channels < 1 or info.sample_rate < 1:
        raise AudioFileError(
            "audio file header has no channels or no sample rate",
            file=str(path),
            fix="re-export the file",
        )
    return info


class BlockReader:
    """Reads one file block by block as float64 ``(channels, samples)``, zero-padding past its end.

    Parameters
    ----------
    info
        The file to read (from :func:`probe`).
    start_sample
        First frame to read; may be negative (zeros are returned before the file start).
    """

    def __init__(self, info: AudioInfo, start_sample: int = 0) -> None:
        self.info = info
        self._pos = start_sample
        try:
            self._file = sf.SoundFile(str(info.path))
            if 0 < start_sample < info.length_samples:
                self._file.seek(start_sample)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioFileError(
                f"cannot open audio file ({exc})", file=str(info.path), fix="re-export the file"
            ) from exc

    def read(self, frames: int) -> Float64Array:
        """Return the next ``frames`` frames, shape ``(channels, frames)``, zero past the ends."""
        info = self.info
        out_t = np.zeros((frames, info.channels), dtype=np.float64)
        pos = self._pos
        lead = min(max(-pos, 0), frames)
        file_pos = max(pos, 0)
        want = min(frames - lead, max(info.length_samples - file_pos, 0))
        if want > 0:
            try:
                got = self._file.read(
                    want, dtype="float64", always_2d=True, out=out_t[lead : lead + want]
                )
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioFileError(
                    f"read error at sample {file_pos} ({exc})",
                    file=str(info.path),
                    fix="the file is truncated or corrupt; re-export it",
                ) from exc
            if len(got) < want:
                raise AudioFileError(
                    f"file ends early: header says {info.length_samples} samples, data stops at "
                    f"{file_pos + len(got)}",
                    file=str(info.path),
                    fix="the file is truncated; re-export it",
                )
        self._pos = pos + frames
        return out_t.T

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> BlockReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_excerpt(info: AudioInfo, start_sample: int, frames: int) -> Float64Array:
    """Read ``frames`` frames from ``start_sample`` (may be negative), zero outside the file.

    Returns
    -------
    numpy.ndarray
        float64, shape ``(channels, frames)``, C-contiguous.
    """
    with BlockReader(info, start_sample) as reader:
        return np.ascontiguousarray(reader.read(frames))


def iter_blocks(info: AudioInfo, block_frames: int = BLOCK_FRAMES) -> Iterator[Float64Array]:
    """Yield the whole file as float64 blocks shaped ``(channels, ≤ block_frames)``."""
    with BlockReader(info) as reader:
        done = 0
        while done < info.length_samples:
            n = min(block_frames, info.length_samples - done)
            yield reader.read(n)
            done += n


def amplitude_to_db(value: float, floor_db: float = -np.inf) -> float:
    """Return ``20·log10(value)`` in dB, ``floor_db`` (default −inf) for zero."""
    if value <= 0.0:
        return float(floor_db)
    return float(20.0 * np.log10(value))


def power_to_db(value: float) -> float:
    """Return ``10·log10(value)`` in dB, −inf for zero."""
    if value <= 0.0:
        return float(-np.inf)
    return float(10.0 * np.log10(value))

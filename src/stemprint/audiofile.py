"""One description of an audio file and one probe, for the render and the analysis alike.

Invariants
----------
- :func:`probe` reads only the header (libsndfile); a missing, unreadable, corrupt or empty
  file raises :class:`~stemprint.errors.AudioFileError` naming the file.
- Full scale: two's-complement PCM of ``b`` bits reads as ``k / 2**(b-1)``, so its largest
  positive value is ``1 - 2**-(b-1)``; floating point has no limit and reports 1.0 (0 dBFS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from stemprint.errors import AudioFileError

#: Bits of the integer PCM subtypes (libsndfile names).
_PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
#: Bits of the floating-point subtypes.
_FLOAT_BITS = {"FLOAT": 32, "DOUBLE": 64}


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


def probe(path: Path, field: str | None = None, fix: str | None = None) -> AudioInfo:
    """Read the header of one audio file.

    Parameters
    ----------
    path
        WAV, AIFF, FLAC or any other file libsndfile reads.
    field, fix
        Where the file is named (a session field) and how to fix a missing file, for messages.

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
            "audio file not found",
            file=str(path),
            field=field,
            fix=fix or "check the path or the manifest entry",
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
            field=field,
            fix="re-export it as WAV, AIFF or FLAC; the file is corrupt or not audio",
        ) from exc
    if info.channels < 1 or info.sample_rate < 1:
        raise AudioFileError(
            "audio file header has no channels or no sample rate",
            file=str(path),
            field=field,
            fix="re-export the file",
        )
    return info

"""Streaming access to the audio files of a stem package.

Everything here reads in blocks (:data:`BLOCK_FRAMES` frames at a time) so memory stays flat
whatever the length of the files. Blocks are float64 arrays shaped ``(channels, samples)``.
Blocks are C-contiguous, from :class:`~stemprint.planar.PlanarReader` (the values libsndfile
decodes; WAVE PCM decoded from its bytes).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import soundfile as sf

from stemprint.audiofile import AudioInfo, full_scale_positive, probe
from stemprint.errors import AudioFileError
from stemprint.planar import PlanarReader
from stemprint.units import amplitude_to_db, power_to_db

__all__ = ["AUDIO_EXTENSIONS", "BLOCK_FRAMES", "AudioInfo", "BlockReader", "Float64Array",
           "amplitude_to_db", "full_scale_positive", "iter_blocks", "power_to_db", "probe",
           "read_excerpt"]  # fmt: skip

#: Frames read per block by every streaming pass (about 1.4 s at 48 kHz).
BLOCK_FRAMES = 65536

Float64Array = npt.NDArray[np.float64]

#: File name extensions taken as audio when a package directory is scanned.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".bwf", ".rf64", ".w64", ".aif", ".aiff", ".aifc", ".flac"}
)


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
            self._reader = PlanarReader(info)
            if 0 < start_sample < info.length_samples:
                self._reader.seek(start_sample)
        except (OSError, sf.LibsndfileError, RuntimeError) as exc:
            raise AudioFileError(
                f"cannot open audio file ({exc})", file=str(info.path), fix="re-export the file"
            ) from exc

    def read(self, frames: int) -> Float64Array:
        """Return the next ``frames`` frames, shape ``(channels, frames)``, zero past the ends."""
        info = self.info
        pos = self._pos
        lead = min(max(-pos, 0), frames)
        file_pos = max(pos, 0)
        want = min(frames - lead, max(info.length_samples - file_pos, 0))
        self._pos = pos + frames
        got = self._read(file_pos, want) if want > 0 else None
        if got is not None and want == frames:
            return got
        out = np.zeros((info.channels, frames), dtype=np.float64)
        if got is not None:
            out[:, lead : lead + want] = got
        return out

    def _read(self, file_pos: int, want: int) -> Float64Array:
        try:
            got = self._reader.read(want)
        except (OSError, sf.LibsndfileError, RuntimeError) as exc:
            raise AudioFileError(
                f"read error at sample {file_pos} ({exc})",
                file=str(self.info.path),
                fix="the file is truncated or corrupt; re-export it",
            ) from exc
        if got.shape[1] < want:
            raise AudioFileError(
                f"file ends early: header says {self.info.length_samples} samples, data stops at "
                f"{file_pos + got.shape[1]}",
                file=str(self.info.path),
                fix="the file is truncated; re-export it",
            )
        return got

    def close(self) -> None:
        """Close the file."""
        self._reader.close()

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

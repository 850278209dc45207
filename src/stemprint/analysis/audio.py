"""Streaming access to the audio files of a stem package.

Everything here reads in blocks (:data:`BLOCK_FRAMES` frames at a time) so memory stays flat
whatever the length of the files. Blocks are float64 arrays shaped ``(channels, samples)``.
Blocks are returned as the transpose of the frame-interleaved buffer libsndfile fills, so
``block.T`` is C-contiguous and ``block.T.reshape(-1)`` is the interleaved buffer without a copy.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import soundfile as sf

from stemprint.audiofile import AudioInfo, full_scale_positive, probe
from stemprint.errors import AudioFileError
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

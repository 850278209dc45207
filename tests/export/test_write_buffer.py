"""libsndfile writes through :class:`WriteBuffer`: the same bytes, and a full disk is an OSError."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemprint.export import write_buffer
from stemprint.export.audio import AudioWriter
from stemprint.export.write_buffer import WriteBuffer

_FORMATS = [
    ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("WAVEX", "PCM_24"),
    ("RF64", "PCM_32"), ("AIFF", "PCM_24"), ("FLAC", "PCM_24"),
]  # fmt: skip


@pytest.mark.parametrize(("container", "subtype"), _FORMATS)
def test_the_bytes_are_libsndfile_s_own(tmp_path: Path, container: str, subtype: str) -> None:
    rng = np.random.default_rng(3)
    frames = (0.3 * rng.standard_normal((300_001, 6 if container == "WAVEX" else 2))).clip(-1, 1)
    direct, buffered = tmp_path / "direct", tmp_path / "buffered"
    with sf.SoundFile(str(direct), "w", 48000, frames.shape[1], subtype, format=container) as f:
        for start in range(0, frames.shape[0], 16384):
            f.write(frames[start : start + 16384])
    buffer = WriteBuffer(buffered)
    with sf.SoundFile(buffer, "w", 48000, frames.shape[1], subtype, format=container) as f:
        for start in range(0, frames.shape[0], 16384):
            f.write(frames[start : start + 16384])
    buffer.close()
    assert buffered.read_bytes() == direct.read_bytes()


class _FillsUp(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room, self.data = room, bytearray()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        return 0

    def seekable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        if len(self.data) + len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data += b
        return len(b)

    def seek(self, offset: int, whence: int = 0) -> int:
        return len(self.data) if whence == 2 else offset

    def tell(self) -> int:
        return len(self.data)


@pytest.mark.parametrize("room", [100_000, 2_500_000])
def test_a_full_disk_is_the_writers_oserror_and_nothing_is_printed(
    tmp_path: Path, monkeypatch, capfd, room: int
) -> None:
    """Whether the disk fills during a write (a small room) or at the final flush."""
    real_init = WriteBuffer.__init__

    def small_disk(self: WriteBuffer, path: Path) -> None:
        real_init(self, path)
        self._fh.close()
        raw = _FillsUp(room)
        self._fh = io.BufferedRandom(raw, write_buffer.BUFFER_BYTES)  # type: ignore[assignment]

    monkeypatch.setattr(WriteBuffer, "__init__", small_disk)
    writer = AudioWriter(tmp_path / "a.wav", 48000, 2, "24")
    block = 0.1 * np.ones((2, 48000))
    with pytest.raises(OSError) as caught:
        for _ in range(10):
            writer.write(block)
        writer.close()
    assert caught.value.errno == errno.ENOSPC
    writer.close_quietly()
    assert "Exception ignored" not in capfd.readouterr().err

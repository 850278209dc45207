"""RIFF and RF64 WAVE files: the chunks, where each one's data starts and its size.

Invariants
----------
- A chunk is an 8-byte header (four-character id, little-endian uint32 size) and ``size`` data
  bytes, padded to an even length (RIFF, Microsoft/IBM 1991); chunks follow one another from
  byte 12 after the ``RIFF``/``RF64``/``BW64`` form header and the ``WAVE`` form type.
- RF64 (EBU Tech 3306) and BW64 (ITU-R BS.2088) write 0xFFFFFFFF as the ``data`` size and the
  real 64-bit size in the ``ds64`` chunk, which comes first: :func:`riff_layout` reports the
  real size.
- Only the chunk headers are read, never the data; the walk stops at the end of the file, so a
  chunk that claims more bytes than the file holds is reported with its claimed size (callers
  check it against the file size).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

CHUNK_HEADER = struct.Struct("<4sI")
"""Chunk id and little-endian uint32 size."""

RIFF_LIMIT = 0xFFFFFFFF
"""Largest uint32 size; in RF64/BW64 the ``data`` size that says "see ``ds64``"."""


@dataclass(frozen=True)
class Chunk:
    """One chunk of a RIFF/RF64 file: its id, where its data starts and its size (bytes)."""

    id: bytes
    data_offset: int
    size: int


@dataclass(frozen=True)
class RiffLayout:
    """The chunks of a WAV (``RIFF``) or RF64 (``RF64``/``BW64``) file, in file order."""

    form: bytes
    chunks: list[Chunk] = field(default_factory=list)

    def find(self, chunk_id: bytes) -> Chunk | None:
        """The first chunk with ``chunk_id``."""
        return next((c for c in self.chunks if c.id == chunk_id), None)


def riff_layout(path: Path) -> RiffLayout:
    """Walk the chunks of ``path`` (RF64: the ``data`` size from ``ds64``).

    Raises
    ------
    ValueError
        Not a RIFF/RF64 WAVE file.
    """
    with path.open("rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF or RF64 WAVE file")
        end = path.stat().st_size
        layout = RiffLayout(head[:4])
        data_size_64: int | None = None
        offset = 12
        while offset + 8 <= end:
            handle.seek(offset)
            chunk_id, size = CHUNK_HEADER.unpack(handle.read(8))
            if chunk_id == b"ds64":
                data_size_64 = struct.unpack("<Q", handle.read(16)[8:])[0]
            if chunk_id == b"data" and size == RIFF_LIMIT and data_size_64 is not None:
                size = data_size_64
            layout.chunks.append(Chunk(chunk_id, offset + 8, size))
            offset += 8 + size + (size & 1)
        return layout

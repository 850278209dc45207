"""A minimal PNG writer for palette images (the spectrograms).

Invariants
----------
* The output depends only on the pixels and the palette: no time, no text chunks, no gamma;
  ``IHDR``, ``PLTE``, one ``IDAT`` (zlib level 9, filter type 0 on every row), ``IEND``.
* Pixels are 8-bit palette indices, row 0 at the top of the image.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def palette_png(indices: np.ndarray, palette: np.ndarray) -> bytes:
    """Encode a palette image.

    Parameters
    ----------
    indices
        uint8 array ``(height, width)`` of palette indices, row 0 at the top.
    palette
        uint8 array ``(n, 3)`` of RGB colours, ``n ≤ 256``.

    Returns
    -------
    bytes
        The PNG file.
    """
    pixels = np.ascontiguousarray(indices, dtype=np.uint8)
    height, width = pixels.shape
    colours = np.ascontiguousarray(palette, dtype=np.uint8)
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # a 0 filter byte before each row
    rows[:, 1:] = pixels
    body = zlib.compress(rows.tobytes(), 9)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"PLTE", colours.tobytes())
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )

"""Streaming audio file writer: quantization, dither, over counting, peaks.

stemprint quantizes integer formats itself instead of leaving it to libsndfile, because
libsndfile clips silently (``shared/reference/libraries.md``): here every sample that would
clip is counted before it is clipped, and the count goes into the manifest.

Scaling: full scale is ``2**(bits-1)``; a float sample ``x`` becomes ``round(x·2**(bits-1) + d)``
clipped to ``[−2**(bits-1), 2**(bits-1) − 1]``, where ``d`` is TPDF dither (the difference of two
uniform variables, ±1 LSB peak) when dithering. Reading such a file back as float with
libsndfile gives ``q / 2**(bits-1)`` exactly.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

BitDepth = Literal["16", "24", "32", "32f"]
Dither = Literal["auto", "none", "tpdf"]

SUBTYPES: dict[str, str] = {"16": "PCM_16", "24": "PCM_24", "32": "PCM_32", "32f": "FLOAT"}


@dataclass
class WriteStats:
    """What the writer measured while writing one file.

    Attributes
    ----------
    peak_linear
        Largest absolute sample value before quantization.
    overs
        Samples with ``|x| > 1.0`` before quantization (full scale exceeded).
    clipped_samples
        Samples clipped on quantization (integer formats; 0 for float).
    frames
        Frames written.
    """

    peak_linear: float = 0.0
    overs: int = 0
    clipped_samples: int = 0
    frames: int = 0

    @property
    def peak_dbfs(self) -> float:
        """Sample peak in dBFS (``-inf`` for silence), before quantization."""
        return 20 * math.log10(self.peak_linear) if self.peak_linear > 0 else -math.inf


class AudioWriter:
    """Writes ``(channels, n)`` float64 blocks to one audio file.

    Parameters
    ----------
    path
        File to write (normally inside the package's temporary folder).
    sample_rate
        Hz.
    channels
        Channel count of the file.
    bit_depth
        ``16``, ``24``, ``32`` (integer PCM) or ``32f`` (IEEE float).
    dither
        ``auto`` (TPDF for 16-bit only), ``none`` or ``tpdf`` (any integer format). Never
        applied to float.
    seed_name
        Seeds the dither generator, so every render of the same file is bit-identical.
    container
        ``WAV`` (default), ``AIFF`` or ``FLAC``.
    """

    def __init__(
        self,
        path: Path,
        sample_rate: int,
        channels: int,
        bit_depth: BitDepth = "24",
        dither: Dither = "auto",
        seed_name: str = "",
        container: str = "WAV",
    ) -> None:
        import soundfile as sf

        self.path = path
        self.bit_depth = bit_depth
        self.channels = channels
        self.float_format = bit_depth == "32f"
        self.bits = 32 if bit_depth in ("32", "32f") else int(bit_depth)
        if self.float_format or dither == "none":
            self.dither = False
        else:
            self.dither = dither == "tpdf" or (dither == "auto" and self.bits == 16)
        self._rng = np.random.default_rng(zlib.crc32(seed_name.encode("utf-8")))
        self.stats = WriteStats()
        self.subtype = SUBTYPES[bit_depth]
        self.container = container
        self._file = sf.SoundFile(
            str(path),
            mode="w",
            samplerate=sample_rate,
            channels=channels,
            subtype=self.subtype,
            format=container,
        )

    @property
    def dither_name(self) -> str:
        """``tpdf`` or ``none``."""
        return "tpdf" if self.dither else "none"

    def write(self, block: np.ndarray) -> None:
        """Quantize and append ``block`` (``(channels, n)`` float64)."""
        frames = block.shape[1]
        if frames == 0:
            return
        stats = self.stats
        absolute = np.abs(block)
        stats.peak_linear = max(stats.peak_linear, float(absolute.max()))
        stats.overs += int(np.count_nonzero(absolute > 1.0))
        stats.frames += frames
        interleaved = block.T  # (n, channels): soundfile's layout
        if self.float_format:
            self._file.write(np.ascontiguousarray(interleaved, dtype=np.float32))
            return
        scale = float(2 ** (self.bits - 1))
        scaled = interleaved * scale
        if self.dither:
            # Drawn frame-major in one stream, so the noise does not depend on the block size.
            noise = self._rng.random((frames, self.channels, 2))
            scaled = scaled + (noise[..., 0] - noise[..., 1])
        q = np.rint(scaled)
        low, high = -scale, scale - 1
        clipped = (q < low) | (q > high)
        count = int(np.count_nonzero(clipped))
        if count:
            stats.clipped_samples += count
            np.clip(q, low, high, out=q)
        if self.bits == 16:
            self._file.write(q.astype(np.int16))
        elif self.bits == 24:
            # libsndfile takes the top 24 bits of an int32 for PCM_24.
            self._file.write(q.astype(np.int32) << 8)
        else:
            self._file.write(q.astype(np.int32))

    def close(self) -> None:
        """Finish the file (writes the header sizes)."""
        self._file.close()

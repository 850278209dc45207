"""Streaming audio file writer: quantization, dither, over counting, peaks.

stemprint quantizes integer formats itself instead of leaving it to libsndfile, because
libsndfile clips silently (measured): here every sample that would
clip is counted before it is clipped, and the count goes into the manifest.

Scaling: full scale is ``2**(bits-1)``; a float sample ``x`` becomes ``round(x·2**(bits-1) + d)``
clipped to ``[−2**(bits-1), 2**(bits-1) − 1]``, where ``d`` is TPDF dither (the difference of two
uniform variables, ±1 LSB peak) when dithering. Reading such a file back as float with
libsndfile gives ``q / 2**(bits-1)`` exactly.

Broadcast WAV (``bwf``, WAV and RF64 only): the ``bext`` chunk is handed to libsndfile right
after the file is opened (before the first sample, as libsndfile requires), also when a file is
rewritten as mono; :meth:`AudioWriter.finish_bwf` appends ``iXML`` and writes the measured
loudness once the file is closed (``export.bwf``). The audio data is the same with or without.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from stemprint.dsp.layouts import CHANNEL_MASKS, layout_of
from stemprint.export.bwf import (
    BWF_CONTAINERS,
    BextLoudness,
    BroadcastInfo,
    finish_file,
    write_bext,
)
from stemprint.export.pcm import pack_pcm, raw_writable, write_raw
from stemprint.export.write_buffer import WriteBuffer
from stemprint.planar import interleave
from stemprint.units import amplitude_to_db

if TYPE_CHECKING:
    from stemprint.analysis.meters import FileLevels

BitDepth = Literal["16", "24", "32", "32f"]
Dither = Literal["auto", "none", "tpdf"]

SUBTYPES: dict[str, str] = {"16": "PCM_16", "24": "PCM_24", "32": "PCM_32", "32f": "FLOAT"}


SFC_SET_ADD_PEAK_CHUNK = 0x1050
"""libsndfile command (sndfile.h): whether float WAV/AIFF files get a PEAK chunk."""


def _drop_peak_chunk(handle: object) -> None:
    """Write no PEAK chunk: libsndfile stamps it with the wall-clock time, so two identical
    renders of a float file would differ in bytes (and in SHA-256). The peaks are in the
    manifest instead. Must be called before the first sample is written."""
    import soundfile as sf

    snd: Any = sf._snd
    ffi: Any = sf._ffi
    snd.sf_command(getattr(handle, "_file"), SFC_SET_ADD_PEAK_CHUNK, ffi.NULL, 0)  # noqa: B009


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
        return amplitude_to_db(self.peak_linear)


class PrintedFile(Protocol):
    """What the manifest and the Broadcast WAV fields read of a file of the package: an
    :class:`AudioWriter` after :meth:`~AudioWriter.close`, or a file reused from the render
    cache (``export.reuse.ReusedFile``)."""

    path: Path
    channels: int
    sample_rate: int
    container: str
    subtype: str
    stats: WriteStats
    bwf: BroadcastInfo | None

    @property
    def dither_name(self) -> str: ...

    def finish_bwf(self, levels: FileLevels | BextLoudness | None = None) -> None: ...

    def close_quietly(self) -> None: ...


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
    monitor
        Called with every block handed to libsndfile, ``(channels, n)`` float64 holding exactly
        the values a reader decodes (``analysis.live``: the package measured while written).
    bwf
        Broadcast WAV metadata for ``bext`` and ``iXML`` (ignored for AIFF and FLAC); finish
        with :meth:`finish_bwf` after :meth:`close`.
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
        render_sample_rate: int | None = None,
        lag_samples: int = 0,
        mono_if_identical: bool = False,
        fade_out: tuple[int, int] | None = None,
        wrap_at: int | None = None,
        wrap_tail: int = 0,
        monitor: Callable[[np.ndarray], None] | None = None,
        bwf: BroadcastInfo | None = None,
    ) -> None:
        import soundfile as sf

        self.monitor = monitor
        self.path = path
        self.bit_depth = bit_depth
        self.channels = channels
        self.float_format = bit_depth == "32f"
        self.bits = 32 if bit_depth in ("32", "32f") else int(bit_depth)
        if self.float_format or dither == "none":
            self.dither = False
        else:
            self.dither = dither == "tpdf" or (dither == "auto" and self.bits == 16)
        # Only a dithered file draws noise (numpy.random costs ~50 ms to import).
        self._rng = (
            np.random.default_rng(zlib.crc32(seed_name.encode("utf-8"))) if self.dither else None
        )
        self.stats = WriteStats()
        self.subtype = SUBTYPES[bit_depth]
        if container == "WAV" and channels > 2:
            # WAVE_FORMAT_EXTENSIBLE with a channel mask: readers know the layout (ffprobe
            # "5.1"); plain WAV would carry no mask above two channels.
            container = "WAVEX"
        self.container = container
        resampling = (render_sample_rate or sample_rate) != sample_rate
        # libsndfile's own file handle where the end may be cut (it can truncate), else the
        # buffered one (export.write_buffer): the same bytes in fewer, larger writes.
        self._buffer = None if resampling else WriteBuffer(path)
        try:
            self._file = sf.SoundFile(
                str(path) if self._buffer is None else self._buffer,
                mode="w",
                samplerate=sample_rate,
                channels=channels,
                subtype=self.subtype,
                format=container,
            )
        except Exception as exc:  # noqa: BLE001 - libsndfile refuses some format combinations
            from stemprint.errors import InputError

            if self._buffer is not None:
                self._buffer.close()
                path.unlink(missing_ok=True)
            raise InputError(
                f"cannot write {container} with {self.subtype}: {exc}",
                field="delivery.format / --bit-depth",
                fix="FLAC takes 16 or 24 bit; WAV and AIFF take 16, 24, 32 and 32f",
            ) from None
        if self.float_format:
            _drop_peak_chunk(self._file)
        # WAVE-family samples are packed here (export.pcm), not converted by libsndfile.
        self._raw = raw_writable(container)
        self.bwf = bwf if container in BWF_CONTAINERS else None
        self._bwf_finished = False
        if self.bwf is not None:
            try:
                write_bext(self._file, self.bwf, sample_rate, self.bits)
            except BaseException:
                self._close_file()
                raise
        self.sample_rate = sample_rate
        self.render_sample_rate = render_sample_rate or sample_rate
        self._resampler = None
        if self.render_sample_rate != sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(
                self.render_sample_rate, sample_rate, channels, dtype="float64", quality="VHQ"
            )
        # Samples held back (not yet written) so that the end can still be cut (until_silent).
        self.lag_samples = lag_samples
        self._pending = np.zeros((channels, 0))
        self._frames_in = 0
        self._limit: int | None = None
        self._frames_out = 0
        # Cutdowns: a linear fade over (start_frame, length) render-rate frames.
        self._fade_out = fade_out
        # Loops: frames from ``wrap_at`` on are added onto the start; the start is written last.
        self._wrap_at = wrap_at
        self._wrap_tail = max(wrap_tail, 1)
        self._head: np.ndarray | None = None
        self._head_written = False
        # Mono where the route is mono: track whether both channels stay identical.
        self._identical = mono_if_identical and channels == 2

    @property
    def dither_name(self) -> str:
        """``tpdf`` or ``none``."""
        return "tpdf" if self.dither else "none"

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` (``(channels, n)`` float64, at the render rate).

        The last ``lag_samples`` stay pending until more arrive or the file is closed, so that
        :meth:`set_length` can still cut the end.
        """
        if block.shape[0] != self.channels:
            block = (
                block[: self.channels]
                if block.shape[0] > self.channels
                else np.repeat(block, self.channels, axis=0)
            )
        first = self._frames_in
        self._frames_in += block.shape[1]
        if self._fade_out is not None:
            from stemprint.dsp.fades import fade_gain

            fade_start, fade_length = self._fade_out
            index = np.arange(first, first + block.shape[1]) - fade_start
            block = block * np.where(index < 0, 1.0, fade_gain("linear", index, fade_length, "out"))
        if self._wrap_at is not None:
            block = self._wrap(block, first)
            if block.shape[1] == 0:
                return
        if self.lag_samples:
            self._pending = np.concatenate([self._pending, block], axis=1)
            ready = self._pending.shape[1] - self.lag_samples
            if ready > 0:
                self._resample_and_emit(self._pending[:, :ready])
                self._pending = self._pending[:, ready:]
        else:
            self._resample_and_emit(block)

    def _wrap(self, block: np.ndarray, first: int) -> np.ndarray:
        """Loops: hold the first ``H`` frames back, add every frame past the loop end onto
        them, pass the rest through. Returns the frames to write now."""
        length = self._wrap_at
        assert length is not None
        head_size = self._head_size
        if self._head is None:
            self._head = np.zeros((self.channels, head_size))
        index = np.arange(first, first + block.shape[1])
        in_head = index < head_size
        if in_head.any():
            self._head[:, index[in_head]] += block[:, in_head]
        past = index >= length
        if past.any():
            positions = (index[past] - length) % length
            keep = positions < head_size
            # add.at: a short loop can wrap several frames of one block onto one head frame.
            np.add.at(self._head.T, positions[keep], block[:, past][:, keep].T)
        middle = ~in_head & ~past
        if middle.any() and not self._head_written:
            self._reserve_head()
        return block[:, middle]

    def _reserve_head(self) -> None:
        assert self._head is not None
        self._head_written = True
        # Silent frames where the head goes; written through libsndfile unscaled so they do not
        # count in the statistics, and overwritten by the head at close.
        self._write(np.zeros((self._head.shape[1], self.channels), np.float32))

    @property
    def _head_size(self) -> int:
        return min(self._wrap_tail, self._wrap_at or 0)

    def set_length(self, frames: int) -> None:
        """Cut the file at ``frames`` render-rate samples (within the pending lag)."""
        self._limit = frames

    def _resample_and_emit(self, block: np.ndarray, last: bool = False) -> None:
        if self._resampler is None:
            self._emit(block)
            return
        out = self._resampler.resample_chunk(interleave(block, np.float64), last=last)
        if out.shape[0]:
            self._emit(np.ascontiguousarray(out.T))

    def _emit(self, block: np.ndarray) -> None:
        """Quantize and write ``block`` (``(channels, n)`` float64, at the file's rate)."""
        frames = block.shape[1]
        if frames == 0:
            return
        self._frames_out += frames
        if self._identical and not np.array_equal(block[0], block[1]):
            self._identical = False
        stats = self.stats
        # Two reductions instead of an |x| buffer; overs are counted only when there are any.
        top, bottom = float(block.max()), float(block.min())
        peak = max(top, -bottom)
        stats.peak_linear = max(stats.peak_linear, peak)
        if peak > 1.0:
            stats.overs += int(np.count_nonzero(np.abs(block) > 1.0))
        stats.frames += frames
        if self.float_format:
            as_float32 = interleave(block, np.float32)
            self._write_samples(as_float32)
            if self.monitor is not None:
                self.monitor(as_float32.T.astype(np.float64))
            return
        scale = float(2 ** (self.bits - 1))
        q = block * scale  # (channels, n), contiguous: interleaved once, after rounding
        if self.dither:
            # Drawn frame-major in one stream, so the noise does not depend on the block size.
            assert self._rng is not None
            noise = self._rng.random((frames, self.channels, 2))
            q += (noise[..., 0] - noise[..., 1]).T
        np.rint(q, out=q)
        low, high = -scale, scale - 1
        # rint is monotonic: without dither nothing rounds past full scale when the block's
        # extremes do not; TPDF dither adds less than 1 LSB. Only a block near full scale is
        # searched for the values it clips.
        margin = 1.0 if self.dither else 0.0
        near_full_scale = top * scale + margin > high or bottom * scale - margin < low
        if near_full_scale and (float(q.max()) > high or float(q.min()) < low):
            clipped = (q < low) | (q > high)
            stats.clipped_samples += int(np.count_nonzero(clipped))
            np.clip(q, low, high, out=q)
        # Exact: q holds integers in range.
        interleaved = interleave(q, np.int16 if self.bits == 16 else np.int32)
        self._write_samples(interleaved)
        if self.monitor is not None:
            # Exactly what a reader decodes: libsndfile reads PCM as integer / full scale.
            self.monitor(q / scale)

    def _write_samples(self, frames: np.ndarray) -> None:
        """Write ``frames`` ``(n, channels)``: float32, or integers at the file's bit depth
        (24-bit in the low bits of int32; shifted in place for libsndfile's conversion)."""
        if self._raw:
            self._write_raw(pack_pcm(frames, self.bits))
            return
        if self.bits == 24 and not self.float_format:
            frames <<= 8  # libsndfile takes the top 24 bits of an int32 for PCM_24
        self._write(frames)

    def _write_raw(self, data: np.ndarray) -> None:
        """Hand packed sample bytes to libsndfile; a failed write raises its OSError."""
        taken = write_raw(self._file, data)
        if self._buffer is not None:
            self._buffer.raise_error()
        if taken != data.nbytes:
            raise OSError(f"{self.path}: libsndfile wrote {taken} of {data.nbytes} bytes")

    def _write(self, frames: np.ndarray) -> None:
        """Hand ``frames`` ``(n, channels)`` to libsndfile; a failed write raises its OSError."""
        try:
            self._file.write(frames)
        except (AssertionError, RuntimeError):  # soundfile asserts every frame was written
            if self._buffer is not None:
                self._buffer.raise_error()
            raise
        if self._buffer is not None:
            self._buffer.raise_error()

    def _close_file(self) -> None:
        """Close libsndfile's file (it writes the header) and then the buffer under it."""
        try:
            self._file.close()
        except RuntimeError:
            if self._buffer is not None:
                self._buffer.close()  # raises the write error behind libsndfile's
            raise
        if self._buffer is not None:
            self._buffer.close()

    def close_quietly(self) -> None:
        """Close after a failure elsewhere, never raising (the file is about to be removed)."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - best effort while failing
            # libsndfile's file first: closing it writes through the buffer.
            closers = [self._file.close] + ([self._buffer.close] if self._buffer else [])
            for close in closers:
                try:
                    close()
                except Exception:  # noqa: BLE001, S110 - best effort while failing
                    pass

    def close(self) -> None:
        """Write what is pending (up to the length set), flush the resampler, finish the file."""

        total_in = self._frames_in if self._limit is None else min(self._limit, self._frames_in)
        flushed_in = self._frames_in - self._pending.shape[1]
        keep = max(total_in - flushed_in, 0)
        self._resample_and_emit(self._pending[:, :keep], last=self._resampler is not None)
        self._pending = np.zeros((self.channels, 0))
        if self._resampler is not None:
            # Every file of a package gets the same exact length at the delivery rate.
            expected = round(total_in * self.sample_rate / self.render_sample_rate)
            if self._frames_out < expected:
                self._emit(np.zeros((self.channels, expected - self._frames_out)))
            elif self._frames_out > expected:
                self._file.truncate(expected)
                self.stats.frames = expected
        if self._wrap_at is not None and self._head is not None:
            if not self._head_written:  # the loop is no longer than its head
                self._reserve_head()
            end = self._file.tell()
            self._file.seek(0)
            self._emit(self._head)
            self._file.seek(end)
            self._head = None
        self._close_file()
        if self._identical and self._frames_out:
            self._rewrite_mono()
        if self.container in ("WAVEX", "RF64") and self.channels > 2:
            set_channel_mask(self.path, CHANNEL_MASKS[layout_of(self.channels)])

    def _rewrite_mono(self) -> None:
        """Both channels were identical all along: rewrite the file as mono (exact copy)."""
        import soundfile as sf

        tmp = self.path.with_name(self.path.name + ".mono")
        integer = "int32" if self.subtype != "FLOAT" else "float32"
        with (
            sf.SoundFile(str(self.path)) as source,
            sf.SoundFile(
                str(tmp), "w", source.samplerate, 1, self.subtype, format=self.container
            ) as target,
        ):
            if self.float_format:
                _drop_peak_chunk(target)
            if self.bwf is not None:
                write_bext(target, self.bwf, self.sample_rate, self.bits)
            for block in source.blocks(65536, dtype=integer, always_2d=True):
                target.write(np.ascontiguousarray(block[:, :1]))
        tmp.replace(self.path)
        self.channels = 1

    def finish_bwf(self, levels: FileLevels | BextLoudness | None = None) -> None:
        """After :meth:`close`: append the ``iXML`` chunk and write the loudness fields of
        ``bext`` (``None``: unknown, 0x7FFF). Once; nothing for a file without ``bwf``."""
        if self.bwf is None or self._bwf_finished:
            return
        loudness = levels if isinstance(levels, BextLoudness) else BextLoudness.from_levels(levels)
        finish_file(self.path, self.bwf, self.sample_rate, self.bits, self.channels, loudness)
        self._bwf_finished = True


def set_channel_mask(path: Path, mask: int) -> None:
    """Write ``dwChannelMask`` (offset 20 of the ``fmt `` chunk's data, WAVE_FORMAT_EXTENSIBLE).

    libsndfile writes its own default for the channel count (six channels 0x3F, the 5.1 mask;
    eight channels 0xFF, front-of-centre speakers), and cannot be told another: the 7.1 layout
    (0x63F, side and rear surrounds) is patched in place after the file is closed.
    """
    from stemprint.riff import riff_layout

    fmt = riff_layout(path).find(b"fmt ")
    if fmt is None or fmt.size < 24:
        return
    with path.open("r+b") as handle:
        handle.seek(fmt.data_offset)
        if int.from_bytes(handle.read(2), "little") != 0xFFFE:
            return
        handle.seek(fmt.data_offset + 20)
        handle.write(mask.to_bytes(4, "little"))

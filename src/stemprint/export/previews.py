"""Encoded previews of a package: MP3, Opus or AAC, loudness-matched, gapless, sample-aligned.

For each ``delivery.previews`` entry the mix (and, with ``stems: true``, every stem) is read
back from the package block by block and encoded with PyAV's FFmpeg encoders into
``previews/``, mirroring the package's folders (``previews/mix.mp3``,
``previews/stems/Drums.mp3``). A format given twice gets the bit rate in the name
(``mix.128k.mp3``).

Loudness matching (``normalize``), Spotify-style, no limiter
------------------------------------------------------------
- ``L`` and ``TP``: integrated loudness and true peak of the WAV, ITU-R BS.1770-4 with the
  EBU Tech 3341 gates (:class:`~stemprint.analysis.meters.LevelMeter`).
- ``gain_dB = min(target_LUFS − L, ceiling_dBTP − TP)``: to the target, capped so that the true
  peak after the gain stays at or below the ceiling (positive gain only while the headroom
  lasts). A silent file (``L = −∞``) keeps 0 dB.
- Lossy coding raises the true peak, so every pass is **decoded again** (PyAV) and re-measured:
  if the decoded true peak ``TP'`` passes the ceiling the gain is lowered by the excess (plus a
  margin that doubles each pass, from 0.01 dB); if the decoded loudness ``L'`` misses the
  target by more than :data:`LOUDNESS_TOLERANCE_LU` (coding changes the loudness: libmp3lame
  decodes about 0.27 dB low) the gain moves by ``target − L'``, within the decoded true
  peak's room and never above the WAV's own cap. At most :data:`MAX_PASSES` encodes; the
  manifest records every pass, the final gain and the decoded ``L'`` and ``TP'``
  (``limited_by``: ``target``, or ``true_peak`` when the cap kept it below the target).
- Files of more than two channels are folded down to stereo first (ITU-R BS.775 matrix, LFE
  left out): a preview is a listening copy; the loudness is that of the fold-down.

Gapless and sample-aligned (the encoder priming is declared, never left in)
---------------------------------------------------------------------------
- MP3 (libmp3lame, CBR): the MP3 muxer's Xing/``Info`` frame carries the LAME tag, whose
  12-bit encoder delay and padding fields declare the priming and the final padding. The
  tag's encoder string stays ``Lavf``: decoders (FFmpeg's among them) read the gapless fields
  only after a known encoder string.
- Opus (libopus, Ogg, RFC 7845): always 48 kHz (other package rates are resampled with soxr
  VHQ, which adds no delay); ``OpusHead`` pre-skip declares the priming, the granule position
  of the last page the end.
- AAC (FFmpeg ``aac``, M4A, ISO/IEC 14496-12): an edit list (``elst``, §8.6.6) whose
  ``media_time`` skips the 1024 priming samples and whose ``segment_duration`` is the exact
  length; the movie timescale is set to the sample rate so that the duration is not rounded to
  milliseconds. Decoders that stop at the end of the edit return exactly the WAV's length
  (FFmpeg skips the priming but decodes the last frame's padding: the declared length is
  where the content ends).
- Measured on every file: the length a decoder honouring those fields returns, and the lag
  between the decoded preview and the encoder's input, found by cross-correlation
  (:func:`lag_samples`) over :data:`EXCERPT_FRAMES` around the file's largest onset (the
  largest rise of energy between 4096-frame cells): an onset makes the peak of the
  correlation unique, where steady periodic material (a sine bass) repeats it every period.

Deterministic bytes: muxers and encoders run with ``bitexact`` (no library version in the
ID3/Ogg/MP4 metadata, a fixed Ogg stream serial number, MP4 creation times of 0), fixed bit
rates, no dates, no random numbers: two renders give identical files.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from stemprint.analysis.audio import BLOCK_FRAMES, BlockReader, probe
from stemprint.analysis.meters import FileLevels, LevelMeter, fold_down_matrix
from stemprint.errors import RenderError
from stemprint.export.manifest import json_db, sha256_file
from stemprint.planar import interleave

if TYPE_CHECKING:
    from stemprint.export.deliverables import DeliverableContext

PREVIEW_FOLDER = "previews"
"""Folder of the previews inside the package."""

MAX_PASSES = 4
"""Most encodes of one preview (the first plus corrections after decoding)."""

LOUDNESS_TOLERANCE_LU = 0.2
"""Decoded loudness closer than this to the target needs no further pass."""

EXCERPT_FRAMES = 8192
"""Length of the excerpt the lag is measured on, in source frames: the 4096-frame cell before
the largest onset and the cell where it happens (short, so that the onset dominates)."""

MAX_LAG_SAMPLES = 4096
"""Largest lag searched (both ways): above every codec's priming (MP3 1105, AAC 1024+)."""

_ENERGY_HOP = 4096  # frames per energy cell when the onset is looked for
_SOURCE_ROLES = ("mix",)


@dataclass(frozen=True)
class Codec:
    """How one preview format is encoded and muxed.

    Attributes
    ----------
    name
        ``mp3``, ``opus`` or ``aac``.
    encoder
        FFmpeg encoder.
    container
        FFmpeg muxer.
    extension
        File extension.
    sample_format
        Encoder input format (``fltp`` planar or ``flt`` interleaved float32).
    rates
        Sample rates the encoder takes; another rate is resampled to :attr:`fallback_rate`.
    gapless
        How the priming and padding are declared.
    trims_to_declared
        The container declares the length (edit list); the decoded tail beyond it is padding.
    """

    name: str
    encoder: str
    container: str
    extension: str
    sample_format: str
    rates: tuple[int, ...]
    gapless: str
    trims_to_declared: bool = False
    fallback_rate: int = 48000

    def rate_for(self, sample_rate: int) -> int:
        """The encoding rate of a file at ``sample_rate``."""
        if sample_rate in self.rates:
            return sample_rate
        if sample_rate % 44100 == 0 and 44100 in self.rates:
            return 44100
        return self.fallback_rate

    def container_options(self, rate: int) -> dict[str, str]:
        """Muxer options: bit-exact output, plus what the format's gapless playback needs."""
        options = {"fflags": "+bitexact"}
        if self.name == "mp3":
            options["write_xing"] = "1"
        elif self.name == "aac":
            options |= {"movflags": "+faststart", "use_editlist": "1",
                        "movie_timescale": str(rate)}  # fmt: skip
        return options


CODECS: dict[str, Codec] = {
    "mp3": Codec(
        "mp3", "libmp3lame", "mp3", "mp3", "fltp",
        (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
        "LAME tag (encoder delay and padding) in the Xing/Info frame",
    ),
    "opus": Codec(
        "opus", "libopus", "ogg", "opus", "flt", (48000,),
        "OpusHead pre-skip and the granule position of the last Ogg page",
    ),
    "aac": Codec(
        "aac", "aac", "ipod", "m4a", "fltp",
        (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000),
        "MP4 edit list (elst media_time = priming, segment_duration = length)",
        trims_to_declared=True,
    ),
}  # fmt: skip
"""The preview formats."""


# -- reading the package's files -----------------------------------------------------------------


@dataclass
class _Source:
    """One package file as the encoder is fed it: folded to at most two channels (its own rate;
    :func:`_resampled` converts)."""

    path: Path
    rate: int
    length_samples: int
    channels: int  # after the fold-down
    fold: np.ndarray | None

    def blocks(self, gain: float = 1.0) -> Iterator[np.ndarray]:
        """The file (folded, times ``gain``) in float64 blocks ``(channels, n)``."""
        info = probe(self.path)
        with BlockReader(info) as reader:
            done = 0
            while done < self.length_samples:
                n = min(BLOCK_FRAMES, self.length_samples - done)
                block = reader.read(n)
                if self.fold is not None:
                    block = self.fold @ block
                yield block * gain if gain != 1.0 else block
                done += n


def _source(path: Path) -> _Source:
    info = probe(path)
    fold = fold_down_matrix(info.channels) if info.channels > 2 else None
    if info.channels > 2 and fold is None:
        fold = np.full((2, info.channels), 1.0 / info.channels)  # no known layout: plain mix
    channels = 2 if fold is not None else info.channels
    return _Source(path, info.sample_rate, info.length_samples, channels, fold)


@dataclass(frozen=True)
class _SourceLevels:
    levels: FileLevels
    excerpt_start: int  # source frames: the lag excerpt (around the largest onset) starts here


def _measure_source(source: _Source) -> _SourceLevels:
    """BS.1770 levels of the (folded) file and where its lag excerpt starts."""
    meter = LevelMeter(source.rate, source.channels)
    energy: list[float] = []
    for block in source.blocks():
        meter.process(block)
        for k in range(0, block.shape[1], _ENERGY_HOP):
            energy.append(float(np.square(block[:, k : k + _ENERGY_HOP]).sum()))
    # The largest rise of energy from one cell to the next (an onset, from silence when the
    # file has one): periodic material alone would let the correlation peak a period away.
    rise = np.diff(np.asarray(energy), prepend=0.0) if energy else np.zeros(1)
    start = max(int(np.argmax(rise)) - 1, 0) * _ENERGY_HOP
    return _SourceLevels(meter.result(), start)


# -- encoding and decoding -----------------------------------------------------------------------


@dataclass
class _Excerpt:
    """Frames ``[start, start + length)`` of a stream, summed to mono, captured in passing."""

    start: int
    length: int
    data: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.data = np.zeros(max(self.length, 0))

    def feed(self, position: int, block: np.ndarray) -> None:
        """Copy the part of ``block`` (first frame at ``position``) inside the excerpt."""
        lo = max(self.start, position)
        hi = min(self.start + self.length, position + block.shape[1])
        if hi > lo:
            self.data[lo - self.start : hi - self.start] = block[
                :, lo - position : hi - position
            ].sum(axis=0)


def _frame(block: np.ndarray, codec: Codec, rate: int, layout: str, pts: int) -> Any:
    import av

    data = block.astype(np.float32)
    if codec.sample_format == "flt":
        data = interleave(data, np.float32).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), codec.sample_format, layout)
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = Fraction(1, rate)
    return frame


def _layout(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"


def _resampled(blocks: Iterator[np.ndarray], rate_in: int, rate_out: int) -> Iterator[np.ndarray]:
    """``blocks`` at ``rate_out`` (soxr VHQ streaming: no delay, as a one-shot resample)."""
    if rate_in == rate_out:
        yield from blocks
        return
    import soxr

    stream: Any = None
    pending: np.ndarray | None = None
    for block in blocks:
        if stream is None:
            stream = soxr.ResampleStream(
                rate_in, rate_out, block.shape[0], dtype="float64", quality="VHQ"
            )
        if pending is not None:
            yield stream.resample_chunk(interleave(pending)).T
        pending = block
    if stream is not None and pending is not None:
        yield stream.resample_chunk(interleave(pending), last=True).T


def _encode(
    path: Path,
    source: _Source,
    codec: Codec,
    bitrate_kbps: int,
    gain_db: float,
    rate: int,
    excerpt: _Excerpt,
) -> int:
    """Encode ``source`` × gain into ``path``; the encoder's input frames (excerpt captured)."""
    import av

    layout = _layout(source.channels)
    gain = 10.0 ** (gain_db / 20.0)
    container = av.open(
        str(path), "w", format=codec.container, container_options=codec.container_options(rate)
    )
    try:
        stream: Any = container.add_stream(codec.encoder, rate=rate, layout=layout)
        stream.bit_rate = bitrate_kbps * 1000
        context = stream.codec_context
        context.format = codec.sample_format
        context.flags |= av.codec.context.Flags.bitexact
        position = 0
        for block in _resampled(source.blocks(gain), source.rate, rate):
            if block.shape[1] == 0:
                continue
            excerpt.feed(position, block)
            for packet in stream.encode(_frame(block, codec, rate, layout, position)):
                container.mux(packet)
            position += block.shape[1]
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()
    return position


def _declared_frames(stream: Any, rate: int) -> int | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return round(stream.duration * stream.time_base * rate)


def _decode(path: Path, codec: Codec, channels: int, excerpt: _Excerpt) -> tuple[FileLevels, int]:
    """Decode ``path`` (PyAV) as a gapless player does; its levels and decoded length."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        limit = _declared_frames(stream, rate) if codec.trims_to_declared else None
        meter = LevelMeter(rate, channels)
        position = 0
        for frame in container.decode(stream):
            data = frame.to_ndarray().astype(np.float64)
            if not frame.format.is_planar:
                data = data.reshape(-1, channels).T
            if limit is not None:
                data = data[:, : max(limit - position, 0)]
            if data.shape[1] == 0:
                continue
            meter.process(data)
            excerpt.feed(position, data)
            position += data.shape[1]
    return meter.result(), position


def lag_samples(reference: np.ndarray, signal: np.ndarray, margin: int) -> int | None:
    """Lag of ``signal`` against ``reference`` (positive: ``signal`` is late), where ``signal``
    holds ``margin`` extra samples on each side: the maximum of the normalised
    cross-correlation ``Σ s[n+k]·r[n] / sqrt(Σ s[n+k]² · Σ r[n]²)`` over ``k ∈ [0, 2·margin]``
    (FFT correlation; window energies from a cumulative sum). Normalising makes a window that
    holds more of the signal than the reference does (a shifted onset) score lower.

    Returns ``None`` when the reference is silent (nothing to align).
    """
    energy = float(np.dot(reference, reference))
    if energy == 0.0:
        return None
    size = 1 << int(math.ceil(math.log2(len(signal) + len(reference))))
    spectrum = np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size))
    correlation = np.fft.irfft(spectrum, size)[: 2 * margin + 1]
    cumulative = np.concatenate([[0.0], np.cumsum(signal * signal)])
    lags = np.arange(2 * margin + 1)
    window = cumulative[np.minimum(lags + len(reference), len(signal))] - cumulative[lags]
    score = correlation / np.sqrt(np.maximum(window, 1e-300) * energy)
    return int(np.argmax(score)) - margin


# -- declared priming (read back from the file's own headers) ------------------------------------


def declared_priming(path: Path, codec: Codec) -> dict[str, int | None]:
    """The priming (and padding or length) the file declares: LAME tag, OpusHead or elst."""
    if codec.name == "aac":
        return _elst_fields(path.read_bytes())
    with path.open("rb") as handle:
        head = handle.read(1 << 16)  # the Xing frame and the first Ogg pages sit at the start
    if codec.name == "mp3":
        return _lame_fields(head)
    at = head.find(b"OpusHead")  # RFC 7845 §5.1: pre-skip is the 16-bit LE field at byte 10
    return {"priming_samples": struct.unpack_from("<H", head, at + 10)[0] if at >= 0 else None}


def _lame_fields(data: bytes) -> dict[str, int | None]:
    """Encoder delay and padding of the LAME tag after a Xing/Info header, as decoder samples.

    The Xing header is the tag, 32-bit flags, then frames (flag 1), bytes (2), a 100-byte TOC
    (4) and a quality (8); the LAME extension follows, its 12-bit delay and padding at byte
    21. A decoder skips ``delay + 529`` samples (its own 528 + 1 included) and drops the last
    ``padding − 529``.
    """
    for tag in (b"Info", b"Xing"):
        at = data.find(tag)
        if at < 0:
            continue
        flags = struct.unpack_from(">I", data, at + 4)[0]
        lame = at + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4)
        lame += 4 * bool(flags & 8)
        raw = data[lame + 21 : lame + 24]
        if len(raw) == 3:
            delay = (raw[0] << 4) | (raw[1] >> 4)
            padding = ((raw[1] & 0x0F) << 8) | raw[2]
            return {"priming_samples": delay + 529, "padding_samples": padding - 529}
    return {"priming_samples": None}


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """ISO/IEC 14496-12 boxes in ``data[start:end]``: (type, body start, box end)."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        body = at + 8
        if size == 1:
            size, body = struct.unpack_from(">Q", data, at + 8)[0], at + 16
        elif size == 0:
            size = end - at
        if size < 8:
            return
        yield kind, body, at + size
        at += size


def _elst_fields(data: bytes) -> dict[str, int | None]:
    """``media_time`` and ``segment_duration`` of the first edit of ``moov/trak/edts/elst``
    (§8.6.6, a full box: version, flags, entry count, then the entries; version 1 has 64-bit
    fields)."""
    span = (0, len(data))
    for wanted in (b"moov", b"trak", b"edts", b"elst"):
        found = next(((b, e) for kind, b, e in _boxes(data, *span) if kind == wanted), None)
        if found is None:
            return {"priming_samples": None}
        span = found
    body = span[0]
    if data[body] == 1:
        duration, media_time = struct.unpack_from(">Qq", data, body + 8)
    else:
        duration, media_time = struct.unpack_from(">Ii", data, body + 8)
    return {"priming_samples": media_time, "declared_length_samples": duration}


# -- one preview ---------------------------------------------------------------------------------


@dataclass
class _Pass:
    gain_db: float
    levels: FileLevels
    length: int
    lag: int | None


def _gain_plan(levels: FileLevels, normalize: Any) -> tuple[float, float]:
    """The first gain and its cap (the WAV's true-peak headroom under the ceiling)."""
    if normalize is None or not math.isfinite(levels.loudness_lufs):
        return 0.0, 0.0
    cap = normalize.ceiling_dbtp - levels.true_peak_dbtp
    return min(normalize.target_lufs - levels.loudness_lufs, cap), cap


def _next_gain(result: _Pass, normalize: Any, cap_db: float, passes: int) -> float | None:
    """The corrected gain after a decoded pass (never above ``cap_db``), or ``None``."""
    over = result.levels.true_peak_dbtp - normalize.ceiling_dbtp
    if over > 0:
        return result.gain_db - over - 0.01 * 2**passes
    miss = normalize.target_lufs - result.levels.loudness_lufs
    if not math.isfinite(miss) or abs(miss) <= LOUDNESS_TOLERANCE_LU:
        return None
    corrected = min(result.gain_db + miss, result.gain_db - over, cap_db)
    return corrected if abs(corrected - result.gain_db) > 0.005 else None


def _encode_pass(
    target: Path, source: _Source, codec: Codec, bitrate: int, gain_db: float, start: int
) -> _Pass:
    rate = codec.rate_for(source.rate)
    at = round(start * rate / source.rate)
    width = round(EXCERPT_FRAMES * rate / source.rate)
    fed = _Excerpt(at, width)
    frames = _encode(target, source, codec, bitrate, gain_db, rate, fed)
    back = _Excerpt(at - MAX_LAG_SAMPLES, width + 2 * MAX_LAG_SAMPLES)
    levels, length = _decode(target, codec, source.channels, back)
    if length != frames:
        raise RenderError(
            f"the {codec.name} preview decodes to {length} samples, its input had {frames}",
            file=str(target),
            fix="the encoder's priming was not declared as expected; report this",
        )
    return _Pass(gain_db, levels, length, lag_samples(fed.data, back.data, MAX_LAG_SAMPLES))


def _preview(
    package: Path, entry: dict[str, Any], relative: str, spec: Any, measured: _SourceLevels
) -> dict[str, Any]:
    codec = CODECS[spec.format]
    source = _source(package / entry["path"])
    target = package / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    gain, cap = _gain_plan(measured.levels, spec.normalize)
    passes: list[_Pass] = []
    while True:
        passes.append(
            _encode_pass(target, source, codec, spec.bitrate_kbps, gain, measured.excerpt_start)
        )
        if spec.normalize is None or len(passes) == MAX_PASSES:
            break
        corrected = _next_gain(passes[-1], spec.normalize, cap, len(passes))
        if corrected is None:
            break
        if corrected < gain:
            cap = min(cap, corrected)  # lowered for the decoded true peak: never raised again
        gain = corrected
    return _entry(entry, relative, spec, codec, source, measured, passes)


def _entry(
    entry: dict[str, Any],
    relative: str,
    spec: Any,
    codec: Codec,
    source: _Source,
    measured: _SourceLevels,
    passes: list[_Pass],
) -> dict[str, Any]:
    """The manifest entry of one preview (measured on the last pass's decoded file)."""
    final = passes[-1]
    levels = final.levels
    normalize = spec.normalize
    limit = None
    if normalize is not None and math.isfinite(measured.levels.loudness_lufs):
        # What held the final gain: the target, or the true peak under the ceiling.
        missed = normalize.target_lufs - levels.loudness_lufs > LOUDNESS_TOLERANCE_LU
        limit = "true_peak" if missed else "target"
    out: dict[str, Any] = {
        "path": relative,
        "role": "preview",
        "name": entry["name"],
        "source": entry["path"],
        "format": codec.name,
        "codec": codec.encoder,
        "bitrate_kbps": spec.bitrate_kbps,
        "sample_rate": codec.rate_for(source.rate),
        "channels": source.channels,
        "gain_db": round(final.gain_db, 4),
        "loudness_lufs": json_db(levels.loudness_lufs),
        "true_peak_dbtp": json_db(levels.true_peak_dbtp),
        "source_loudness_lufs": json_db(measured.levels.loudness_lufs),
        "source_true_peak_dbtp": json_db(measured.levels.true_peak_dbtp),
        "normalize": None
        if normalize is None
        else {
            "target_lufs": normalize.target_lufs,
            "ceiling_dbtp": normalize.ceiling_dbtp,
            "limited_by": limit,
        },
        "passes": [
            {
                "gain_db": round(p.gain_db, 4),
                "true_peak_dbtp": json_db(p.levels.true_peak_dbtp),
                "loudness_lufs": json_db(p.levels.loudness_lufs),
            }
            for p in passes
        ],  # fmt: skip
        "lag_samples": final.lag,
        "length_samples": final.length,
        "gapless": codec.gapless,
    }
    if source.fold is not None:
        out["folded_down_from_channels"] = source.fold.shape[1]
    return out


# -- the deliverable -----------------------------------------------------------------------------


def _sources(manifest: dict[str, Any], stems: bool) -> list[dict[str, Any]]:
    files = manifest["files"]
    chosen = [f for f in files if f["role"] in _SOURCE_ROLES]
    if stems:
        chosen += [f for f in files if str(f["role"]).startswith("stem")]
    return chosen


def _relative(source_path: str, codec: Codec, suffix: str) -> str:
    pure = PurePosixPath(source_path)
    name = f"{pure.stem}{suffix}.{codec.extension}"
    return (PurePosixPath(PREVIEW_FOLDER) / pure.parent / name).as_posix()


def write_previews(ctx: DeliverableContext) -> list[dict[str, Any]]:
    """Encode every preview the delivery asks for; their manifest entries, in order.

    Parameters
    ----------
    ctx
        The package being written, its manifest and the resolved delivery.

    Returns
    -------
    list of dict
        One entry per preview file (role ``preview``).
    """
    specs = list(ctx.delivery.previews)
    counts: dict[str, int] = {}
    for spec in specs:
        counts[spec.format] = counts.get(spec.format, 0) + 1
    measured: dict[str, _SourceLevels] = {}
    entries: list[dict[str, Any]] = []
    used: set[str] = set()
    for index, spec in enumerate(specs):
        codec = CODECS[spec.format]
        suffix = f".{spec.bitrate_kbps}k" if counts[spec.format] > 1 else ""
        for entry in _sources(ctx.manifest, spec.stems):
            relative = _relative(entry["path"], codec, suffix)
            if relative.lower() in used:
                relative = _relative(entry["path"], codec, f"{suffix}.{index + 1}")
            used.add(relative.lower())
            if entry["path"] not in measured:
                measured[entry["path"]] = _measure_source(_source(ctx.package / entry["path"]))
            made = _preview(ctx.package, entry, relative, spec, measured[entry["path"]])
            made |= declared_priming(ctx.package / relative, codec)
            made["sha256"] = sha256_file(ctx.package / relative)
            entries.append(made)
    return entries

"""Native Instruments Stems (``.stem.mp4``): the mix and four stems of a package in one MP4.

Layout (NI's Stem File Specification, ISO/IEC 14496-12, as NI's own creator writes it)
--------------------------------------------------------------------------------------
- Five audio tracks, all stereo, one codec (ALAC, or AAC at ``bitrate_kbps``), one sample rate
  (the package's): track 1 is the mastered mix (``tkhd`` flags 0x1, enabled, disposition
  default), tracks 2–5 the four stems of ``delivery.ni_stem.stems`` in that order (flags 0x0,
  disabled). Each track's ``hdlr`` name is its stream's name.
- ``moov`` precedes ``mdat`` (fast start); ``ftyp`` major brand ``M4A ``.
- ``moov/udta/stem`` is a plain box (no version/flags) holding UTF-8 JSON: ``version`` 1,
  ``stems`` [{``name``, ``color`` ``#RRGGBB``}] × 4, ``mastering_dsp`` (compressor, limiter).
  stemprint's mix is already mastered, and the stems are unprocessed shares of the premaster,
  so both processors are written disabled: a player that rebuilds the master from the stems
  (Traktor) plays their plain sum, which is the premaster.
- iTunes tags (``moov/udta/meta/ilst``, written with mutagen, which keeps the ``stem`` box and
  moves the chunk offsets): ``©nam`` title, ``©too`` generator, ``TAUT`` = ``STEM`` (what NI's
  creator writes).

Invariants
----------
- The four stems sum to the premaster: they must be the parts of one exact sum relation of
  the package (``manifest["sums"]``) whose reference is the premaster (or the mix, when the
  master does not process). Players that play stems (Mixxx) play that sum, so anything else is
  refused with the fix (``delivery.returns: split``, four stems in ``stems:``).
- Every stream is stereo: a mono stem or mix is written with its channel on both sides.
- ALAC holds 16-bit samples from a 16-bit package and 24-bit otherwise: from a 16- or 24-bit
  package every decoded sample equals the WAV's; from a 32-bit one it is rounded to 24 bits
  (``lossy`` says so). AAC is lossy; its encoder delay (``priming_samples``, 1024) is declared
  by each track's edit list, which decoders trim.
- Deterministic bytes: the muxer and encoders run ``bitexact`` (no library version tags), the
  header times (``mvhd``/``tkhd``/``mdhd``) are 0, tags are fixed; two renders give identical
  files.
- The package's audio is read block by block, never whole; the file is written under a
  temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import soundfile as sf

from stemprint.errors import InputError
from stemprint.export import mp4box
from stemprint.export.deliverables import DeliverableContext
from stemprint.export.manifest import sha256_file
from stemprint.export.paths import safe_file_name

if TYPE_CHECKING:
    from av.audio.stream import AudioStream

DEFAULT_COLORS = ("#009E73", "#D55E00", "#CC79A7", "#56B4E9")
"""NI's colours of the four stems, by position (Drums, Bass, Other, Vocals)."""

MASTERING_DSP: dict[str, Any] = {
    "compressor": {
        "enabled": False,
        "input_gain": 0.5,
        "output_gain": 0.5,
        "threshold": 0,
        "ratio": 3,
        "attack": 0.003000000026077032,
        "release": 0.300000011920929,
        "hp_cutoff": 300,
        "dry_wet": 50,
    },
    "limiter": {
        "enabled": False,
        "threshold": 0,
        "ceiling": -0.3499999940395355,
        "release": 0.05000000074505806,
    },
}
"""NI's default processors (values float32-rounded as NI stores them), both disabled: the
stems are shares of the premaster, and the mix in stream 0 is already mastered."""

AAC_PRIMING_SAMPLES = 1024
"""FFmpeg's AAC encoder delay, declared by the edit list's media time."""

AAC_SAMPLE_RATES = frozenset(
    {7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}
)
"""The sampling frequencies an AAC stream can signal (ISO/IEC 14496-3 sampling index)."""

_FIELD = "delivery.ni_stem.stems"
_BLOCK_FRAMES = 16
"""Encoder frames read from a WAV at a time."""
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_AV_BITEXACT_FORMAT = 0x0400  # AVFMT_FLAG_BITEXACT: no "encoder" tag in the file
_AV_BITEXACT_CODEC = 1 << 23  # AV_CODEC_FLAG_BITEXACT: no version string in the streams


def write_ni_stem(ctx: DeliverableContext) -> list[dict[str, Any]]:
    """Write ``<session>.stem.mp4`` into the package; its manifest entry.

    Raises
    ------
    InputError
        A named stem is not in the package, the four do not sum to the premaster, a file has
        more than two channels, or AAC cannot carry the package's rate.
    """
    ni = ctx.delivery.ni_stem
    try:
        entries, colors = _validated(ctx)
    except InputError as error:  # point at the session's line
        location = tuple((error.field or "delivery.ni_stem").split("."))
        raise ctx.loaded.error(error.message, location, error.fix) from None
    stems = entries[1:]
    rate = int(ctx.manifest["sample_rate"])
    codec = str(ni.codec)
    bits = 16 if str(ctx.manifest.get("bit_depth")) == "16" else 24
    name = safe_file_name(str(ctx.manifest.get("session") or "session")) + ".stem.mp4"
    target = ctx.package / name
    partial = ctx.package / f".{name}.partial"
    try:
        _encode(
            partial,
            [ctx.package / e["path"] for e in entries],
            entries,
            codec,
            rate,
            bits,
            int(ni.bitrate_kbps),
        )
        _finish_boxes(partial, _stem_json(stems, colors))
        _tag(partial, _title(ctx))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    priming = _priming(target)
    return [
        {
            "path": name,
            "role": "ni_stem",
            "name": "NI Stems",
            "codec": codec,
            "bitrate_kbps": int(ni.bitrate_kbps) if codec == "aac" else None,
            "bit_depth": bits if codec == "alac" else None,
            "sample_rate": rate,
            "channels": 2,
            "length_samples": int(ctx.manifest["length_samples"]),
            "priming_samples": priming,
            "lossy": codec == "aac" or str(ctx.manifest.get("bit_depth")) in ("32", "32f"),
            "streams": [str(e["name"]) for e in entries],
            "sha256": sha256_file(target),
        }
    ]


def _validated(ctx: DeliverableContext) -> tuple[list[dict[str, Any]], list[str]]:
    """The manifest entries of the five streams (mix first) and the four colours, or the
    reason the package cannot make an NI Stems file."""
    ni = ctx.delivery.ni_stem
    files = ctx.manifest["files"]
    stems = _stem_entries(files, list(ni.stems))
    _check_sum(ctx.manifest, stems)
    colors = _colors(ni.colors)
    rate = int(ctx.manifest["sample_rate"])
    if str(ni.codec) == "aac" and rate not in AAC_SAMPLE_RATES:
        raise InputError(
            f"AAC cannot carry {rate} Hz",
            field="delivery.ni_stem.codec",
            fix="use codec alac, or deliver at 44100 or 48000 Hz (delivery.sample_rate)",
        )
    entries = [_mix_entry(files), *stems]
    for entry in entries:
        _check_playable(entry)
    return entries, colors


def _mix_entry(files: Sequence[dict[str, Any]]) -> dict[str, Any]:
    mixes = [f for f in files if f.get("role") == "mix"]
    if not mixes:
        raise InputError(
            "an NI Stems file needs the package's mix (stream 0), and the package has none",
            field="delivery.ni_stem",
            fix="render the mix too (it is always written unless the render was mix-less)",
        )
    return mixes[0]


def _stem_entries(files: Sequence[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """The manifest entries of the four named stems, in the order named."""
    by_name = {str(f["name"]): f for f in files if f.get("role") == "stem"}
    have = ", ".join(by_name) or "none"
    if len(set(names)) != len(names):
        raise InputError(
            f"names a stem twice: {', '.join(names)}",
            field=_FIELD,
            fix=f"name four different stems of the package (its stems: {have})",
        )
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(
            f"{', '.join(repr(n) for n in missing)} is not a stem of the package "
            f"(its stems: {have})",
            field=_FIELD,
            fix="name four of the package's stems, or define them under `stems:` (each group "
            "of routes one stem)",
        )
    return [by_name[n] for n in names]


def _check_sum(manifest: dict[str, Any], stems: Sequence[dict[str, Any]]) -> None:
    """Refuse unless the four stems are exactly the parts of an exact sum to the premaster
    (or to the mix when there is no premaster): what a stems player plays is their sum."""
    roles = {str(f["path"]): f.get("role") for f in manifest["files"]}
    wanted = {str(s["path"]) for s in stems}
    relations = [
        r
        for r in manifest.get("sums", ())
        if roles.get(str(r["reference"])) in ("premaster", "mix")
    ]
    for relation in relations:
        if set(map(str, relation["parts"])) == wanted and relation.get("exact"):
            return
    others = sorted({str(p) for r in relations for p in r["parts"]} - wanted)
    why = (
        f"the package's stems sum to the premaster only with {', '.join(others)}"
        if others
        else "they are not an exact sum of the premaster in this package"
    )
    raise InputError(
        f"the four stems {', '.join(str(s['name']) for s in stems)} must sum to the premaster "
        f"(a stems player plays their sum), but {why}",
        field=_FIELD,
        fix="group the session into exactly four stems (`stems:`) and set `delivery.returns: "
        "split`, so that each return is shared into the stems instead of being a stem of its own",
    )


def _check_playable(entry: dict[str, Any]) -> None:
    channels = int(entry.get("channels", 2))
    if channels > 2:
        raise InputError(
            f"{entry['path']} has {channels} channels; NI Stems streams are stereo",
            field="delivery.ni_stem",
            fix="make the NI Stems file from a stereo delivery (a stereo master and stems)",
        )
    peak = entry.get("peak_dbfs")
    if peak is not None and float(peak) > 0.0:
        raise InputError(
            f"{entry['path']} peaks at {float(peak):+.2f} dBFS: the NI Stems streams would clip",
            field="delivery.ni_stem",
            fix="lower the master's input (or the stems) until every file peaks below 0 dBFS",
        )


def _colors(colors: Sequence[str] | None) -> list[str]:
    if colors is None:
        return list(DEFAULT_COLORS)
    if len(colors) != 4 or not all(_COLOR.match(c) for c in colors):
        raise InputError(
            f"colors must be four #RRGGBB values, got {list(colors)}",
            field="delivery.ni_stem.colors",
            fix="write four colours like '#009E73', one per stem, or leave colors out",
        )
    return [c.upper() for c in colors]


def _stem_json(stems: Sequence[dict[str, Any]], colors: Sequence[str]) -> bytes:
    document = {
        "version": 1,
        "stems": [
            {"name": str(s["name"]), "color": color} for s, color in zip(stems, colors, strict=True)
        ],
        "mastering_dsp": MASTERING_DSP,
    }
    return json.dumps(document, indent=None, separators=(", ", ": ")).encode("utf-8")


def _title(ctx: DeliverableContext) -> str:
    title = ctx.loaded.session.metadata.title
    return str(title or ctx.manifest.get("session") or "untitled")


def _blocks(path: Path, frames: int) -> Iterator[np.ndarray]:
    """``(2, n)`` float64 blocks of ``path``, ``frames`` long (the last shorter); a mono file
    is put on both channels (stems players need stereo streams)."""
    with sf.SoundFile(str(path)) as handle:
        while True:
            block = handle.read(frames, dtype="float64", always_2d=True)
            if not len(block):
                return
            if block.shape[1] == 1:
                block = np.repeat(block, 2, axis=1)
            yield block.T


def _frame(block: np.ndarray, codec: str, bits: int, rate: int, pts: int) -> Any:
    import av

    if codec == "aac":
        samples: np.ndarray = block.astype(np.float32)
        fmt = "fltp"
    else:
        # ALAC takes integers: 24-bit values left-justified in int32 (the low byte zero, as
        # FFmpeg's encoder expects for s32p), or int16; exact for integer packages.
        full_scale = float(1 << (bits - 1))
        ints = np.clip(np.round(block * full_scale), -full_scale, full_scale - 1).astype(np.int64)
        samples = (ints << 8).astype(np.int32) if bits == 24 else ints.astype(np.int16)
        fmt = "s32p" if bits == 24 else "s16p"
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format=fmt, layout="stereo")
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = Fraction(1, rate)
    return frame


def _encode(
    path: Path,
    sources: Sequence[Path],
    entries: Sequence[dict[str, Any]],
    codec: str,
    rate: int,
    bits: int,
    bitrate_kbps: int,
) -> None:
    """Mux the five streams, encoded block by block in lock step, into a fast-start MP4."""
    import av

    container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
    try:
        container.flags |= _AV_BITEXACT_FORMAT
        streams = []
        for index, entry in enumerate(entries):
            stream = cast("AudioStream", container.add_stream(codec, rate=rate, layout="stereo"))
            context = stream.codec_context
            context.format = "fltp" if codec == "aac" else ("s32p" if bits == 24 else "s16p")
            if codec == "aac":
                context.bit_rate = bitrate_kbps * 1000
            context.flags |= _AV_BITEXACT_CODEC
            context.thread_count = 1
            stream.metadata["handler_name"] = str(entry["name"])
            stream.disposition = av.stream.Disposition(1 if index == 0 else 0)  # 1 = default
            streams.append(stream)
        container.start_encoding()
        frame_size = streams[0].codec_context.frame_size or 4096
        readers = [_blocks(source, frame_size * _BLOCK_FRAMES) for source in sources]
        position = 0
        for chunk in zip(*readers, strict=True):
            for offset in range(0, chunk[0].shape[1], frame_size):
                for stream, block in zip(streams, chunk, strict=True):
                    piece = block[:, offset : offset + frame_size]
                    frame = _frame(piece, codec, bits, rate, position + offset)
                    container.mux(stream.encode(frame))
            position += chunk[0].shape[1]
        for stream in streams:
            container.mux(stream.encode(None))
    finally:
        container.close()


def _finish_boxes(path: Path, stem_json: bytes) -> None:
    """NI's box edits on the file's head (everything before ``mdat``): the ``stem`` box, the
    track flags, the brand; the media data is copied after it unchanged."""
    head = mp4box.read_head(path)
    boxes = mp4box.read_boxes(head)
    if mp4box.find_box(boxes, "moov") is None:
        raise InputError(f"{path.name}: the muxer wrote moov after mdat (no fast start)")
    edited = mp4box.insert_box(head, "moov/udta", mp4box.make_box("stem", stem_json))
    edited = mp4box.set_track_flags(edited, [0x1, 0x0, 0x0, 0x0, 0x0])
    edited = mp4box.set_major_brand(edited, "M4A ")
    rewritten = path.with_name(path.name + ".boxes")
    try:
        with path.open("rb") as source, rewritten.open("wb") as out:
            out.write(edited)
            source.seek(len(head))
            shutil.copyfileobj(source, out, 1 << 20)
        os.replace(rewritten, path)
    finally:
        rewritten.unlink(missing_ok=True)


def _tag(path: Path, title: str) -> None:
    """iTunes tags, as NI's creator writes them (mutagen keeps the ``stem`` box)."""
    from mutagen.mp4 import MP4

    from stemprint._version import __version__

    tagged = MP4(str(path))
    if tagged.tags is None:
        tagged.add_tags()
    tags = tagged.tags
    assert tags is not None
    tags["\xa9nam"] = [title]
    tags["\xa9too"] = [f"stemprint {__version__}"]
    tags["TAUT"] = ["STEM"]
    tagged.save()


def _priming(path: Path) -> int:
    """The encoder delay the first track's edit list declares (0 without one)."""
    lists = mp4box.edit_lists(mp4box.read_moov(path))
    return int(lists[0][0][1]) if lists and lists[0] else 0

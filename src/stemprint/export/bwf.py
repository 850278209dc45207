"""Broadcast WAV metadata: the ``bext`` chunk (EBU Tech 3285 v2) and the ``iXML`` chunk.

Every WAV and RF64 file of a package carries both, so the files land on picture at their
timecode and say what they hold. The audio data is never touched: ``bext`` is written by
libsndfile in the header, ``iXML`` is appended after the ``data`` chunk.

``bext`` chunk data on disk (little-endian, no padding; fixed part 602 bytes)
----------------------------------------------------------------------------
======  =====  ==========================================================================
offset  bytes  field
======  =====  ==========================================================================
0       256    Description (ASCII, NUL-padded)
256     32     Originator
288     32     OriginatorReference
320     10     OriginationDate ``yyyy-mm-dd``
330     8      OriginationTime ``hh:mm:ss``
338     4 + 4  TimeReferenceLow, TimeReferenceHigh: uint32 halves of samples since midnight
346     2      Version = 2
348     64     UMID (zero: none)
412     5 × 2  LoudnessValue, LoudnessRange, MaxTruePeakLevel, MaxMomentaryLoudness,
               MaxShortTermLoudness: int16 = value × 100 (LUFS, LU, dBTP), 0x7FFF: unknown
422     180    reserved (zero)
602     …      CodingHistory: EBU R 98 lines ending CR LF
======  =====  ==========================================================================

How it is written
-----------------
- libsndfile's ``SF_BROADCAST_INFO`` C struct is the same fields with 2 bytes of alignment
  padding after OriginationTime and a uint32 CodingHistory size before the text; it is handed
  over with ``sf_command(SFC_SET_BROADCAST_INFO)`` before the first sample (later, libsndfile
  ignores it). soundfile has no wrapper, so its private ``_snd`` / ``_ffi`` / ``SoundFile._file``
  are used (:func:`libsndfile_handle` fails loudly if they change).
- Text fields are ASCII (other characters become ``?``), cut to their field's length. The
  Description defaults to ``"<title>: <stem or mix name>"``, the Originator to ``stemprint``.
- libsndfile appends its own CodingHistory line (``A=PCM,…,T=libsndfile-1.2.2``) after ours and
  pads the history to an even length; Version is 2.
- Loudness is known only after the pass: the fields are written as 0x7FFF ("not measured",
  also what a package rendered without verification keeps), and once the file is closed the
  10 bytes at offset 412 of the ``bext`` data are overwritten in place (:func:`patch_loudness`).
  Values are rounded to the nearest 0.01 and clamped to −327.68 … +327.66; −∞ (silence, or a
  file shorter than the meter's window) is "unknown".
- Origination date and time (UTC) come from ``SOURCE_DATE_EPOCH`` (seconds since 1970, the
  reproducible-builds convention) when it is set; otherwise both fields stay empty (NUL), so
  two renders of one session are byte-identical: a wall-clock date would make every render
  differ, and no date in a session is both stable and true.

``iXML`` (root ``BWFXML``, UTF-8)
----------------------------------
``IXML_VERSION``, ``PROJECT``, ``SCENE``, ``TAKE``, ``TAPE``, ``NOTE`` (those set), ``SPEED``
(``MASTER_SPEED`` = ``CURRENT_SPEED`` = ``TIMECODE_RATE`` as a fraction such as ``24000/1001``,
``TIMECODE_FLAG`` ``DF``/``NDF``: only with a frame rate; ``FILE_SAMPLE_RATE``,
``AUDIO_BIT_DEPTH``, ``TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI``/``_LO``, ``TIMESTAMP_SAMPLE_RATE``)
and ``TRACK_LIST`` naming every channel in file order (``L R C LFE Ls Rs``, FUNCTION from the
iXML function dictionary: ``LEFT``/``RIGHT``, ``L-5.1`` …). The chunk is appended after the last
chunk, padded to an even length, and the RIFF size (RF64: ``ds64`` riffSize) is updated.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from stemprint._version import __version__
from stemprint.dsp.layouts import LAYOUT_CHANNELS, layout_of
from stemprint.errors import InputError, RenderError
from stemprint.model.timecode import samples_to_timecode, session_timecode
from stemprint.riff import CHUNK_HEADER, RIFF_LIMIT, riff_layout

if TYPE_CHECKING:
    from stemprint.analysis.meters import FileLevels

SFC_SET_BROADCAST_INFO = 0x10F1
"""libsndfile command (sndfile.h): set the broadcast info (``bext``) of a file being written."""

BWF_CONTAINERS = ("WAV", "WAVEX", "RF64")
"""libsndfile containers that get ``bext`` and ``iXML``."""

BEXT_FIXED_BYTES = 602
LOUDNESS_OFFSET = 412
UNKNOWN_LOUDNESS = 0x7FFF
IXML_VERSION = "2.10"

_FIXED = struct.Struct("<256s32s32s10s8sIIH64s5h180s")
_C_SPLIT = 338  # the C struct aligns TimeReferenceLow to 4 bytes: 2 padding bytes here
_LOUDNESS = struct.Struct("<5h")
_FUNCTIONS = {"mono": {"M": "MIX"}, "stereo": {"L": "LEFT", "R": "RIGHT"}}
_SPEED = {
    "23.976": "24000/1001", "24": "24/1", "25": "25/1", "29.97": "30000/1001",
    "29.97df": "30000/1001", "30": "30/1",
}  # fmt: skip


@dataclass(frozen=True)
class BroadcastInfo:
    """What a package writes into the ``bext`` and ``iXML`` chunks of one file.

    Attributes
    ----------
    title
        Programme title (the session's ``metadata.title`` or name).
    description
        ``bext`` Description; ``None``: ``"<title>: <file_name>"``.
    file_name
        What the file holds (the stem or mix name), for the default description.
    originator, originator_reference
        ``bext`` Originator and OriginatorReference.
    origination_date, origination_time
        ``yyyy-mm-dd`` and ``hh:mm:ss`` (UTC), or ``""`` (module header).
    time_reference_samples
        Samples since midnight of the file's first sample, at the file's rate.
    start_timecode, frame_rate
        The timecode label of that sample and its frame rate, if the session sets them.
    drop_frame
        The timecode counts drop frame.
    sample_rate
        The files' sample rate (Hz) the TimeReference counts in.
    project, scene, take, tape, note
        iXML fields (omitted when ``None``).
    """

    title: str = ""
    description: str | None = None
    file_name: str = ""
    originator: str = "stemprint"
    originator_reference: str = ""
    origination_date: str = ""
    origination_time: str = ""
    time_reference_samples: int = 0
    start_timecode: str | None = None
    frame_rate: str | None = None
    drop_frame: bool = False
    sample_rate: int = 48000
    project: str | None = None
    scene: str | None = None
    take: str | None = None
    tape: str | None = None
    note: str | None = None

    @property
    def bext_description(self) -> str:
        """The Description written."""
        if self.description is not None:
            return self.description
        return f"{self.title}: {self.file_name}" if self.file_name else self.title

    def for_file(self, file_name: str, time_offset_samples: int = 0) -> BroadcastInfo:
        """This info for one file: its name and where it starts after the timeline's 0."""
        reference = self.time_reference_samples + time_offset_samples
        label = self.start_timecode
        if time_offset_samples and self.frame_rate is not None:
            label = samples_to_timecode(
                reference, self.sample_rate, self.frame_rate, self.drop_frame
            )
        return replace(
            self, file_name=file_name, time_reference_samples=reference, start_timecode=label
        )


@dataclass(frozen=True)
class BextLoudness:
    """The five loudness fields of ``bext`` v2 (``None``: unknown, written as 0x7FFF)."""

    loudness_lufs: float | None = None
    loudness_range_lu: float | None = None
    max_true_peak_dbtp: float | None = None
    max_momentary_lufs: float | None = None
    max_short_term_lufs: float | None = None

    @classmethod
    def from_levels(cls, levels: FileLevels | None) -> BextLoudness:
        """The fields of measured ``levels`` (``None``: all unknown)."""
        if levels is None:
            return cls()
        return cls(
            levels.loudness_lufs,
            levels.loudness_range_lu,
            levels.true_peak_dbtp,
            levels.max_momentary_lufs,
            levels.max_short_term_lufs,
        )

    def values(self) -> tuple[float | None, ...]:
        """The five fields in chunk order."""
        return (
            self.loudness_lufs,
            self.loudness_range_lu,
            self.max_true_peak_dbtp,
            self.max_momentary_lufs,
            self.max_short_term_lufs,
        )

    def encode(self) -> bytes:
        """The 10 bytes at offset 412: int16 of value × 100, 0x7FFF when unknown."""
        return _LOUDNESS.pack(*(_centi(v) for v in self.values()))

    @classmethod
    def decode(cls, data: bytes) -> BextLoudness:
        """The inverse of :meth:`encode` (values ÷ 100, 0x7FFF as ``None``)."""
        raw = _LOUDNESS.unpack(data[:10])
        return cls(*(None if v == UNKNOWN_LOUDNESS else v / 100 for v in raw))

    def stored(self) -> BextLoudness:
        """The values as a reader gets them back from the file (rounded to 0.01)."""
        return BextLoudness.decode(self.encode())

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready fields (the manifest's ``bwf.loudness``)."""
        return dict(zip(_LOUDNESS_KEYS, self.values(), strict=True))


_LOUDNESS_KEYS = (
    "loudness_lufs", "loudness_range_lu", "max_true_peak_dbtp", "max_momentary_lufs",
    "max_short_term_lufs",
)  # fmt: skip


def _centi(value: float | None) -> int:
    if value is None or not math.isfinite(value):
        return UNKNOWN_LOUDNESS
    return max(-32768, min(UNKNOWN_LOUDNESS - 1, math.floor(value * 100 + 0.5)))


# --- from the session ----------------------------------------------------------------------


def session_broadcast_info(
    session: Any,
    sample_rate: int,
    environ: Mapping[str, str] | None = None,
    file: str | None = None,
) -> BroadcastInfo:
    """The package-wide :class:`BroadcastInfo` of ``session`` for files at ``sample_rate``
    (``environ``: default ``os.environ``; ``file``: the session file, named in errors).

    Raises
    ------
    SessionError
        An invalid ``start_timecode`` / ``frame_rate`` (:mod:`stemprint.model.timecode`).
    InputError
        ``SOURCE_DATE_EPOCH`` is set but not a whole number of seconds.
    """
    timecode = session_timecode(session, file)
    meta = getattr(session, "metadata", None)

    def text(name: str) -> str | None:
        value = getattr(meta, name, None) if meta is not None else None
        return None if value is None else str(value)

    date, time = origination(os.environ if environ is None else environ)
    return BroadcastInfo(
        title=text("title") or str(session.name),
        description=text("description"),
        originator=text("originator") or "stemprint",
        originator_reference=text("originator_reference") or "",
        origination_date=date,
        origination_time=time,
        time_reference_samples=timecode.samples_since_midnight(sample_rate) if timecode else 0,
        start_timecode=str(timecode) if timecode else None,
        frame_rate=timecode.rate.name if timecode else None,
        drop_frame=timecode.drop_frame if timecode else False,
        sample_rate=sample_rate,
        project=text("project"),
        scene=text("scene"),
        take=text("take"),
        tape=text("tape"),
        note=text("note"),
    )


def origination(environ: Mapping[str, str]) -> tuple[str, str]:
    """OriginationDate and OriginationTime: UTC of ``SOURCE_DATE_EPOCH``, else empty."""
    raw = environ.get("SOURCE_DATE_EPOCH")
    if raw is None or raw.strip() == "":
        return "", ""
    try:
        moment = datetime.fromtimestamp(int(raw.strip()), UTC)
    except (ValueError, OverflowError, OSError):
        raise InputError(
            f"SOURCE_DATE_EPOCH={raw!r} is not a whole number of seconds since 1970",
            field="SOURCE_DATE_EPOCH",
            fix="set it to an integer such as 1767225600, or unset it",
        ) from None
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M:%S")


# --- bext ------------------------------------------------------------------------------------


def coding_history(sample_rate: int, bits: int, channels: int) -> str:
    """stemprint's EBU R 98 CodingHistory line, e.g. ``A=PCM,F=48000,W=24,M=stereo,T=…``."""
    return f"A=PCM,F={sample_rate},W={bits},M={_mode(channels)},T=stemprint {__version__}\r\n"


def _mode(channels: int) -> str:
    try:
        return layout_of(channels)
    except ValueError:
        return f"{channels}chn"


def bext_fixed(info: BroadcastInfo, loudness: BextLoudness | None = None) -> bytes:
    """The 602-byte fixed part of the ``bext`` chunk data (module header)."""
    reference = info.time_reference_samples
    if not 0 <= reference < 1 << 64:
        raise ValueError(f"TimeReference {reference} does not fit 64 bits")
    return _FIXED.pack(
        _ascii(info.bext_description),
        _ascii(info.originator),
        _ascii(info.originator_reference),
        _ascii(info.origination_date),
        _ascii(info.origination_time),
        reference & 0xFFFFFFFF,
        reference >> 32,
        2,
        b"",
        *_LOUDNESS.unpack((loudness or BextLoudness()).encode()),
        b"",
    )


def _ascii(text: str) -> bytes:
    # struct's "Ns" truncates to the field and pads with NUL; the chunk is ASCII.
    return text.encode("ascii", "replace")


def broadcast_info_struct(fixed: bytes, history: str) -> bytes:
    """libsndfile's ``SF_BROADCAST_INFO`` bytes: the fixed part with its 2 alignment bytes
    after OriginationTime, the CodingHistory size (uint32) and the text."""
    text = history.encode("ascii", "replace")
    return fixed[:_C_SPLIT] + b"\0\0" + fixed[_C_SPLIT:] + struct.pack("<I", len(text)) + text


def libsndfile_handle(sound_file: Any) -> tuple[Any, Any, Any]:
    """``(lib, ffi, SNDFILE*)`` of an open ``soundfile.SoundFile`` (private soundfile members).

    Raises
    ------
    RenderError
        This soundfile release no longer has them: Broadcast WAV cannot be written.
    """
    import soundfile as sf

    lib, ffi = getattr(sf, "_snd", None), getattr(sf, "_ffi", None)
    handle = getattr(sound_file, "_file", None)
    if lib is None or ffi is None or handle is None or not hasattr(lib, "sf_command"):
        raise RenderError(
            f"soundfile {sf.__version__} no longer exposes _snd/_ffi/SoundFile._file: stemprint "
            "cannot write the bext chunk",
            fix="install the soundfile version stemprint pins, or render FLAC or AIFF",
        )
    return lib, ffi, handle


def write_bext(sound_file: Any, info: BroadcastInfo, sample_rate: int, bits: int) -> None:
    """Hand the ``bext`` chunk (loudness unknown) to libsndfile; before the first sample.

    Raises
    ------
    RenderError
        libsndfile refused it (e.g. a sample was already written).
    """
    history = coding_history(sample_rate, bits, sound_file.channels)
    data = broadcast_info_struct(bext_fixed(info), history)
    lib, ffi, handle = libsndfile_handle(sound_file)
    buffer = ffi.new("char[]", data)
    if lib.sf_command(handle, SFC_SET_BROADCAST_INFO, buffer, len(data)) != 1:
        raise RenderError(f"libsndfile did not take the bext chunk of {sound_file.name}")


# --- RIFF / RF64 chunks ----------------------------------------------------------------------


def patch_loudness(path: Path, loudness: BextLoudness) -> None:
    """Overwrite the 10 loudness bytes of the ``bext`` chunk of ``path`` in place.

    Raises
    ------
    ValueError
        ``path`` has no ``bext`` chunk of version 2 or later.
    """
    chunk = riff_layout(path).find(b"bext")
    if chunk is None or chunk.size < BEXT_FIXED_BYTES:
        raise ValueError(f"{path} has no bext chunk of version 2")
    with path.open("r+b") as handle:
        handle.seek(chunk.data_offset + 346)
        if struct.unpack("<H", handle.read(2))[0] < 2:
            raise ValueError(f"{path} has a bext chunk older than version 2")
        handle.seek(chunk.data_offset + LOUDNESS_OFFSET)
        handle.write(loudness.encode())


def append_chunk(path: Path, chunk_id: bytes, payload: bytes) -> None:
    """Append a chunk after the last one (padded to an even length) and fix the RIFF size.

    Raises
    ------
    ValueError
        A RIFF file would pass 4 GiB (write RF64 instead).
    """
    layout = riff_layout(path)
    ds64 = layout.find(b"ds64")
    with path.open("r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        pad = end & 1  # the last chunk's own pad byte, if libsndfile left it out
        body = b"\0" * pad + CHUNK_HEADER.pack(chunk_id, len(payload)) + payload
        body += b"\0" * (len(payload) & 1)
        riff_size = end + len(body) - 8
        if layout.form == b"RIFF" and riff_size > RIFF_LIMIT:
            raise ValueError(f"{path} would pass the 4 GiB limit of RIFF with a {chunk_id!r}")
        handle.write(body)
        if layout.form == b"RIFF":
            handle.seek(4)
            handle.write(struct.pack("<I", riff_size))
        elif ds64 is not None:
            handle.seek(ds64.data_offset)
            handle.write(struct.pack("<Q", riff_size))


# --- iXML ------------------------------------------------------------------------------------


def channel_names(channels: int) -> tuple[str, ...]:
    """Names of the channels of a file, in file order (``dsp.layouts``)."""
    try:
        return LAYOUT_CHANNELS[layout_of(channels)]
    except ValueError:
        return tuple(str(i + 1) for i in range(channels))


def _function(channels: int, name: str) -> str:
    try:
        layout = layout_of(channels)
    except ValueError:
        return "NONE"
    if layout in _FUNCTIONS:
        return _FUNCTIONS[layout][name]
    return f"{name}-{layout}" if layout == "5.1" else f"{name}-GENERIC"


def ixml_document(info: BroadcastInfo, sample_rate: int, bits: int, channels: int) -> bytes:
    """The ``iXML`` chunk payload (module header), UTF-8."""
    root = ElementTree.Element("BWFXML")
    _leaf(root, "IXML_VERSION", IXML_VERSION)
    for tag in ("project", "scene", "take", "tape", "note"):
        value = getattr(info, tag)
        if value is not None:
            _leaf(root, tag.upper(), value)
    speed = ElementTree.SubElement(root, "SPEED")
    if info.frame_rate is not None:
        rate = _SPEED[info.frame_rate]
        for tag in ("MASTER_SPEED", "CURRENT_SPEED", "TIMECODE_RATE"):
            _leaf(speed, tag, rate)
        _leaf(speed, "TIMECODE_FLAG", "DF" if info.drop_frame else "NDF")
    reference = info.time_reference_samples
    _leaf(speed, "FILE_SAMPLE_RATE", str(sample_rate))
    _leaf(speed, "AUDIO_BIT_DEPTH", str(bits))
    _leaf(speed, "TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI", str(reference >> 32))
    _leaf(speed, "TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO", str(reference & 0xFFFFFFFF))
    _leaf(speed, "TIMESTAMP_SAMPLE_RATE", str(sample_rate))
    tracks = ElementTree.SubElement(root, "TRACK_LIST")
    _leaf(tracks, "TRACK_COUNT", str(channels))
    for index, name in enumerate(channel_names(channels), 1):
        track = ElementTree.SubElement(tracks, "TRACK")
        _leaf(track, "CHANNEL_INDEX", str(index))
        _leaf(track, "INTERLEAVE_INDEX", str(index))
        _leaf(track, "NAME", name)
        _leaf(track, "FUNCTION", _function(channels, name))
    ElementTree.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, "utf-8")


def _leaf(parent: ElementTree.Element, tag: str, text: str) -> None:
    ElementTree.SubElement(parent, tag).text = text


def finish_file(
    path: Path,
    info: BroadcastInfo,
    sample_rate: int,
    bits: int,
    channels: int,
    loudness: BextLoudness | None = None,
) -> None:
    """After the file is closed: append the ``iXML`` chunk and write the loudness fields."""
    append_chunk(path, b"iXML", ixml_document(info, sample_rate, bits, channels))
    patch_loudness(path, loudness or BextLoudness())


# --- reading back ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bext:
    """A ``bext`` chunk as read from a file (:func:`read_bext`)."""

    description: str
    originator: str
    originator_reference: str
    origination_date: str
    origination_time: str
    time_reference_samples: int
    version: int
    umid: bytes
    loudness: BextLoudness
    coding_history: str


def read_bext(path: Path) -> Bext | None:
    """The ``bext`` chunk of ``path``, or ``None``."""
    chunk = riff_layout(path).find(b"bext")
    if chunk is None:
        return None
    with path.open("rb") as handle:
        handle.seek(chunk.data_offset)
        data = handle.read(chunk.size)
    fields = _FIXED.unpack(data[:BEXT_FIXED_BYTES])
    description, originator, reference, date, time = (
        f.split(b"\0", 1)[0].decode("ascii", "replace") for f in fields[:5]
    )
    return Bext(
        description,
        originator,
        reference,
        date,
        time,
        time_reference_samples=fields[5] | fields[6] << 32,
        version=fields[7],
        umid=fields[8],
        loudness=BextLoudness.decode(data[LOUDNESS_OFFSET : LOUDNESS_OFFSET + 10]),
        coding_history=data[BEXT_FIXED_BYTES:].split(b"\0", 1)[0].decode("ascii", "replace"),
    )


def read_chunk(path: Path, chunk_id: bytes) -> bytes | None:
    """The data of the first chunk ``chunk_id`` of ``path`` (e.g. ``b"iXML"``), or ``None``."""
    chunk = riff_layout(path).find(chunk_id)
    if chunk is None:
        return None
    with path.open("rb") as handle:
        handle.seek(chunk.data_offset)
        return handle.read(chunk.size)


__all__ = [
    "BWF_CONTAINERS",
    "Bext",
    "BextLoudness",
    "BroadcastInfo",
    "append_chunk",
    "bext_fixed",
    "broadcast_info_struct",
    "coding_history",
    "finish_file",
    "ixml_document",
    "origination",
    "patch_loudness",
    "read_bext",
    "read_chunk",
    "riff_layout",
    "session_broadcast_info",
    "write_bext",
]

"""A small ISO base media file format (MP4) box reader and editor.

Implements the box layout of ISO/IEC 14496-12 (§4.2), enough to finish a Native Instruments
Stems file after FFmpeg has muxed it, and to check one:

- A box is ``size`` (u32, big-endian, the whole box including this header) and ``type``
  (four bytes); ``size == 1`` means a u64 ``largesize`` follows the type, ``size == 0`` means
  "to the end of the file" (top level only). A *full box* adds ``version`` (u8) and ``flags``
  (u24) before its payload.
- Containers (:data:`CONTAINERS`) hold nothing but boxes; ``meta`` is a full box whose
  children follow its version/flags (the QuickTime variant without them is read too).
- ``tkhd`` (§8.3.2) is a full box: flag 0x1 = track enabled, 0x2 = in movie, 0x4 = in preview.
- ``stco`` (§8.7.5) holds u32 chunk offsets, ``co64`` u64 ones, both absolute file offsets:
  when bytes are inserted or removed before the media data (``moov`` ahead of ``mdat``, "fast
  start"), every offset at or after the edit moves by the same amount, or the tracks point at
  the wrong bytes.
- ``ftyp`` (§4.3): major brand (4 bytes), minor version (u32), compatible brands.

Invariants
----------
- Every edit returns new bytes; the input is never changed.
- An edit that inserts or removes ``n`` bytes grows or shrinks every enclosing box by ``n``
  (u32 or u64 size field, as written) and moves every chunk offset at or after the edit by
  ``n``: the media data is byte-for-byte the same afterwards, only its position changes.
- Malformed input (a box running past its parent, a size smaller than its header) is an
  :class:`~stemprint.errors.InputError`, never a silent misread.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from stemprint.errors import InputError

CONTAINERS = frozenset(
    {"moov", "trak", "mdia", "minf", "stbl", "udta", "edts", "dinf", "mvex", "moof", "traf"}
)
"""Box types whose payload is a sequence of boxes (ISO/IEC 14496-12)."""


@dataclass(frozen=True)
class Box:
    """One box of the tree.

    Attributes
    ----------
    type
        The four-character type (bytes decoded as Latin-1, so ``©nam`` survives).
    offset
        File offset of the box's first byte (its size field).
    size
        Whole box in bytes, header included.
    header_size
        8, or 16 with a 64-bit ``largesize``.
    children
        Child boxes of a container (``meta`` included); empty otherwise.
    """

    type: str
    offset: int
    size: int
    header_size: int
    children: tuple[Box, ...] = ()

    @property
    def end(self) -> int:
        """File offset just past the box."""
        return self.offset + self.size

    @property
    def payload_offset(self) -> int:
        """File offset of the payload (after the size, type and any ``largesize``)."""
        return self.offset + self.header_size

    def payload(self, data: bytes) -> bytes:
        """The box's payload in ``data`` (the file's bytes)."""
        return bytes(data[self.payload_offset : self.end])


def _children_offset(data: bytes, box_type: str, payload_offset: int, end: int) -> int | None:
    """Where a box's children start, or ``None`` for a leaf box."""
    if box_type in CONTAINERS:
        return payload_offset
    if box_type == "meta":
        # ISO meta is a full box (4 bytes of version/flags first); QuickTime's is not.
        quicktime = data[payload_offset + 4 : payload_offset + 8] == b"hdlr"
        return payload_offset if quicktime else min(payload_offset + 4, end)
    return None


def _read_level(data: bytes, start: int, end: int, top: bool) -> tuple[Box, ...]:
    boxes: list[Box] = []
    position = start
    while position < end:
        if end - position < 8:
            raise InputError(f"MP4: {end - position} stray bytes at offset {position}")
        size, raw_type = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:
            if end - position < 16:
                raise InputError(f"MP4: truncated largesize at offset {position}")
            (size,) = struct.unpack_from(">Q", data, position + 8)
            header = 16
        elif size == 0 and top:
            size = end - position
        box_type = raw_type.decode("latin-1")
        if size < header or position + size > end:
            raise InputError(
                f"MP4: box {box_type!r} at offset {position} has size {size}, which does not "
                f"fit in its parent (ends at {end})"
            )
        first_child = _children_offset(data, box_type, position + header, position + size)
        children = (
            () if first_child is None else _read_level(data, first_child, position + size, False)
        )
        boxes.append(Box(box_type, position, size, header, children))
        position += size
    return tuple(boxes)


def read_boxes(data: bytes) -> tuple[Box, ...]:
    """The box tree of a whole file: its top-level boxes, each with its children."""
    return _read_level(data, 0, len(data), True)


def walk(boxes: Sequence[Box]) -> Iterator[Box]:
    """Every box of the tree, depth first, in file order."""
    for box in boxes:
        yield box
        yield from walk(box.children)


def find_path(boxes: Sequence[Box], path: str) -> list[Box] | None:
    """The chain of boxes from the top level to ``path`` (``"moov/udta/stem"``), first match at
    each level; ``None`` when a box on the way is missing."""
    chain: list[Box] = []
    level: Sequence[Box] = boxes
    for name in path.split("/"):
        match = next((box for box in level if box.type == name), None)
        if match is None:
            return None
        chain.append(match)
        level = match.children
    return chain


def find_box(boxes: Sequence[Box], path: str) -> Box | None:
    """The box at ``path`` (first match at each level), or ``None``."""
    chain = find_path(boxes, path)
    return chain[-1] if chain else None


def make_box(box_type: str, payload: bytes) -> bytes:
    """A plain box (no version/flags) of ``box_type`` holding ``payload``."""
    raw_type = box_type.encode("latin-1")
    if len(raw_type) != 4:
        raise ValueError(f"a box type has four characters, got {box_type!r}")
    size = 8 + len(payload)
    if size > 0xFFFFFFFF:
        return struct.pack(">I4sQ", 1, raw_type, size + 8) + payload
    return struct.pack(">I4s", size, raw_type) + payload


def _resize(data: bytearray, box: Box, delta: int) -> None:
    """Add ``delta`` to ``box``'s size field (u32 or u64, as written)."""
    if box.header_size == 16:
        struct.pack_into(">Q", data, box.offset + 8, box.size + delta)
        return
    if box.size + delta > 0xFFFFFFFF:
        raise InputError(f"MP4: box {box.type!r} would exceed 4 GiB; not supported")
    struct.pack_into(">I", data, box.offset, box.size + delta)


def _shift_chunk_offsets(data: bytearray, boxes: Sequence[Box], at: int, delta: int) -> None:
    """Move every ``stco``/``co64`` entry that points at or after ``at`` by ``delta``."""
    for box in walk(boxes):
        if box.type not in ("stco", "co64"):
            continue
        wide = box.type == "co64"
        entry_size, fmt = (8, ">Q") if wide else (4, ">I")
        base = box.payload_offset + 4  # after version/flags
        (count,) = struct.unpack_from(">I", data, base)
        if base + 4 + count * entry_size > box.end:
            raise InputError(f"MP4: {box.type} at offset {box.offset} holds fewer entries")
        for index in range(count):
            where = base + 4 + index * entry_size
            (value,) = struct.unpack_from(fmt, data, where)
            if value < at:
                continue
            moved = value + delta
            if not wide and moved > 0xFFFFFFFF:
                raise InputError("MP4: a chunk offset would exceed 4 GiB (stco); not supported")
            struct.pack_into(fmt, data, where, moved)


def _splice(data: bytes, chain: Sequence[Box], at: int, remove: int, insert: bytes) -> bytes:
    """Replace ``remove`` bytes at ``at`` (inside the last box of ``chain``) by ``insert``,
    growing every box of ``chain`` and moving the chunk offsets behind the edit."""
    delta = len(insert) - remove
    edited = bytearray(data)
    for box in chain:
        _resize(edited, box, delta)
    # Offsets are read before the splice (the tables' positions are those of ``boxes``), and
    # point at media data, which lies wholly before or wholly after the edit.
    _shift_chunk_offsets(edited, read_boxes(data), at + remove, delta)
    edited[at : at + remove] = insert
    return bytes(edited)


def insert_box(data: bytes, parent_path: str, box: bytes) -> bytes:
    """``data`` with ``box`` (whole, from :func:`make_box`) appended to the box at
    ``parent_path`` (``"moov/udta"``); missing containers on the path are created (the first
    path element must exist)."""
    boxes = read_boxes(data)
    names = parent_path.split("/")
    for depth in range(len(names), 0, -1):
        chain = find_path(boxes, "/".join(names[:depth]))
        if chain is not None:
            break
    else:
        raise InputError(f"MP4: no {names[0]!r} box")
    for name in reversed(names[depth:]):
        box = make_box(name, box)
    parent = chain[-1]
    return _splice(data, chain, parent.end, 0, box)


def remove_box(data: bytes, path: str) -> bytes:
    """``data`` without the box at ``path`` (its parents shrink, offsets move)."""
    chain = find_path(read_boxes(data), path)
    if chain is None:
        raise InputError(f"MP4: no box at {path!r}")
    target = chain[-1]
    return _splice(data, chain[:-1], target.offset, target.size, b"")


def replace_payload(data: bytes, path: str, payload: bytes) -> bytes:
    """``data`` with the payload of the box at ``path`` replaced (sizes and offsets follow)."""
    chain = find_path(read_boxes(data), path)
    if chain is None:
        raise InputError(f"MP4: no box at {path!r}")
    target = chain[-1]
    removed = target.size - target.header_size
    return _splice(data, chain, target.payload_offset, removed, payload)


def tracks(boxes: Sequence[Box]) -> list[Box]:
    """The ``moov/trak`` boxes, in file order."""
    moov = find_box(boxes, "moov")
    return [box for box in (moov.children if moov else ()) if box.type == "trak"]


def set_track_flags(data: bytes, flags: Sequence[int]) -> bytes:
    """``data`` with the ``tkhd`` flags of track ``i`` (file order) set to ``flags[i]``."""
    edited = bytearray(data)
    found = tracks(read_boxes(data))
    if len(found) != len(flags):
        raise InputError(f"MP4: {len(found)} tracks, but {len(flags)} flags given")
    for trak, value in zip(found, flags, strict=True):
        tkhd = find_box(trak.children, "tkhd")
        if tkhd is None:
            raise InputError(f"MP4: track at offset {trak.offset} has no tkhd")
        edited[tkhd.payload_offset + 1 : tkhd.payload_offset + 4] = value.to_bytes(3, "big")
    return bytes(edited)


def track_flags(data: bytes) -> list[int]:
    """The ``tkhd`` flags of every track, in file order."""
    values = []
    for trak in tracks(read_boxes(data)):
        tkhd = find_box(trak.children, "tkhd")
        start = tkhd.payload_offset + 1 if tkhd else 0
        values.append(int.from_bytes(data[start : start + 3], "big") if tkhd else -1)
    return values


def set_major_brand(data: bytes, brand: str) -> bytes:
    """``data`` with the ``ftyp`` major brand set to ``brand`` (four characters; the
    compatible brands are kept, so nothing moves)."""
    ftyp = find_box(read_boxes(data), "ftyp")
    raw = brand.encode("latin-1")
    if ftyp is None or len(raw) != 4:
        raise InputError("MP4: no ftyp box" if ftyp is None else f"bad brand {brand!r}")
    edited = bytearray(data)
    edited[ftyp.payload_offset : ftyp.payload_offset + 4] = raw
    return bytes(edited)


def major_brand(data: bytes) -> str | None:
    """The ``ftyp`` major brand, or ``None`` without an ``ftyp``."""
    ftyp = find_box(read_boxes(data), "ftyp")
    if ftyp is None:
        return None
    return bytes(data[ftyp.payload_offset : ftyp.payload_offset + 4]).decode("latin-1")


def header_times(data: bytes) -> dict[str, list[int]]:
    """Creation and modification times of every ``mvhd``, ``tkhd`` and ``mdhd`` (version 0:
    u32, version 1: u64, seconds since 1904), by box type."""
    times: dict[str, list[int]] = {"mvhd": [], "tkhd": [], "mdhd": []}
    for box in walk(read_boxes(data)):
        if box.type in times:
            version = data[box.payload_offset]
            fmt = ">QQ" if version == 1 else ">II"
            times[box.type] += list(struct.unpack_from(fmt, data, box.payload_offset + 4))
    return times


def edit_lists(data: bytes) -> list[list[tuple[int, int]]]:
    """Every track's ``elst`` entries (§8.6.6) as ``(segment_duration, media_time)``: the
    duration in the movie timescale, the media time in the track's (the encoder delay an
    AAC decoder skips); an empty list for a track without an edit list."""
    found = []
    for trak in tracks(read_boxes(data)):
        elst = find_box(trak.children, "edts/elst")
        entries: list[tuple[int, int]] = []
        if elst is not None:
            start = elst.payload_offset
            version = data[start]
            (count,) = struct.unpack_from(">I", data, start + 4)
            fmt, step = (">Qq", 20) if version == 1 else (">Ii", 12)
            for index in range(count):
                duration, media_time = struct.unpack_from(fmt, data, start + 8 + index * step)
                entries.append((duration, media_time))
        found.append(entries)
    return found


def scan_top_level(path: Path) -> list[Box]:
    """The top-level boxes of a file, read from their headers only (no children): cheap on a
    large file."""
    boxes: list[Box] = []
    total = path.stat().st_size
    with path.open("rb") as handle:
        position = 0
        while position < total:
            handle.seek(position)
            header = handle.read(16)
            if len(header) < 8:
                raise InputError(f"MP4: {len(header)} stray bytes at offset {position}")
            size, raw_type = struct.unpack_from(">I4s", header)
            size_header = 8
            if size == 1:
                if len(header) < 16:
                    raise InputError(f"MP4: truncated largesize at offset {position}")
                (size,) = struct.unpack_from(">Q", header, 8)
                size_header = 16
            elif size == 0:
                size = total - position
            if size < size_header or position + size > total:
                raise InputError(
                    f"MP4: top-level box at offset {position} has size {size}, past the end "
                    f"of the file ({total} bytes)"
                )
            boxes.append(Box(raw_type.decode("latin-1"), position, size, size_header))
            position += size
    return boxes


def read_head(path: Path) -> bytes:
    """The file's bytes before its first ``mdat`` (``ftyp``, ``moov`` …, as a fast-start file
    has them): small, and editable with the functions above; the chunk offsets still point
    into the rest of the file."""
    for box in scan_top_level(path):
        if box.type == "mdat":
            with path.open("rb") as handle:
                return handle.read(box.offset)
    return path.read_bytes()


def read_moov(path: Path) -> bytes:
    """The ``moov`` box alone (wherever it lies in the file), as a buffer whose only top-level
    box is ``moov``; empty when the file has none."""
    for box in scan_top_level(path):
        if box.type == "moov":
            with path.open("rb") as handle:
                handle.seek(box.offset)
                return handle.read(box.size)
    return b""

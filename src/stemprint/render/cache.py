"""The incremental re-render cache: signals kept on disk between renders, by content key.

Three kinds of entries, each over one render extent, under the SHA-256 key of everything that
determines it (``render.cache_keys``): a track's ``pre`` signal (clips, polarity, inserts), a
bus's or the master's ``pre`` signal (its input sum and inserts), and partial input sums of
buses with many inputs. A later render reads a matching entry block by block instead of
rendering it, and does not run what only that entry needed (``render.cache_plan``): after one
fader change, the track is read back, its bus re-sums one partial sum, and the other buses come
from their entries. A fourth kind keeps printed files (``<key>.file`` with its ``<key>.json``
record: SHA-256, write statistics, levels), under the key of the tap's signal and everything the
writer and the meters do with it (``export.reuse``): a file whose key is unchanged is copied
into the next package instead of written and measured again.

Invariants
----------
- Bit-identical: an entry holds exactly the samples the render produced (float32 only when a
  chain ends in a pedalboard stage and every block is exact in float32, else float64), so a
  render with the cache equals one without it, for every block size and thread count.
- Never wrong audio: an entry carries an XXH3-64 digest of every :data:`CHUNK_FRAMES` frames
  of its data (a check against a damaged disk or a short write; the key, not the check, is what
  identifies the content). A chunk is checked when it is read, before any of its samples is
  used; a short file or a bad header is a miss. A chunk that fails its check raises
  :class:`~stemprint.errors.CacheEntryDamaged` and deletes the entry: nothing unchecked has
  reached a signal, and the caller renders again (``export.package`` does, once, with every
  entry checked in full before use: :meth:`CachedSignal.verify`, where a mismatch is a miss).
  Checking while reading costs no pass of its own before the render (32 tracks x 3 min, one
  fader changed: 0.32-0.39 s before the first block was rendered, with CRC-32), and XXH3 hashes
  at 19.7 GB/s here where ``zlib.crc32`` took 2.0-2.8 (16 MiB buffers).
- Memory stays flat: entries are read block by block (``pread``), written block by block.
- Atomic: an entry is written under a temporary name and renamed when complete; a killed render
  leaves at most a temporary file, swept later (its process is gone).
- Owns only its entries: ``DIR`` holds a marker file; an existing non-empty folder without it is
  refused; eviction (least recently used first, above the size cap) deletes only entry and
  temporary files of this format inside ``DIR/entries``.
- Not cached (rendered every time): what has no key (``render.cache_keys``), tracks without
  inserts (reading their clips costs what reading an entry does), and renders with an
  until-silent tail (their length is not known in advance).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from xxhash import xxh3_64, xxh3_64_intdigest

from stemprint.errors import CacheEntryDamaged, InputError
from stemprint.planar import interleave

MARKER_NAME = "STEMPRINT-CACHE"
DEFAULT_MAX_BYTES = 20 * 1024**3
"""Default size cap of a cache folder (entries beyond it are evicted, oldest use first)."""

MAGIC = b"STEMPRC1"
HEADER_BYTES = 4096
ENTRY_FORMAT = 3
"""Format of a ``.pre`` entry (3: an XXH3-64 digest per chunk, in a trailer after the data; 2:
one CRC-32 of the whole data, in the header). Another format is a miss."""
CHUNK_FRAMES = 16384
"""Frames under one digest: the default render block, so a block reads and checks one chunk."""
ENTRY_RE = re.compile(r"^[0-9a-f]{64}\.(pre|file|json)$")
FILE_FORMAT = 1
"""Format of a printed file's record (``<key>.json``)."""
TEMP_RE = re.compile(r"^\.tmp-[0-9a-f]{64}-(\d+)-[0-9a-f]+r?$")
TEMP_MAX_AGE_S = 24 * 3600
HASH_CHUNK = 16 * 1024 * 1024
"""Bytes read at once when a file is hashed or an entry checked."""


# -- entries ---------------------------------------------------------------------------------


class CachedSignal:
    """An entry on disk: ``(length, channels)`` samples in render order after a header of
    :data:`HEADER_BYTES`, then the chunks' XXH3-64 digests (``<u8``, one per
    :data:`CHUNK_FRAMES` frames).

    Read with ``pread``, not memory-mapped: a mapping faults each 4 KiB page in separately,
    which cost more system time than the copy. The file stays open from :meth:`open` to
    :meth:`close`, so an entry evicted (unlinked) meanwhile, by this render or another, stays
    readable; worker processes share the descriptor (``pread`` has no file position).
    """

    def __init__(
        self, path: Path, dtype: np.dtype, channels: int, length: int, digests: np.ndarray
    ) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.channels = channels
        self.length = length
        self.digests = digests
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._held: tuple[int, np.ndarray] | None = None  # the last chunk read, while straddled

    def open(self) -> None:
        """Open the file (it stays readable if evicted now) and mark it used (LRU)."""
        self._open()
        with contextlib.suppress(OSError):
            os.utime(self.path)  # last use, for LRU eviction

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def verify(self) -> bool:
        """Whether every chunk matches its digest (read in full); opens the entry and marks it
        used (LRU)."""
        try:
            sound = self._chunks_sound()
        except OSError:
            sound = False
        if not sound:
            self.close()
            return False
        self.open()
        return True

    def _chunks_sound(self) -> bool:
        frame_bytes = self.channels * self.dtype.itemsize
        step = CHUNK_FRAMES * frame_bytes
        per_read = max(HASH_CHUNK // step, 1) * CHUNK_FRAMES
        # One buffer read into again and again: a fresh 16 MiB object per read costs its page
        # faults (141 MB entry: 0.04-0.07 s instead of 0.07-0.22 s).
        buffer = memoryview(bytearray(min(per_read, self.length) * frame_bytes))
        for first in range(0, self.length, per_read):
            view = buffer[: min(per_read, self.length - first) * frame_bytes]
            if os.preadv(self._open(), [view], HEADER_BYTES + first * frame_bytes) != len(view):
                return False
            for at in range(0, len(view), step):
                index = first // CHUNK_FRAMES + at // step
                if xxh3_64_intdigest(view[at : at + step]) != self.digests[index]:
                    return False
        return True

    def block(self, start: int, n: int) -> np.ndarray:
        """Samples ``start … start + n`` as ``(channels, n)`` float64 (zeros past the end).

        Raises
        ------
        CacheEntryDamaged
            A chunk failed its check (the entry is deleted; no sample of it was returned).
        """
        end = min(start + n, self.length)
        out = np.empty((self.channels, n)) if end - start == n else np.zeros((self.channels, n))
        at = start
        while at < end:
            index = at // CHUNK_FRAMES
            first = index * CHUNK_FRAMES
            size = min(CHUNK_FRAMES, self.length - first)
            stop = min(end, first + size)
            chunk = self._chunk(index, size, keep=stop < first + size)
            out[:, at - start : stop - start] = chunk[at - first : stop - first].T
            at = stop
        return out

    def _chunk(self, index: int, frames: int, keep: bool) -> np.ndarray:
        """Chunk ``index`` (``frames`` long) as ``(frames, channels)``, checked. ``keep``: the
        block ends inside it, hold it for the next block (a block size below
        :data:`CHUNK_FRAMES` still reads and checks each chunk once)."""
        with self._lock:
            held, self._held = self._held, None
            if held is not None and held[0] == index:
                chunk = held[1]
            else:
                chunk = np.empty((frames, self.channels), self.dtype)
                data = chunk.data.cast("B")
                offset = HEADER_BYTES + index * CHUNK_FRAMES * self.channels * self.dtype.itemsize
                if os.preadv(self._open(), [data], offset) != chunk.nbytes:
                    raise OSError(f"cache entry {self.path} was cut short while in use")
                if xxh3_64_intdigest(data) != self.digests[index]:
                    self._damaged()
            if keep:
                self._held = (index, chunk)
            return chunk

    def _damaged(self) -> None:
        with contextlib.suppress(OSError):
            # Ours, and wrong: no later render may find it (unless another render has
            # renamed a new entry of the same key into its place since it was opened).
            if os.stat(self.path).st_ino == os.fstat(self._open()).st_ino:
                self.path.unlink()
        raise CacheEntryDamaged(
            "a render-cache entry failed its check while in use; it was deleted",
            file=str(self.path),
            fix="render again (a damaged entry is rendered anew); if this repeats, check the "
            "disk that holds the cache",
        )

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self._held = None


class EntryWriter:
    """Writes one entry block by block (opened on the first block, in whichever process runs
    the instance); renamed into place when its last sample is written."""

    def __init__(self, cache: RenderCache, key: str, length: int, dtype: str) -> None:
        self.cache = cache
        self.key = key
        self.length = length
        self.dtype = np.dtype(dtype)
        self.written = 0
        self.failed = False
        self.done = False
        self._file: Any = None
        self._tmp: Path | None = None
        self._digests: list[int] = []  # of the chunks complete
        self._hasher = xxh3_64()  # of the chunk being written
        self._chunk_bytes = 0  # of the chunk being written
        self._channels = 0
        self._pid = 0

    def write(self, start: int, x: np.ndarray) -> None:
        """Take the block starting at render sample ``start`` (``(channels, n)`` float64)."""
        if self.failed or self.done or start != self.written:
            if not self.done and start != self.written:
                self.abandon()
            return
        try:
            if self._file is None:
                self._open(x.shape[0])
            if x.shape[0] != self._channels:
                self.abandon()
                return
            part = x[:, : self.length - self.written]
            if self.dtype != np.float64:
                # Narrowed and compared channel by channel (contiguous rows), then interleaved:
                # about half the time of comparing the interleaved copy with ``part.T``.
                narrow = part.astype(self.dtype)
                if not np.array_equal(narrow, part):
                    self.abandon()  # not exact in float32: never store a changed sample
                    return
                part = narrow
            data = interleave(part)
            self._check(data.data.cast("B"))  # the array's own buffer: no bytes copy
            self._file.write(data.data)
            self.written += part.shape[1]
            if self.written >= self.length:
                self._commit()
        except OSError:
            self.abandon()

    def _check(self, data: memoryview) -> None:
        """Fold ``data`` into the digests of its chunks (:data:`CHUNK_FRAMES` frames each)."""
        full = CHUNK_FRAMES * self._channels * self.dtype.itemsize
        while len(data):
            take = min(full - self._chunk_bytes, len(data))
            self._hasher.update(data[:take])
            self._chunk_bytes += take
            data = data[take:]
            if self._chunk_bytes == full:
                self._digests.append(self._hasher.intdigest())
                self._hasher.reset()
                self._chunk_bytes = 0

    def _open(self, channels: int) -> None:
        self._channels = channels
        self._pid = os.getpid()
        name = f".tmp-{self.key}-{self._pid}-{os.urandom(4).hex()}"
        self._tmp = self.cache.entries / name
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in _commit / abandon
        self._file.write(b"\0" * HEADER_BYTES)

    def _commit(self) -> None:
        if self._chunk_bytes:
            self._digests.append(self._hasher.intdigest())
        self._file.write(np.asarray(self._digests, "<u8").tobytes())
        header = {
            "format": ENTRY_FORMAT,
            "key": self.key,
            "channels": self._channels,
            "length": self.length,
            "dtype": self.dtype.str,
            "chunk_frames": CHUNK_FRAMES,
        }
        blob = MAGIC + json.dumps(header).encode()
        self._file.seek(0)
        self._file.write(blob.ljust(HEADER_BYTES, b"\0"))
        self._file.close()
        self._file = None
        assert self._tmp is not None
        os.replace(self._tmp, self.cache.entries / f"{self.key}.pre")
        self._tmp = None
        self.done = True
        self.cache.evict()

    def abandon(self) -> None:
        """Drop a half-written entry (only in the process that wrote it)."""
        self.failed = True
        if self._file is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                self._file.close()
            if self._tmp is not None:
                with contextlib.suppress(OSError):
                    self._tmp.unlink()
        self._file = None
        self._tmp = None


def _entry_shape(
    head: bytes, key: str, length: int, channels: int | None
) -> tuple[tuple[int, int], np.dtype] | None:
    """``((length, channels), dtype)`` of an entry's header ``head``, or ``None`` when it is not
    a sound header of ``key`` in this format, ``length`` long (and ``channels`` wide)."""
    if len(head) < HEADER_BYTES or not head.startswith(MAGIC):
        return None
    header = json.loads(head[len(MAGIC) :].rstrip(b"\0"))
    dtype = np.dtype(header["dtype"])
    shape = (int(header["length"]), int(header["channels"]))
    if header.get("format") != ENTRY_FORMAT or header.get("key") != key:
        return None
    if shape[0] != length or header.get("chunk_frames") != CHUNK_FRAMES:
        return None
    if channels is not None and shape[1] != channels:
        return None
    if dtype not in (np.dtype("<f4"), np.dtype("<f8")):
        return None
    return shape, dtype


# -- the cache folder ------------------------------------------------------------------------


class RenderCache:
    """A cache folder (created, with its marker, when missing).

    Raises
    ------
    InputError
        ``root`` exists, is not empty and is not a stemprint cache (it would never be written
        into or evicted from), or is not a folder.
    """

    def __init__(self, root: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root).absolute()
        self.max_bytes = max_bytes
        marker = self.root / MARKER_NAME
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"cache {self.root} is not a folder", field="--cache")
        # Listed before the marker is looked for: whatever another render put here was put
        # after its marker (below), so a non-empty listing of our own has a marker by now.
        if self.root.is_dir() and any(self.root.iterdir()) and not marker.is_file():
            raise InputError(
                f"{self.root} is not empty and is not a stemprint cache",
                field="--cache",
                fix="name a new or empty folder (the cache deletes only its own entries)",
            )
        # The marker is the first thing put into the folder, created exclusively: a render
        # opening the same new cache at the same moment then sees either an empty folder or
        # a marked one, never one holding ``entries`` without its marker.
        self.root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError), open(marker, "x", encoding="utf-8") as f:
            f.write(
                "stemprint render cache: stemprint deletes only entries/*.pre and its own "
                "temporary files here.\n"
            )
        self.entries = self.root / "entries"
        self.entries.mkdir(exist_ok=True)
        self._hashes_path = self.root / "file-hashes.json"
        self._hashes: dict[str, str] | None = None

    # -- file hashes ---------------------------------------------------------------------------

    def file_digest(self, path: Path) -> str:
        """SHA-256 of a file's content, remembered per (path, size, mtime, inode)."""
        st = os.stat(path)
        memo = f"{Path(path).absolute()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
        if self._hashes is None:
            try:
                self._hashes = dict(json.loads(self._hashes_path.read_text("utf-8")))
            except (OSError, ValueError, TypeError):
                self._hashes = {}
        found = self._hashes.get(memo)
        if found is None:
            import hashlib

            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(HASH_CHUNK):
                    h.update(chunk)
            found = self._hashes[memo] = h.hexdigest()
            self._save_hashes()
        return found

    def _save_hashes(self) -> None:
        tmp = self.root / f".tmp-hashes-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            tmp.write_text(json.dumps(self._hashes), "utf-8")
            os.replace(tmp, self._hashes_path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    # -- entries -------------------------------------------------------------------------------

    def lookup(self, key: str, channels: int | None, length: int) -> CachedSignal | None:
        """The entry ``key`` with a sound header and size, or ``None`` (missing or stale: a
        miss). Its data is not checked yet: each chunk is when it is read
        (:meth:`CachedSignal.block`), or all of them by :meth:`CachedSignal.verify`."""
        path = self.entries / f"{key}.pre"
        try:
            with open(path, "rb") as f:
                head = f.read(HEADER_BYTES)
                shape_dtype = _entry_shape(head, key, length, channels)
                if shape_dtype is None:
                    return None
                shape, dtype = shape_dtype
                data_bytes = shape[0] * shape[1] * dtype.itemsize
                chunks = -(-shape[0] // CHUNK_FRAMES)
                if os.fstat(f.fileno()).st_size != HEADER_BYTES + data_bytes + 8 * chunks:
                    return None
                f.seek(HEADER_BYTES + data_bytes)
                digests = np.frombuffer(f.read(8 * chunks), "<u8")
            return CachedSignal(path, dtype, shape[1], shape[0], digests)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def evict(self) -> None:
        """Delete entries, least recently used first, until the cache fits its cap; sweep
        temporary files of renders that are gone."""
        entries: list[tuple[float, int, Path]] = []
        try:
            names = os.listdir(self.entries)
        except OSError:
            return
        now = time.time()
        for name in names:
            path = self.entries / name
            try:
                st = path.stat()
            except OSError:
                continue
            if ENTRY_RE.match(name):
                entries.append((st.st_mtime, st.st_size, path))
                continue
            temp = TEMP_RE.match(name)
            if temp and (now - st.st_mtime > TEMP_MAX_AGE_S or not _alive(int(temp.group(1)))):
                with contextlib.suppress(OSError):
                    path.unlink()
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
            total -= size

    def size_bytes(self) -> int:
        """Bytes held by complete entries."""
        total = 0
        for path in self.entries.iterdir():
            if ENTRY_RE.match(path.name):
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
        return total

    # -- printed files ---------------------------------------------------------------------

    def find_file(self, key: str) -> tuple[Path, dict[str, Any]] | None:
        """A printed file kept under ``key`` and its record, or ``None`` (a miss: missing,
        another size than recorded, or a record that fails its own SHA-256 check). The file's
        bytes are not checked here: its user compares a copy's SHA-256 with the record's."""
        record_path = self.entries / f"{key}.json"
        path = self.entries / f"{key}.file"
        try:
            record = json.loads(record_path.read_text("utf-8"))
            if not isinstance(record, dict) or record.get("format") != FILE_FORMAT:
                return None
            if record.get("key") != key or os.path.getsize(path) != record.get("size"):
                return None
            if record.pop("check", None) != _record_check(record):
                return None  # a damaged record: its levels would not be of the file
            for used in (path, record_path):
                os.utime(used)  # last use, for LRU eviction
        except (OSError, ValueError):
            return None
        return path, record

    def store_file(self, key: str, source: Path, record: dict[str, Any]) -> None:
        """Keep the finished file ``source`` under ``key`` with its ``record`` (JSON-able):
        hard-linked when the cache is on its filesystem (nothing here is ever written in
        place), else copied; each under a temporary name, renamed when complete."""
        import shutil

        stamp = f"{os.getpid()}-{os.urandom(4).hex()}"
        tmp_file = self.entries / f".tmp-{key}-{stamp}"
        tmp_record = self.entries / f".tmp-{key}-{stamp}r"
        try:
            try:
                os.link(source, tmp_file)
            except OSError:
                shutil.copyfile(source, tmp_file)
            data = {**record, "format": FILE_FORMAT, "key": key, "size": tmp_file.stat().st_size}
            data["check"] = _record_check(data)
            tmp_record.write_text(json.dumps(data), "utf-8")
            os.replace(tmp_file, self.entries / f"{key}.file")
            os.replace(tmp_record, self.entries / f"{key}.json")
        finally:
            for tmp in (tmp_file, tmp_record):
                with contextlib.suppress(OSError):
                    tmp.unlink()


def _record_check(record: dict[str, Any]) -> str:
    """SHA-256 of a record's canonical JSON (without its ``check``)."""
    import hashlib

    blob = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True

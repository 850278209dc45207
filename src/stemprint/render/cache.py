"""The incremental re-render cache: track routes' ``pre`` signals kept on disk between renders.

A track instance's ``pre`` signal (its clips, polarity and insert chain: the expensive part) is
stored per render extent under a SHA-256 key of everything that determines it; a later render
whose key matches reads it block by block instead of reading the clips and running the
plug-ins, and runs only the fader, pan, sends and sums (``render.runner``).

Invariants
----------
- Bit-identical: an entry holds exactly the samples the chain produced (float32 only when the
  chain ends in a pedalboard stage and every block is exact in float32, else float64), so a
  render with the cache equals one without it, for every block size and thread count.
- Never wrong audio: an entry's header carries the SHA-256 of its data; it is verified in full
  before the entry is used (a mismatch, a short file or a bad header is a miss, never an error).
- Memory stays flat: entries are memory-mapped and read block by block, written block by block.
- Atomic: an entry is written under a temporary name and renamed when complete; a killed render
  leaves at most a temporary file, swept later (its process is gone).
- Owns only its entries: ``DIR`` holds a marker file; an existing non-empty folder without it is
  refused; eviction (least recently used first, above the size cap) deletes only entry and
  temporary files of this format inside ``DIR/entries``.
- Not cached (rendered every time): instances with a sidechain key, a hosted VST3/AU plug-in,
  a pre-FX send (their ``input`` is read too), no inserts, dry stem instances, and renders
  with an until-silent tail (their length is not known in advance).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stemprint.errors import InputError

if TYPE_CHECKING:
    from stemprint.graph.types import RenderExtent
    from stemprint.render.plan import Instance, InstanceKey, RenderPlan

MARKER_NAME = "STEMPRINT-CACHE"
DEFAULT_MAX_BYTES = 20 * 1024**3
"""Default size cap of a cache folder (entries beyond it are evicted, oldest use first)."""

FORMAT = 1
MAGIC = b"STEMPRC1"
HEADER_BYTES = 4096
ENTRY_RE = re.compile(r"^[0-9a-f]{64}\.pre$")
TEMP_RE = re.compile(r"^\.tmp-[0-9a-f]{64}-(\d+)-[0-9a-f]+$")
TEMP_MAX_AGE_S = 24 * 3600
HASH_CHUNK = 16 * 1024 * 1024


class Uncacheable(Exception):
    """Something in a route's key cannot be hashed faithfully: do not cache that route."""


# -- keys ------------------------------------------------------------------------------------


def _canon(obj: Any) -> Any:
    """A JSON-able, exact and order-stable image of ``obj`` (floats by their hex form)."""
    from stemprint.dsp.automation import AutomationLane

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return ["f", float(obj).hex()]
    if isinstance(obj, Path):
        return ["path", str(obj)]
    if isinstance(obj, (tuple, list)):
        return [_canon(x) for x in obj]
    if isinstance(obj, dict) or hasattr(obj, "items"):
        items = [[_canon(k), _canon(v)] for k, v in obj.items()]
        return ["dict", sorted(items, key=lambda kv: json.dumps(kv[0]))]
    if isinstance(obj, AutomationLane):
        return ["lane", _canon(obj.points), obj.interpolation, _canon(obj.default)]
    if isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj)
        return ["nd", str(data.dtype), list(data.shape), hashlib.sha256(data.tobytes()).hexdigest()]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [
            type(obj).__name__,
            [[f.name, _canon(getattr(obj, f.name))] for f in dataclasses.fields(obj)
             if f.name != "where"],  # a message location, not audio
        ]  # fmt: skip
    raise Uncacheable(f"cannot hash a {type(obj).__name__}")


def _versions() -> dict[str, str]:
    import numpy
    import pedalboard
    import soundfile
    import soxr

    from stemprint import __version__
    from stemprint.dsp.chain import INSERT_CONTROL_INTERVAL
    from stemprint.dsp.inserts import CHUNK_SAMPLES
    from stemprint.render.sources import READ_FRAMES

    return {
        "format": str(FORMAT),
        "stemprint": __version__,
        "numpy": numpy.__version__,
        "pedalboard": str(getattr(pedalboard, "__version__", "?")),
        "soundfile": str(soundfile.__version__),
        "libsndfile": str(soundfile.__libsndfile_version__),
        "soxr": str(getattr(soxr, "__version__", "?")),
        "python": sys.version,
        "chunk": str(CHUNK_SAMPLES),
        "control": str(INSERT_CONTROL_INTERVAL),
        "read_frames": str(READ_FRAMES),
    }


def uncacheable_reason(instance: Instance, keep_input: bool) -> str | None:
    """Why an instance is rendered every time, or ``None`` when it may be cached."""
    from stemprint.dsp.inserts import EXTERNAL_TYPES

    node = instance.node
    if node.kind != "track":
        return "not a track"
    if not node.inserts:
        return "no inserts"
    if instance.dry:
        return "dry"
    if instance.keys or node.keys or any(s.sidechain for s in node.inserts):
        return "sidechain key"
    if any(s.type in EXTERNAL_TYPES for s in node.inserts):
        return "hosted plug-in"
    if keep_input:
        return "pre-FX send"
    return None


# -- entries ---------------------------------------------------------------------------------


class CachedSignal:
    """A verified entry, memory-mapped: ``(length, channels)`` samples in render order."""

    def __init__(self, data: np.ndarray, channels: int, length: int) -> None:
        self.data = data
        self.channels = channels
        self.length = length

    def block(self, start: int, n: int) -> np.ndarray:
        """Samples ``start … start + n`` as ``(channels, n)`` float64 (zeros past the end)."""
        out = np.zeros((self.channels, n))
        end = min(start + n, self.length)
        if end > start:
            out[:, : end - start] = self.data[start:end].T
        return out


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
        self._hash = hashlib.sha256()
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
            data = np.ascontiguousarray(part.T, dtype=self.dtype)
            if self.dtype != np.float64 and not np.array_equal(data, part.T):
                self.abandon()  # not exact in float32: never store a changed sample
                return
            raw = data.tobytes()
            self._hash.update(raw)
            self._file.write(raw)
            self.written += part.shape[1]
            if self.written >= self.length:
                self._commit()
        except OSError:
            self.abandon()

    def _open(self, channels: int) -> None:
        self._channels = channels
        self._pid = os.getpid()
        name = f".tmp-{self.key}-{self._pid}-{os.urandom(4).hex()}"
        self._tmp = self.cache.entries / name
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in _commit / abandon
        self._file.write(b"\0" * HEADER_BYTES)

    def _commit(self) -> None:
        header = {
            "format": FORMAT,
            "key": self.key,
            "channels": self._channels,
            "length": self.length,
            "dtype": self.dtype.str,
            "sha256": self._hash.hexdigest(),
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
        if self.root.is_dir() and not marker.is_file() and any(self.root.iterdir()):
            raise InputError(
                f"{self.root} is not empty and is not a stemprint cache",
                field="--cache",
                fix="name a new or empty folder (the cache deletes only its own entries)",
            )
        self.entries = self.root / "entries"
        self.entries.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            marker.write_text(
                "stemprint render cache: stemprint deletes only entries/*.pre and its own "
                "temporary files here.\n",
                "utf-8",
            )
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
        """The verified entry ``key``, or ``None`` (missing, stale or corrupt: a miss)."""
        path = self.entries / f"{key}.pre"
        try:
            with open(path, "rb") as f:
                head = f.read(HEADER_BYTES)
            if len(head) < HEADER_BYTES or not head.startswith(MAGIC):
                return None
            header = json.loads(head[len(MAGIC) :].rstrip(b"\0"))
            dtype = np.dtype(header["dtype"])
            shape = (int(header["length"]), int(header["channels"]))
            if header.get("format") != FORMAT or header.get("key") != key or shape[0] != length:
                return None
            if channels is not None and shape[1] != channels:
                return None
            if dtype not in (np.dtype("<f4"), np.dtype("<f8")):
                return None
            if os.path.getsize(path) != HEADER_BYTES + shape[0] * shape[1] * dtype.itemsize:
                return None
            data = np.memmap(path, dtype, "r", HEADER_BYTES, shape)
            h = hashlib.sha256()
            flat = data.reshape(-1)
            step = max(HASH_CHUNK // dtype.itemsize, 1)
            for i in range(0, flat.shape[0], step):
                h.update(np.ascontiguousarray(flat[i : i + step]).data)
            if h.hexdigest() != header["sha256"]:
                return None
            with contextlib.suppress(OSError):
                os.utime(path)  # last use, for LRU eviction
            return CachedSignal(data, shape[1], shape[0])
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
        for path in self.entries.glob("*.pre"):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    # -- one render ----------------------------------------------------------------------------

    def plan(
        self,
        plan: RenderPlan,
        extent: RenderExtent,
        run_length: int,
        keep_input: set[InstanceKey],
        tap_sources: set[str],
        threads: int = 1,
    ) -> CachePlan:
        """Decide, per track instance, reuse (a verified entry) or render and store."""
        graph = plan.graph
        result = CachePlan(self)
        if extent.until_silent is not None:
            result.note = "until-silent tail: nothing cached"
        base = {
            "versions": _versions(),
            "rate": graph.sample_rate,
            "origin": extent.origin_sample,
            "length": run_length,
        }
        keys: dict[InstanceKey, str] = {}
        for key, instance in plan.instances.items():
            reason = uncacheable_reason(instance, key in keep_input)
            if reason is None and extent.until_silent is not None:
                reason = "until-silent tail"
            if reason is None:
                try:
                    keys[key] = self._key(instance, base)
                except (Uncacheable, OSError) as exc:
                    reason = f"not hashable ({exc})"
            if reason is not None:
                result.skipped[key] = reason
        with ThreadPoolExecutor(max(1, threads)) as pool:
            found = dict(
                zip(keys, pool.map(lambda k: self.lookup(k, None, run_length), keys.values()),
                    strict=True)
            )  # fmt: skip
        self.evict()  # the entries found stay readable (mapped) even if evicted now
        for key, digest in keys.items():
            hit = found[key]
            if hit is not None:
                result.hits[key] = hit
                continue
            node = plan.instances[key].node
            # A pedalboard stage last: its samples are float32 values (checked per block).
            dtype = "<f4" if _ends_in_pedalboard(node.inserts) else "<f8"
            result.misses[key] = EntryWriter(self, digest, run_length, dtype)
        by_track: dict[str, list[InstanceKey]] = {}
        for key, instance in plan.instances.items():
            if instance.node.kind == "track":
                by_track.setdefault(instance.node.key, []).append(key)
        result.skip_reads = {
            track
            for track, ins in by_track.items()
            if track not in tap_sources and all(k in result.hits for k in ins)
        }
        result.routes = [
            (n.key, n.name, [k for k in plan.instances if k[0] == n.key])
            for n in graph.nodes
            if any(k[0] == n.key for k in plan.instances)
        ]
        return result

    def _key(self, instance: Instance, base: dict[str, Any]) -> str:
        node = instance.node
        files = {}
        for clip in node.clips:
            files[str(clip.info.path)] = self.file_digest(clip.info.path)
        for spec in node.inserts:
            for value in spec.params.values():
                if isinstance(value, (str, Path)) and len(str(value)) < 4096:
                    with contextlib.suppress(OSError, ValueError):
                        if Path(value).is_file():
                            files[str(value)] = self.file_digest(Path(value))
        lanes = {k: v for k, v in node.automation.items() if k.startswith("insert.")}
        image = {
            **base,
            "node": [
                node.key, node.kind, node.channels, node.layout, node.invert_polarity,
                node.chain_latency_samples, node.chain_buffering_samples,
                node.insert_input_latency_samples, node.input_latency_samples,
            ],
            "inserts": node.inserts,
            "lanes": lanes,
            "clips": node.clips,
            "files": files,
            "dry": instance.dry,
        }  # fmt: skip
        blob = json.dumps(_canon(image), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def _ends_in_pedalboard(inserts: Iterable[Any]) -> bool:
    specs = list(inserts)
    return bool(specs) and not specs[-1].native


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@dataclasses.dataclass
class CachePlan:
    """One render's use of the cache: verified entries read, entries written, routes skipped."""

    cache: RenderCache
    hits: dict[InstanceKey, CachedSignal] = dataclasses.field(default_factory=dict)
    misses: dict[InstanceKey, EntryWriter] = dataclasses.field(default_factory=dict)
    skipped: dict[InstanceKey, str] = dataclasses.field(default_factory=dict)
    skip_reads: set[str] = dataclasses.field(default_factory=set)
    routes: list[tuple[str, str, list[InstanceKey]]] = dataclasses.field(default_factory=list)
    note: str | None = None

    def abandon(self) -> None:
        """Drop this process's half-written entries (the render ended early or failed)."""
        for writer in self.misses.values():
            if not writer.done:
                writer.abandon()

    def report(self) -> dict[str, Any]:
        """The manifest's ``cache`` entry."""
        reused = [name for _, name, ins in self.routes if ins and all(k in self.hits for k in ins)]
        rendered = [
            name for _, name, ins in self.routes if not (ins and all(k in self.hits for k in ins))
        ]
        entry: dict[str, Any] = {
            "dir": str(self.cache.root),
            "reused": reused,
            "rendered": rendered,
            "stored": [name for _, name, ins in self.routes if any(k in self.misses for k in ins)],
        }
        if self.note:
            entry["note"] = self.note
        return entry

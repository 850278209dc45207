"""Printed files kept in the render cache: a re-render copies a file it would write unchanged.

After one fader change most stems of a package are the bytes the last render wrote. Each file
gets a key: the content key of its tap's signal (:meth:`stemprint.render.engine.Renderer.tap_keys`,
which chains every input upstream of it) and everything the writer and the meters do with that
signal (format, bit depth, dither and its seed, layout, Broadcast WAV fields, lengths, the
meters' settings). A render with a cache keeps every file it wrote under its key, with a record
of what was measured of it; the next render whose key for a file matches copies the file into its
package instead of writing it, and the verification uses the recorded levels.

Invariants
----------
- Same bytes, same verdict: a file is reused only when its key matches and the SHA-256 of the
  copy equals the record's, taken of the bytes that were measured; the levels reused are of
  exactly those bytes. The null sums still read every file (``analysis.live``): a reused file
  is read back from the package.
- Never wrong, never fatal: a record that does not match, a copy that differs, a file the record
  lacks a measurement for (a ``--no-verify`` render stored it) is a miss, and the file is
  written. Storing is best effort: a full cache folder costs the next render time, not this one.
- Stored when the package is complete (nothing changes its audio files after that), hard-linked
  when the cache is on the package's filesystem (``render.cache.RenderCache.store_file``).
  Neither side is ever written in place by stemprint; a package file edited in place later
  fails the SHA-256 check of the next reuse (a miss).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stemprint.export.audio import WriteStats
from stemprint.export.manifest import sha256_file
from stemprint.render.cache_keys import digest

if TYPE_CHECKING:
    from stemprint.analysis.live import LiveMeasurement, Measurement
    from stemprint.analysis.meters import FileLevels
    from stemprint.export.audio import AudioWriter
    from stemprint.export.bwf import BextLoudness, BroadcastInfo
    from stemprint.render.cache import RenderCache

FILE_KEY_FORMAT = 4
"""Format of the file keys (part of every key). 2: the recorded integrated loudness and LRA
come from the meter's 100 ms energies (``analysis.meters``), no longer from libebur128's modes;
3: those energies are the sum of one libebur128 state per channel; 4: the true peak is summed
tap by tap (no matrix product: the last bit could differ)."""


@dataclasses.dataclass
class ReusedFile:
    """A file copied from the render cache into the package: what the manifest and the
    Broadcast WAV fields read of a writer, as recorded when it was written.

    Attributes
    ----------
    path
        The copy in the package.
    channels, sample_rate, container, subtype, dither_name
        As the writer had them (``channels`` as on disk: 1 for a file rewritten as mono).
    stats
        The writer's statistics of the file.
    sha256
        Of the copy (equal to the record's).
    measurement
        The recorded levels (``None``: none recorded; only a render without verification
        reuses such a file).
    bwf
        The Broadcast WAV info it was written with (its chunks are already final).
    """

    path: Path
    channels: int
    sample_rate: int
    container: str
    subtype: str
    dither_name: str
    stats: WriteStats
    sha256: str
    measurement: Measurement | None
    bwf: BroadcastInfo | None = None

    def finish_bwf(self, levels: FileLevels | BextLoudness | None = None) -> None:
        """Nothing: the copy's ``bext`` and ``iXML`` are those of the file measured."""

    def close_quietly(self) -> None:
        """Nothing to close (the copy is removed with the staging folder on a failure)."""


def file_key(tap_key: str, settings: dict[str, Any]) -> str:
    """The key of a printed file: its tap's signal key and ``settings``, everything the
    writer and the meters do with that signal."""
    return digest(["file", FILE_KEY_FORMAT, tap_key, settings])


def reuse_files(
    cache: RenderCache,
    keys: dict[str, str],
    targets: dict[str, Path],
    bwf: dict[str, BroadcastInfo | None],
    measured: bool,
) -> dict[str, ReusedFile]:
    """Copy every file the cache keeps under ``keys`` (by tap key) to ``targets`` and check it.

    Parameters
    ----------
    measured
        Only files with a recorded measurement (the render verifies while it writes).

    Returns
    -------
    dict
        The reused files by tap key; a miss leaves nothing at its target.
    """

    def one(tap_key: str) -> ReusedFile | None:
        return _reuse_one(cache, keys[tap_key], targets[tap_key], bwf.get(tap_key), measured)

    with ThreadPoolExecutor(2, thread_name_prefix="stemprint-reuse") as pool:
        found = dict(zip(keys, pool.map(one, keys), strict=True))
    return {k: v for k, v in found.items() if v is not None}


def _reuse_one(
    cache: RenderCache, key: str, target: Path, bwf: BroadcastInfo | None, measured: bool
) -> ReusedFile | None:
    entry = cache.find_file(key)
    if entry is None:
        return None
    path, record = entry
    try:
        measurement = _measurement(record.get("measurement"))
        if measured and measurement is None:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        sha = sha256_file(target)
        if sha != record["sha256"]:
            target.unlink()
            return None
        stats = record["stats"]
        return ReusedFile(
            target, int(record["channels"]), int(record["sample_rate"]),
            str(record["container"]), str(record["subtype"]), str(record["dither"]),
            WriteStats(float.fromhex(stats["peak"]), int(stats["overs"]),
                       int(stats["clipped"]), int(stats["frames"])),
            sha, measurement, bwf,
        )  # fmt: skip
    except (OSError, KeyError, TypeError, ValueError):
        with contextlib.suppress(OSError):
            target.unlink()
        return None


def store_files(
    cache: RenderCache,
    keys: dict[str, str],
    writers: dict[str, AudioWriter],
    digests: dict[str, str],
    live: LiveMeasurement | None,
) -> None:
    """Keep every written file that has a key (by tap key) with its record (best effort)."""
    for tap_key, key in keys.items():
        writer = writers.get(tap_key)
        if writer is None or tap_key not in digests:
            continue
        measurement = None
        if live is not None:
            measurement = _measurement_record(live.measurement(str(writer.path.resolve())))
        stats = writer.stats
        record = {
            "sha256": digests[tap_key],
            "channels": writer.channels,
            "sample_rate": writer.sample_rate,
            "container": writer.container,
            "subtype": writer.subtype,
            "dither": writer.dither_name,
            "stats": {"peak": float(stats.peak_linear).hex(), "overs": stats.overs,
                      "clipped": stats.clipped_samples, "frames": stats.frames},
            "measurement": measurement,
        }  # fmt: skip
        with contextlib.suppress(OSError):
            cache.store_file(key, writer.path, record)
    cache.evict()


# -- measurements as JSON (exact: floats round-trip through repr) ---------------------------


def _measurement_record(measurement: Measurement) -> dict[str, Any]:
    return {
        kind: {
            "levels": json.loads(json.dumps(dataclasses.asdict(levels), default=_plain)),
            "blocks": [float(x) for x in measurement.blocks[kind]],
        }
        for kind, levels in measurement.levels.items()
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot record a {type(value).__name__}")


def _measurement(record: Any) -> Measurement | None:
    """The :class:`~stemprint.analysis.live.Measurement` of a record, ``None`` if absent."""
    if not record:
        return None
    from stemprint.analysis.live import Measurement

    levels = {kind: _levels(part["levels"]) for kind, part in record.items()}
    blocks = {kind: np.asarray(part["blocks"], dtype=np.float64) for kind, part in record.items()}
    return Measurement(levels, blocks)


def _levels(data: dict[str, Any]) -> FileLevels:
    from stemprint.analysis.meters import ClippedRun, FileLevels

    runs = [ClippedRun(**run) for run in data.get("clipped_runs", [])]
    return FileLevels(**{**data, "clipped_runs": runs})


__all__ = ["ReusedFile", "file_key", "reuse_files", "store_files"]

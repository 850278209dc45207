"""Measure a package while it is written: the same meters and null sums as reading it back.

``stemprint render`` verifies its own package. Reading every file back after the render costs
decoding and a second pass over all the audio (about 40 % of a 32-track render on two cores).
The writer (:class:`stemprint.export.audio.AudioWriter`) hands every block it gives libsndfile,
as the exact values a reader decodes (the quantized integers over full scale), to a
:class:`LiveMeasurement`. It re-blocks them to :data:`~stemprint.analysis.audio.BLOCK_FRAMES`
and feeds the same :class:`~stemprint.analysis.meters.LevelMeter` and
:class:`~stemprint.analysis.nulltest.NullAccumulator` in the same order as
:func:`~stemprint.analysis.verify.verify_package` reading the files does, so the report is the
same (tested). The files themselves are still opened afterwards: headers, lengths and formats are
checked from disk, and the manifest's SHA-256 is of the bytes on disk.

Invariants
----------
* Sum relations: with ``sums`` (the manifest's ``sums`` list), exactly those relations are
  accumulated; without, the role-based ones (``stem`` files against each ``premaster`` and
  ``mix``), as :func:`~stemprint.analysis.discovery.role_relations` derives them when reading
  back. Parts are added in the listed order, ``Σ parts`` in float64 of the reference's channel
  count; a one-channel part is added to every channel (mono at unity), as when reading back.
* A file written with ``mono_if_identical`` (the writer rewrites it as mono when its two channels
  stayed identical) is also metered as channel 0 alone: :meth:`LiveMeasurement.file_levels`
  returns the levels for the channel count found on disk. Its part in a sum does not depend on
  it (identical channels add the same values as the mono file spread to both).
* Fold-down (``fold_down=True``): every 5.1/7.1 file is also metered as its stereo fold-down
  ``matrix(layout, "stereo") @ block`` (ITU-R BS.775-3), block for block as
  :func:`~stemprint.analysis.verify.verify_package` does reading back.
* Meter processes (``processes > 0``, :mod:`~stemprint.analysis.live_workers`): each meters a
  share of the files on the same re-blocked arrays, so the levels and gating blocks are those
  of metering on the thread, bit for bit (tested for 0 to 3 processes); the null sums stay on
  the thread. libebur128 holds the GIL, so metering in the render process slowed its threads.
* Reused files (``reused``: a file copied from the render cache, ``export.reuse``) are not
  metered: their levels and gating blocks are the ones recorded when those exact bytes were
  measured. Their samples still enter the null sums: the metering thread reads them back from
  the package, in step with the files being written (never more than the written files hold
  pending), so the sums are those of a package written in full.
* Every meter keeps its BS.1770-4 gating-block energies (:meth:`LiveMeasurement.gating_blocks`),
  all from sample 0: the dialogue-gated (approximation) loudness is computed from them exactly
  as when reading back. It keeps its 100 ms hop energies too
  (:meth:`LiveMeasurement.hop_energies`): the report draws the loudness curves from them
  instead of K-weighting the package again (a reused file has none; the report meters it).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stemprint.planar import PlanarReader
from stemprint.render.workers import deal_by_cost, fork_available

from .audio import BLOCK_FRAMES, probe
from .live_workers import MeterProcess
from .meters import FileLevels, LevelMeter, fold_down_matrix
from .nulltest import NullAccumulator

QUEUE_BLOCKS = 4
"""Blocks per file the metering thread may fall behind the writers."""


@dataclass(frozen=True)
class LiveFile:
    """One file being written: where, its layout and its role in the package.

    Attributes
    ----------
    path
        The file (absolute, or relative to the working directory).
    sample_rate
        Hz.
    channels
        Channels of the blocks the writer hands over.
    full_scale_positive
        Largest positive value of the encoding (clip detection).
    role
        Its manifest role (``mix``, ``premaster``, ``stem`` …).
    mono_if_identical
        The writer may rewrite the file as mono at the end (identical channels): also meter
        channel 0 alone, so the levels of the mono file are known without reading it back.
    """

    path: Path
    sample_rate: int
    channels: int
    full_scale_positive: float
    role: str
    mono_if_identical: bool = False


@dataclass(frozen=True)
class Measurement:
    """Everything measured of one file, by meter kind (``file``; ``mono``: channel 0 alone of a
    file that may be rewritten as mono; ``fold``: the stereo fold-down of a 5.1/7.1 file).

    Attributes
    ----------
    levels
        :class:`~stemprint.analysis.meters.FileLevels` by kind.
    blocks
        BS.1770-4 gating-block energies by kind, float64 ``(blocks,)``.
    """

    levels: dict[str, FileLevels]
    blocks: dict[str, np.ndarray]


@dataclass
class LiveRelation:
    """One sum relation accumulated live.

    Attributes
    ----------
    name
        The relation's name.
    parts
        Resolved paths of the parts, in summing order.
    reference
        Resolved path of the reference.
    channels
        Channels of the sum (the reference's, as written).
    accumulator
        The null statistics of reference − Σ parts.
    """

    name: str
    parts: tuple[str, ...]
    reference: str
    channels: int
    accumulator: NullAccumulator


class LiveMeasurement:
    """Levels of every file and the null sums of the package's sum relations.

    Parameters
    ----------
    files
        Every file of the package, in manifest order.
    block_frames
        Re-blocking size: the read-back path's block, so the numbers are the same.
    sums
        The manifest's ``sums`` relations, ``[{"name", "parts", "reference", "exact", "why"}]``
        with paths relative to ``root``; ``[]``: nothing sums. ``None``: the role-based
        relations (the ``stem`` files in order against each ``premaster``, then ``mix``).
    root
        The package directory the ``sums`` paths are relative to (``None``: the working
        directory, or absolute paths).
    fold_down
        Also meter the stereo fold-down of every 5.1/7.1 file.
    processes
        Meter the files in this many forked processes (:mod:`~stemprint.analysis.live_workers`;
        the levels are the same); 0: on the metering thread.
    reused
        Files of ``files`` already on disk, not written, with their recorded
        :meth:`measurement`: read back for the null sums only.

    Raises
    ------
    ValueError
        A relation names a file that is not in ``files``, or has no parts.
    """

    def __init__(
        self,
        files: list[LiveFile],
        block_frames: int = BLOCK_FRAMES,
        *,
        sums: list[dict[str, Any]] | None = None,
        root: Path | None = None,
        fold_down: bool = False,
        processes: int = 0,
        reused: Mapping[Path, Measurement] | None = None,
    ) -> None:
        self.files = {str(f.path.resolve()): f for f in files}
        self.reused = {str(Path(p).resolve()): m for p, m in (reused or {}).items()}
        self._readers: dict[str, PlanarReader] = {}
        self.block_frames = block_frames
        self.meters = {
            key: LevelMeter(f.sample_rate, f.channels, f.full_scale_positive)
            for key, f in self.files.items()
        }
        self.mono_meters = {
            key: LevelMeter(f.sample_rate, 1, f.full_scale_positive)
            for key, f in self.files.items()
            if f.mono_if_identical and f.channels == 2
        }
        self.fold_down = fold_down
        #: Fold-down matrix and stereo meter of each 5.1/7.1 file (``fold_down=True`` only).
        self.fold_meters = {
            key: (fold_matrix, LevelMeter(f.sample_rate, 2, 1.0))
            for key, f in self.files.items()
            if fold_down and (fold_matrix := fold_down_matrix(f.channels)) is not None
        }
        self.stems = [key for key, f in self.files.items() if f.role == "stem"]
        self.references = [key for key, f in self.files.items() if f.role == "premaster"] + [
            key for key, f in self.files.items() if f.role == "mix"
        ]
        self.relations = (
            self._role_relations() if sums is None else [self._relation(s, root) for s in sums]
        )
        #: Accumulator by reference path (the first relation with that reference).
        self.accumulators: dict[str, NullAccumulator] = {}
        for relation in self.relations:
            self.accumulators.setdefault(relation.reference, relation.accumulator)
        self._pending: dict[str, list[np.ndarray]] = {key: [] for key in self.files}
        self._buffered = dict.fromkeys(self.files, 0)
        self._finished = False
        self._results: dict[tuple[str, str], FileLevels] = {}
        self._remote_blocks: dict[tuple[str, str], np.ndarray] = {}
        self._remote_hops: dict[tuple[str, str], np.ndarray] = {}
        for key, measured in self.reused.items():
            if not set(self._kinds(key)) <= measured.levels.keys():
                raise ValueError(f"{key} was not measured as {self._kinds(key)}")
            for kind, levels in measured.levels.items():
                self._results[(kind, key)] = levels
                self._remote_blocks[(kind, key)] = measured.blocks[kind]
        # Forked before the metering thread starts: a meter process is a copy of this one.
        self._processes = self._start_processes(processes)
        remote = {key for process in self._processes for key in process.keys}
        self._local = [key for key in self.files if key not in remote and key not in self.reused]
        # Metering runs on its own thread, off the render's critical path (the writers run in
        # the render's sink units); the queue is bounded, so memory stays flat.
        self._queue: queue.Queue[tuple[str, np.ndarray] | None] = queue.Queue(
            QUEUE_BLOCKS * max(len(self.files), 1)
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._consume, name="stemprint-live", daemon=True)
        self._thread.start()

    def _start_processes(self, count: int) -> list[MeterProcess]:
        if count < 1 or not fork_available():
            return []
        costs = {
            key: f.channels * (1 + (key in self.mono_meters)) + 2 * (key in self.fold_meters)
            for key, f in self.files.items()
            if key not in self.reused
        }
        if not costs:
            return []
        processes: list[MeterProcess] = []
        try:
            for share in deal_by_cost(costs, min(count, len(costs))):
                processes.append(
                    MeterProcess(
                        share,
                        {key: f.channels for key, f in self.files.items()},
                        self.block_frames,
                        self.meter_files,
                        self.final_results,
                    )
                )
        except BaseException:
            for process in processes:
                process.close()
            raise
        return processes

    def _role_relations(self) -> list[LiveRelation]:
        if not self.stems:
            return []
        return [
            LiveRelation(
                "stems",
                tuple(self.stems),
                ref,
                self.files[ref].channels,
                NullAccumulator(self.block_frames),
            )
            for ref in self.references
        ]

    def _relation(self, raw: dict[str, Any], root: Path | None) -> LiveRelation:
        def key(rel: str) -> str:
            path = str(((root / rel) if root is not None else Path(rel)).resolve())
            if path not in self.files:
                raise ValueError(f"sum {raw.get('name')!r} names {rel}, which is not written")
            return path

        parts = tuple(key(p) for p in raw.get("parts") or [])
        if not parts:
            raise ValueError(f"sum {raw.get('name')!r} has no parts")
        reference = key(raw["reference"])
        return LiveRelation(
            str(raw.get("name", "")),
            parts,
            reference,
            self.files[reference].channels,
            NullAccumulator(self.block_frames),
        )

    def monitor(self, path: Path) -> _Monitor:
        """The callable the writer of ``path`` feeds with ``(channels, n)`` decoded blocks."""
        return _Monitor(self, str(Path(path).resolve()))

    def relation(self, parts: list[str], reference: str) -> LiveRelation | None:
        """The relation summing exactly ``parts`` (resolved paths, in order) to ``reference``."""
        for candidate in self.relations:
            if list(candidate.parts) == list(parts) and candidate.reference == reference:
                return candidate
        return None

    def _consume(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._add(*item)
                except BaseException as exc:  # noqa: BLE001 - raised by finish()
                    self._error = exc

    def _add(self, key: str, block: np.ndarray) -> None:
        self._pending[key].append(block)
        self._buffered[key] += block.shape[1]
        if self.reused:
            written = (n for k, n in self._buffered.items() if k not in self.reused)
            self._read_reused(max(written, default=0))
        while min(self._buffered.values()) >= self.block_frames:
            self._step(self.block_frames)

    def _read_reused(self, frames: int | None) -> None:
        """Read every reused file up to ``frames`` pending frames (``None``: to its end, a
        block of each at a time, summed as it goes)."""
        while True:
            read = False
            for key in self.reused:
                need = self.block_frames if frames is None else frames - self._buffered[key]
                if need > 0:
                    read = self._read_one(key, need) or read
            if frames is not None or not read:
                return
            while min(self._buffered.values()) >= self.block_frames:
                self._step(self.block_frames)

    def _read_one(self, key: str, frames: int) -> bool:
        """Append up to ``frames`` frames of one reused file; ``False`` at its end."""
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = PlanarReader(probe(Path(key)))
        block = reader.read(frames)
        if not block.shape[1]:
            return False
        want = self.files[key].channels
        if block.shape[0] != want:  # rewritten as mono: the writer had handed both channels
            block = np.repeat(block, want, axis=0)
        self._pending[key].append(block)
        self._buffered[key] += block.shape[1]
        return True

    def _take(self, key: str, frames: int) -> np.ndarray:
        """The next ``frames`` frames of one file's pending blocks, contiguous."""
        parts = self._pending[key]
        out = []
        need = frames
        while need:
            head = parts[0]
            if head.shape[1] <= need:
                out.append(head)
                parts.pop(0)
                need -= head.shape[1]
            else:
                out.append(head[:, :need])
                parts[0] = head[:, need:]
                need = 0
        self._buffered[key] -= frames
        return out[0] if len(out) == 1 else np.concatenate(out, axis=1)

    def _step(self, frames: int) -> None:
        # As verify._stream: meter each file's block, then Σ parts in order against each
        # reference (one sum per distinct parts list and channel count).
        blocks = {key: np.ascontiguousarray(self._take(key, frames)) for key in self.files}
        for process in self._processes:
            process.send(blocks, frames)
        self.meter_files(blocks, self._local)
        sums: dict[tuple[tuple[str, ...], int], np.ndarray] = {}
        for relation in self.relations:
            cache = (relation.parts, relation.channels)
            if cache not in sums:
                total = np.zeros((relation.channels, frames))
                for key in relation.parts:
                    total += blocks[key]  # a (1, n) part is added to every channel
                sums[cache] = total
            relation.accumulator.add(blocks[relation.reference], sums[cache])

    def meter_files(self, blocks: dict[str, np.ndarray], keys: list[str]) -> None:
        """Meter one step of the files ``keys`` (here or in a meter process)."""
        for key in keys:
            block = blocks[key]
            self.meters[key].process(block)
            if key in self.mono_meters:
                self.mono_meters[key].process(block[:1])
            if key in self.fold_meters:
                fold_matrix, meter = self.fold_meters[key]
                meter.process(fold_matrix @ block)

    def final_results(self, keys: list[str]) -> dict[str, Any]:
        """Levels and gating blocks of the files ``keys``, by ``(kind, path)``."""
        slots = [("file", key) for key in keys]
        slots += [("mono", key) for key in keys if key in self.mono_meters]
        slots += [("fold", key) for key in keys if key in self.fold_meters]
        return {
            "levels": {slot: self._result(*slot) for slot in slots},
            "blocks": {slot: self._meter(*slot).gating_block_energies for slot in slots},
            "hops": {slot: self._meter(*slot).hop_energies for slot in slots},
        }

    def measurement(self, key: str) -> Measurement:
        """What was measured of one file (resolved path), for :attr:`reused` in a later
        render of the same bytes."""
        self.finish()
        kinds = self._kinds(key)
        return Measurement(
            {kind: self._result(kind, key) for kind in kinds},
            {kind: self._blocks(kind, key) for kind in kinds},
        )

    def _kinds(self, key: str) -> list[str]:
        """The meters of one file: ``file``, and ``mono`` and ``fold`` where they apply."""
        kinds = ["file", *(["mono"] if key in self.mono_meters else [])]
        return kinds + (["fold"] if key in self.fold_meters else [])

    def close(self) -> None:
        """Stop the metering thread and processes (idempotent); call :meth:`finish` to use the
        results."""
        self._stop_thread()
        for process in self._processes:
            process.close()
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> None:
        """Every writer was closed: measure what is left (the files must be equally long)."""
        if self._finished:
            return
        self._stop_thread()
        try:
            if self._error is not None:
                raise self._error
            if self.reused:
                self._read_reused(None)
            left = set(self._buffered.values())
            if len(left) > 1:
                raise ValueError(f"files of one package differ in length: {sorted(left)}")
            frames = left.pop() if left else 0
            if frames:
                self._step(frames)
            for process in self._processes:
                results = process.finish()
                self._results.update(results["levels"])
                self._remote_blocks.update(results["blocks"])
                self._remote_hops.update(results["hops"])
        finally:
            self.close()
        self._finished = True

    def levels(self) -> dict[str, FileLevels]:
        """Levels by resolved path, with the channels the writers handed over."""
        self.finish()
        return {key: self._result("file", key) for key in self.meters}

    def file_levels(self, key: str, channels: int) -> FileLevels | None:
        """Levels of one file as it is on disk with ``channels`` channels, or ``None`` when
        they were not measured that way (read the file back instead)."""
        self.finish()
        kind = self._kind(key, channels)
        return self._result(kind, key) if kind is not None else None

    def fold_levels(self, key: str) -> FileLevels | None:
        """Levels of the stereo fold-down of one 5.1/7.1 file, or ``None`` (not measured)."""
        self.finish()
        return self._result("fold", key) if key in self.fold_meters else None

    def gating_blocks(self, key: str, channels: int, fold: bool = False) -> np.ndarray | None:
        """Gating-block energies of one file as on disk with ``channels`` channels (or of its
        fold-down), or ``None`` when not measured that way."""
        self.finish()
        kind = ("fold" if key in self.fold_meters else None) if fold else self._kind(key, channels)
        return self._blocks(kind, key) if kind is not None else None

    def hop_energies(self, key: str, channels: int) -> np.ndarray | None:
        """Weighted energy of every 100 ms hop of one file as on disk with ``channels``
        channels (:attr:`~.meters.LevelMeter.hop_energies`), or ``None``: not measured that
        way, or reused (a :class:`Measurement` keeps no hops)."""
        self.finish()
        kind = self._kind(key, channels)
        if kind is None or key in self.reused:
            return None
        if (kind, key) in self._remote_hops:
            return self._remote_hops[(kind, key)]
        return self._meter(kind, key).hop_energies

    def _blocks(self, kind: str, key: str) -> np.ndarray:
        if (kind, key) in self._remote_blocks:
            return self._remote_blocks[(kind, key)]
        return self._meter(kind, key).gating_block_energies

    def _kind(self, key: str, channels: int) -> str | None:
        """``file`` or ``mono``: which meter measured ``key`` as ``channels`` channels."""
        if key not in self.files:
            return None
        if channels == self.files[key].channels:
            return "file"
        return "mono" if channels == 1 and key in self.mono_meters else None

    def _meter(self, kind: str, key: str) -> LevelMeter:
        if kind == "fold":
            return self.fold_meters[key][1]
        return (self.mono_meters if kind == "mono" else self.meters)[key]

    def _result(self, kind: str, key: str) -> FileLevels:
        # result() flushes the true-peak filter: compute once per meter and keep it (a meter
        # process's results are already here).
        if (kind, key) not in self._results:
            self._results[(kind, key)] = self._meter(kind, key).result()
        return self._results[(kind, key)]


class _Monitor:
    """Feeds one file's decoded blocks into a :class:`LiveMeasurement`."""

    def __init__(self, live: LiveMeasurement, key: str) -> None:
        self.live = live
        self.key = key

    def __call__(self, block: np.ndarray) -> None:
        self.live._queue.put((self.key, block))

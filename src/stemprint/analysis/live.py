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
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import BLOCK_FRAMES
from .meters import FileLevels, LevelMeter
from .nulltest import NullAccumulator

QUEUE_BLOCKS = 4
"""Blocks per file the metering thread may fall behind the writers."""


@dataclass(frozen=True)
class LiveFile:
    """One file being written: where, its layout and its role in the package."""

    path: Path
    sample_rate: int
    channels: int
    full_scale_positive: float
    role: str


class LiveMeasurement:
    """Levels of every file and the null sums of the stems against the mix and pre-master.

    Parameters
    ----------
    files
        Every file of the package, in manifest order. The null test sums the ``stem`` files in
        that order against each ``premaster`` and ``mix`` file (the roles
        :func:`~stemprint.analysis.package.discover_package` reads from the manifest).
    block_frames
        Re-blocking size: the read-back path's block, so the numbers are the same.
    """

    def __init__(self, files: list[LiveFile], block_frames: int = BLOCK_FRAMES) -> None:
        self.files = {str(f.path.resolve()): f for f in files}
        self.block_frames = block_frames
        self.meters = {
            key: LevelMeter(f.sample_rate, f.channels, f.full_scale_positive)
            for key, f in self.files.items()
        }
        self.stems = [key for key, f in self.files.items() if f.role == "stem"]
        self.references = [key for key, f in self.files.items() if f.role == "premaster"] + [
            key for key, f in self.files.items() if f.role == "mix"
        ]
        self.accumulators = {key: NullAccumulator(block_frames) for key in self.references}
        self._pending: dict[str, list[np.ndarray]] = {key: [] for key in self.files}
        self._buffered = dict.fromkeys(self.files, 0)
        self._finished = False
        # Metering runs on its own thread, off the render's critical path (the writers run in
        # the render's sequential tap step); the queue is bounded, so memory stays flat.
        self._queue: queue.Queue[tuple[str, np.ndarray] | None] = queue.Queue(
            QUEUE_BLOCKS * max(len(self.files), 1)
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._consume, name="stemprint-live", daemon=True)
        self._thread.start()

    def monitor(self, path: Path) -> _Monitor:
        """The callable the writer of ``path`` feeds with ``(channels, n)`` decoded blocks."""
        return _Monitor(self, str(Path(path).resolve()))

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
        while min(self._buffered.values()) >= self.block_frames:
            self._step(self.block_frames)

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
        # As verify._stream: meter each file's block, then Σ stems in order against each
        # reference.
        blocks = {key: np.ascontiguousarray(self._take(key, frames)) for key in self.files}
        for key, block in blocks.items():
            self.meters[key].process(block)
        if self.accumulators and self.stems:
            first = blocks[self.references[0]]
            stem_sum = np.zeros((first.shape[0], frames))
            for key in self.stems:
                stem_sum += blocks[key]
            for key, accumulator in self.accumulators.items():
                accumulator.add(blocks[key], stem_sum)

    def close(self) -> None:
        """Stop the metering thread (idempotent); call :meth:`finish` to use the results."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> None:
        """Every writer was closed: measure what is left (the files must be equally long)."""
        if self._finished:
            return
        self.close()
        if self._error is not None:
            raise self._error
        left = set(self._buffered.values())
        if len(left) != 1:
            raise ValueError(f"files of one package differ in length: {sorted(left)}")
        (frames,) = left
        if frames:
            self._step(frames)
        self._finished = True

    def levels(self) -> dict[str, FileLevels]:
        """Levels by resolved path."""
        self.finish()
        return {key: meter.result() for key, meter in self.meters.items()}


class _Monitor:
    """Feeds one file's decoded blocks into a :class:`LiveMeasurement`."""

    def __init__(self, live: LiveMeasurement, key: str) -> None:
        self.live = live
        self.key = key

    def __call__(self, block: np.ndarray) -> None:
        self.live._queue.put((self.key, block))

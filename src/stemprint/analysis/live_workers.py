"""Meter processes for :class:`~stemprint.analysis.live.LiveMeasurement`: the levels of a share of
the files, measured beside the render instead of inside its process.

Why processes: libebur128 (``pyebur128``) holds the GIL while it K-weights a block, so a meter
thread in the render process stalls the render's own threads; in a re-render from the cache,
where the render itself is light, one meter thread metering every file in turn was the render's
critical path (32 tracks x 3 min, 7 files: 8.6 s with verification against 4.2 s without).

Invariants
----------
- A meter process is an ``os.fork`` of the render process taken when the measurement is created
  (before its metering thread starts and before any file is opened for writing): its
  :class:`~stemprint.analysis.meters.LevelMeter` objects are copies that nobody else feeds.
- It receives exactly the blocks the in-process path meters (the same re-blocked, contiguous
  float64 arrays, copied into shared memory), in the same order, and runs the same code on them
  (:meth:`LiveMeasurement.meter_files`): the levels are bit-identical to metering in one process
  (tested), whatever the number of processes.
- Protocol, per process, over one socket pair: ``("step", slot, frames)`` when a re-blocked step
  is in shared slot ``slot``; the process answers ``"free"`` once it has metered it (the slot
  may then be reused); ``("finish",)`` ends it with ``("ok", results)`` or ``("error", exc)``.
  The null sums stay in the render process: they need every file's block.
"""

from __future__ import annotations

import mmap
import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from stemprint.errors import RenderError
from stemprint.render.workers import fork_serving, kill_and_reap

SLOTS = 2
"""Steps a meter process may be behind (each a block of every file it meters)."""

Results = dict[str, Any]
"""What a meter process hands back: ``levels`` and ``blocks`` by ``(kind, path)``."""


class MeterProcess:
    """One forked process metering the files ``keys``.

    Parameters
    ----------
    keys
        Resolved paths of the files it meters.
    channels
        Channels of each file's blocks, by path.
    block_frames
        Largest step, in frames.
    meter
        Meters one step: ``meter(blocks, keys)`` with ``blocks`` by path (run in the process).
    results
        The results of ``keys`` once every step was metered (run in the process).
    """

    def __init__(
        self,
        keys: list[str],
        channels: dict[str, int],
        block_frames: int,
        meter: Callable[[dict[str, np.ndarray], list[str]], None],
        results: Callable[[list[str]], Results],
    ) -> None:
        self.keys = keys
        self.channels = {key: channels[key] for key in keys}
        self.block_frames = block_frames
        self._offsets: dict[str, int] = {}
        offset = 0
        for key in keys:
            self._offsets[key] = offset
            offset += self.channels[key] * block_frames * 8
        self.slot_bytes = max(offset, 8)
        self._memory = mmap.mmap(-1, self.slot_bytes * SLOTS)  # anonymous, shared over fork
        self._sent = 0
        self._freed = 0
        self._closed = False
        self.pid, self._parent = fork_serving(lambda conn: self._serve(conn, meter, results))

    def _views(self, slot: int, frames: int) -> dict[str, np.ndarray]:
        base = slot * self.slot_bytes
        return {
            key: np.frombuffer(
                self._memory, np.float64, channels * frames, base + self._offsets[key]
            ).reshape(channels, frames)
            for key, channels in self.channels.items()
        }

    # -- render process side -------------------------------------------------------------------

    def send(self, blocks: dict[str, np.ndarray], frames: int) -> None:
        """Hand over one step (``(channels, frames)`` blocks by path; copied)."""
        if self._sent - self._freed >= SLOTS:
            self._wait_free()
        slot = self._sent % SLOTS
        for key, view in self._views(slot, frames).items():
            np.copyto(view, blocks[key])
        self._send(("step", slot, frames))
        self._sent += 1

    def _wait_free(self) -> None:
        message = self._receive()
        if message != "free":
            self._raise(message)
        self._freed += 1

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._parent.send(message)
        except OSError:
            raise _died() from None

    def _receive(self) -> Any:
        try:
            return self._parent.recv()  # pickle: only ever sent by the process this one forked
        except (EOFError, OSError):
            raise _died() from None

    def finish(self) -> Results:
        """Every step was sent: the results of this process's files."""
        self._send(("finish",))
        while self._freed < self._sent:
            self._wait_free()
        message = self._receive()
        self.close()
        if not (isinstance(message, tuple) and message[0] == "ok"):
            self._raise(message)
        return dict(message[1])

    @staticmethod
    def _raise(message: Any) -> None:
        if isinstance(message, tuple) and message[0] == "error":
            raise message[1]
        raise RenderError(f"a meter process sent {message!r} (a protocol bug)")

    def close(self) -> None:
        """Stop the process (if still running) and reap it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._parent.close()
        kill_and_reap(self.pid)

    # -- meter process side --------------------------------------------------------------------

    def _serve(
        self,
        conn: Connection,
        meter: Callable[[dict[str, np.ndarray], list[str]], None],
        results: Callable[[list[str]], Results],
    ) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return  # the render process stopped (an error elsewhere)
            try:
                if message[0] == "finish":
                    conn.send(("ok", results(self.keys)))
                    return
                _, slot, frames = message
                meter(self._views(slot, frames), self.keys)
            except BaseException as exc:  # noqa: BLE001 - raised in the render process
                conn.send(("error", _picklable(exc)))
                return
            conn.send("free")


def _died() -> RenderError:
    return RenderError(
        "a meter process died while measuring the package",
        fix="run again; with --threads 1 the files are measured in the render process",
    )


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - any unpicklable exception becomes a plain one
        return RenderError(f"a meter process failed: {type(exc).__name__}: {exc}")
    return exc

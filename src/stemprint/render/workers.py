"""Track routes rendered in worker processes, for true parallelism beside the GIL.

Threads alone scale poorly here: every block of every track costs a few hundred microseconds
of Python (reading, calling plug-ins, fader and pan) that holds the GIL, so two threads reached
only ~1.4x one. Tracks are independent of each other until they are summed, so each worker
process (``os.fork`` of the built renderer, after the plug-ins were probed and before any
thread starts) renders a share of the tracks, clip reading included, and hands every block's
signals to the render process through shared memory. Buses, the master, the taps and the files
stay in the render process, which sums in the same order as ever: the output is bit-identical
to a single-threaded render (tested).

Protocol, per worker, over one socket pair: the worker sends ``("block", k)`` when block ``k``
is in its slot ``k % slots``; the render process sends ``b"free"`` when it is done with a block,
and the worker waits for that token before it reuses a slot. A failure in the worker is sent as
``("error", details)`` and raised in the render process as the same stemprint error.
"""

from __future__ import annotations

import mmap
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import numpy as np

from stemprint import errors
from stemprint.errors import RenderError

if TYPE_CHECKING:
    from stemprint.render.plan import Instance, InstanceKey
    from stemprint.render.runner import BlockRunner
    from stemprint.render.sources import ClipReader
    from stemprint.render.worker_parts import WorkerPart

SignalKey = tuple[str, "InstanceKey | tuple[InstanceKey, int]", int]
"""(``source`` | ``input`` | ``pre`` | ``post``, instance, channels), or (``part``,
(instance, part index), channels): one shipped signal of a block."""


def fork_available() -> bool:
    """Worker processes need ``os.fork`` (Linux; macOS forbids forking its audio frameworks)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def fork_serving(serve: Callable[[Connection], None]) -> tuple[int, Connection]:
    """Fork a helper process that runs ``serve`` on its end of a socket pair, then exits (it
    never returns into the caller's code; Ctrl-C is the parent's to handle). Returns the
    helper's pid and this process's end."""
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the helper
        parent.close()
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            serve(Connection(child.detach()))
        except BaseException:  # noqa: BLE001 - the helper must never return into the caller
            code = 1
        finally:
            os._exit(code)
    child.close()
    return pid, Connection(parent.detach())


def kill_and_reap(pid: int) -> None:
    """Stop a forked helper (if it still runs) and collect its exit status."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def deal_by_cost(costs: dict[str, int], count: int) -> list[list[str]]:
    """Keys dealt, costliest first, to the least loaded of ``count`` shares; each share keeps
    the order of ``costs``; empty shares are dropped."""
    shares: list[list[str]] = [[] for _ in range(max(count, 1))]
    loads = [0] * len(shares)
    for key in sorted(costs, key=lambda k: -costs[k]):
        least = loads.index(min(loads))
        shares[least].append(key)
        loads[least] += costs[key]
    order = {key: i for i, key in enumerate(costs)}
    return [sorted(share, key=order.__getitem__) for share in shares if share]


def split_in_order(costs: dict[str, int], count: int) -> list[list[str]]:
    """Keys cut into at most ``count`` runs of consecutive keys (in the order of ``costs``) of
    about equal cost: each run ends where the running total first reaches its share of the
    whole. Consecutive tracks in one worker let it sum their partial sums itself
    (``render.worker_parts``); a run is never empty."""
    keys = list(costs)
    count = max(min(count, len(keys)), 1)
    total = sum(costs.values()) or 1
    shares: list[list[str]] = [[]]
    running = 0
    for i, key in enumerate(keys):
        shares[-1].append(key)
        running += costs[key]
        left = len(keys) - i - 1
        runs_left = count - len(shares)
        full = running * count >= total * len(shares)
        if runs_left and left and (full or left == runs_left):
            shares.append([])
    return [share for share in shares if share]


class TrackWorker:
    """One worker process: a share of the tracks, rendered block after block.

    Parameters
    ----------
    runner
        The render's block runner (forked: the worker uses its own copy of the plug-in state).
    tracks
        Track node keys this worker renders, with every instance of each.
    instances
        The instances of those tracks, in signal-path order.
    shipped
        The signals the render process reads, in slot order.
    slots
        Blocks the worker may be ahead of the render process's releases.
    parts
        The partial sums of buses' and the master's inputs it sums itself
        (``render.worker_parts``); each is shipped as a ``part`` signal.
    """

    def __init__(
        self,
        runner: BlockRunner,
        tracks: list[str],
        instances: list[Instance],
        shipped: list[SignalKey],
        slots: int,
        parts: Sequence[WorkerPart] = (),
    ) -> None:
        self.runner = runner
        self.tracks = tracks
        self.instances = instances
        self.parts = list(parts)
        self.shipped = [*shipped, *(("part", p.part_key, p.channels) for p in self.parts)]
        self.slots = slots
        n = runner.block_size
        self._offsets: list[int] = []
        offset = 0
        for _, _, channels in self.shipped:
            self._offsets.append(offset)
            offset += channels * n * 8
        self.slot_bytes = max(offset, 8)
        self._memory = mmap.mmap(-1, self.slot_bytes * slots)  # anonymous, shared over fork
        self.pid = 0
        self._conn: Connection | None = None
        self._closed = False

    def views(self, block: int) -> list[np.ndarray]:
        """The shipped signals of ``block``, as views into the shared slot (valid until freed)."""
        base = (block % self.slots) * self.slot_bytes
        n = self.runner.block_size
        return [
            np.frombuffer(self._memory, np.float64, channels * n, base + offset).reshape(
                channels, n
            )
            for (_, _, channels), offset in zip(self.shipped, self._offsets, strict=True)
        ]

    # -- render process side -------------------------------------------------------------------

    def start(
        self,
        blocks: int,
        readers: dict[str, list[ClipReader]],
    ) -> None:
        """Fork the worker; it renders ``blocks`` blocks, reading its
        tracks through its own copies of ``readers`` (not yet opened: each process opens the
        files it reads)."""
        self.pid, self._conn = fork_serving(lambda conn: self._serve(conn, blocks, readers))

    def receive(self, block: int) -> list[np.ndarray]:
        """Wait for ``block`` (releases the GIL while waiting); its signals as views."""
        if self._conn is None:
            raise RenderError("a render worker was asked for a block before it was started")
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            raise RenderError(
                "a render worker process died",
                fix="run again with --threads 1 to see the error in one process",
            ) from None
        if message[0] == "error":
            raise _rebuild_error(message[1])
        if message != ("block", block):
            raise RenderError(
                f"a render worker sent {message!r} where block {block} was due (a protocol bug)"
            )
        return self.views(block)

    def free(self) -> None:
        """The render process is done with the oldest block it received."""
        if self._conn is not None and not self._closed:
            try:
                self._conn.send_bytes(b"free")
            except OSError:
                pass  # the worker already ended (it was ahead and finished)

    def close(self) -> None:
        """Stop the worker (if still running) and reap it."""
        if self._closed:
            return
        self._closed = True
        if self._conn is not None:
            self._conn.close()
        if self.pid:
            kill_and_reap(self.pid)
        # The shared memory is not closed here: views of it may still be alive (an exception's
        # frames); it is unmapped when the last one goes.

    # -- worker side ---------------------------------------------------------------------------

    def _serve(
        self,
        conn: Connection,
        blocks: int,
        all_readers: dict[str, list[ClipReader]],
    ) -> None:
        runner = self.runner
        readers = {key: all_readers[key] for key in self.tracks}
        try:
            for block in range(blocks):
                if block >= self.slots:
                    conn.recv_bytes()  # a slot was freed
                views = self.views(block)
                into = self._slot_buffers(views)
                for key in self.tracks:
                    runner.read(key, readers[key], block)
                for instance in self.instances:
                    runner.run_instance(instance, block)
                self._sum_parts(block, into)
                state = runner.release(block)
                if state is None:
                    raise RenderError(f"block {block} rendered nothing in a render worker")
                for (kind, signal_key, _), view in zip(self.shipped, views, strict=True):
                    signal = state.signals(kind)[signal_key]
                    if signal is not view:  # not computed in place (fader_pan into the slot)
                        view[...] = signal
                conn.send(("block", block))
        except (EOFError, ConnectionError):
            return  # the render process stopped early (an error, or until-silent)
        except BaseException as exc:  # noqa: BLE001 - shipped to the render process
            try:
                conn.send(("error", _error_details(exc)))
            except OSError:
                pass
        finally:
            for track_readers in readers.values():
                for reader in track_readers:
                    reader.close()

    def _slot_buffers(self, views: list[np.ndarray]) -> dict[tuple[str, Any], np.ndarray]:
        """The block's shipped signals by ``(kind, key)``; the runner computes each stereo
        ``post`` straight into its view (``BlockRunner.post_buffers``)."""
        into = {(kind, key): v for (kind, key, _), v in zip(self.shipped, views, strict=True)}
        self.runner.post_buffers = {
            key: view  # type: ignore[misc]  # a post signal's key is an InstanceKey
            for (kind, key), view in into.items()
            if kind == "post" and len(view) == 2
        }
        return into

    def _sum_parts(self, block: int, into: dict[tuple[str, Any], np.ndarray]) -> None:
        """Sum this worker's partial sums of ``block`` straight into their shipped slots."""
        runner = self.runner
        state = runner.state(block)
        for part in self.parts:
            inputs = runner.plan.instances[part.key].inputs[part.start : part.end]
            view = into[("part", part.part_key)]
            state.part[part.part_key] = runner.edges_sum(
                part.channels, inputs, state, block, out=view
            )


def _error_details(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, errors.StemprintError):
        return {
            "type": type(exc).__name__,
            "message": exc.message,
            "file": exc.file,
            "field": exc.field,
            "fix": exc.fix,
            "line": exc.line,
        }
    return {
        "type": "RenderError",
        "message": f"render worker failed: {type(exc).__name__}: {exc}",
        "file": None,
        "field": None,
        "fix": "run again with --threads 1 to see the error in one process",
        "line": None,
    }


def _rebuild_error(details: dict[str, Any]) -> errors.StemprintError:
    cls = getattr(errors, details.pop("type"), RenderError)
    if not (isinstance(cls, type) and issubclass(cls, errors.StemprintError)):
        cls = RenderError
    message = details.pop("message")
    return cls(message, **details)

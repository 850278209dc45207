"""Where a batch's tasks run: this process, a local Dask cluster, or a Dask scheduler.

Rules
-----
- Local cluster: ``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)``, one
  single-threaded worker process per core by default, listening on ``127.0.0.1`` only (the
  scheduler's HTTP API too, on a free port), without a dashboard; its workers' nannies restart
  a worker that dies.
- An existing scheduler is reached by its address (``tcp://host:8786``); its workers must have
  stemprint installed and see the sessions, their audio and ``ROOT`` at the same paths.
- Retry policy: a task whose worker is lost while it runs is rescheduled by the scheduler, up
  to :data:`WORKER_LOSSES_ALLOWED` times (``distributed.scheduler.allowed-failures``; set for
  the local cluster, the scheduler's own setting otherwise); an exception that escapes a task
  (not a stemprint error: those are records) is retried :data:`TASK_RETRIES` times (Dask's
  ``retries=``). A task that still fails is recorded as an internal error (exit 3) and never
  stops the other tasks.
- Without ``distributed`` installed, the tasks run one after the other in this process.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from stemprint.batch.tasks import TaskRecord, TaskSpec, record_for, run_task
from stemprint.errors import InputError

WORKER_LOSSES_ALLOWED = 3
"""Times a task may lose its worker before it is recorded as failed."""

TASK_RETRIES = 2
"""Dask ``retries=`` for an exception that escapes a task."""

LOOPBACK = "127.0.0.1"
"""The only address a local cluster listens on."""

CONNECT_TIMEOUT_SECONDS = 30
"""How long to wait for a scheduler given by address."""

SERIAL_NOTE = (
    "dask is not installed: rendering the sessions one after the other in this process "
    "(pip install 'stemprint[batch]' renders them in parallel)"
)

OnRecord = Callable[[TaskRecord], None]


def dask_available() -> bool:
    """True when Dask's ``distributed`` can be imported."""
    return importlib.util.find_spec("distributed") is not None


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A ``distributed.Client``: of the scheduler at ``scheduler``, or of a new local cluster
    of ``workers`` processes (closed on exit)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_SECONDS}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                field="--scheduler",
                fix="check the address (tcp://HOST:PORT) and that the scheduler is running",
            ) from None
        with client:
            _wait_for_workers(client, scheduler)
            yield client
        return
    with dask.config.set({"distributed.scheduler.allowed-failures": WORKER_LOSSES_ALLOWED}):
        cluster = LocalCluster(
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            host=LOOPBACK,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": f"{LOOPBACK}:0"},  # its HTTP API: loopback
            silence_logs=logging.ERROR,
        )
    with cluster, Client(cluster) as client:
        yield client


def _wait_for_workers(client: Any, scheduler: str) -> None:
    if client.nthreads():
        return
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_SECONDS)
    except TimeoutError:
        raise InputError(
            f"the Dask scheduler at {scheduler} has no workers",
            field="--scheduler",
            fix="start workers for it (dask worker ADDRESS), then run the batch again",
        ) from None


def run_serial(specs: Sequence[TaskSpec], on_record: OnRecord) -> None:
    """Run every task here, one after the other."""
    for spec in specs:
        try:
            record = run_task(spec)
        except Exception as exc:  # noqa: BLE001 - one task's bug never stops the batch
            record = record_for(spec, 3, _internal(exc))
        on_record(record)


def run_on_dask(client: Any, specs: Sequence[TaskSpec], on_record: OnRecord, tag: str) -> None:
    """Submit every task to ``client``'s cluster; records arrive as tasks finish."""
    from distributed import as_completed

    by_key = {}
    futures = []
    for spec in specs:
        future = client.submit(
            run_task, spec, key=f"stemprint-{tag}-{spec.index}", pure=False, retries=TASK_RETRIES
        )
        by_key[future.key] = spec
        futures.append(future)
    try:
        for future in as_completed(futures):
            spec = by_key[future.key]
            if future.status == "finished":
                record = future.result()
            else:
                record = record_for(spec, 3, _lost(future.exception()))
            future.release()  # done: a worker lost later must not render it again
            on_record(record)
    except BaseException:
        client.cancel(futures)
        raise


def _lost(exc: BaseException | None) -> str:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return (
            f"the worker process rendering it died {WORKER_LOSSES_ALLOWED + 1} times (a crash "
            "in a plug-in, or the worker's memory limit)"
        )
    return _internal(exc) if exc is not None else "the task was cancelled"


def _internal(exc: BaseException) -> str:
    trace = "".join(traceback.format_exception(exc)).rstrip()
    return f"internal error (a bug in stemprint; please report it with this trace):\n{trace}"


__all__ = [
    "SERIAL_NOTE",
    "TASK_RETRIES",
    "WORKER_LOSSES_ALLOWED",
    "dask_available",
    "dask_client",
    "default_workers",
    "run_on_dask",
    "run_serial",
]

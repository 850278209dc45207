"""Batch rendering: many sessions (and their regions) into one folder, on one machine or a
Dask cluster, with a ``batch.json`` summary.

``render_many(sessions, root)`` is ``stemprint batch SESSION... -o ROOT``.

Invariants
----------
- One task per session, or per region of it with ``all_regions`` (a session without regions is
  then one task). A task carries paths and plain options only (``batch.tasks``); the session is
  opened, or the DAW project imported, inside it.
- Tasks run on a local cluster of single-threaded worker processes (default: one per core), on
  an existing Dask scheduler by address, or, without Dask, one after the other in this process
  (``batch.cluster``: where, and the retry policy for a lost worker).
- Each package is rendered, verified as ``stemprint render`` verifies it, and published by one
  rename to ``ROOT/<name>`` (``batch.names``; a region's to ``ROOT/<name>/<region>``, the layout
  of ``render --all-regions``). Its files are byte for byte those of ``stemprint render``.
- Nothing of a failed or killed attempt is left under ``ROOT``: attempts write into the batch's
  hidden staging folder, which is removed when the batch ends.
- One bad session fails its own task, never the others. An existing package folder is refused
  before anything runs, unless ``force`` (which replaces stemprint packages only).
- ``ROOT/batch.json`` lists every task, in the order given: ``session``, ``region``,
  ``package`` (relative to ``ROOT``; ``null`` when none was written), ``status`` (``ok`` /
  ``failed``), ``exit_code`` (0 ok, 1 verification failed, 2 bad input, 3 internal error, as
  the command line's), ``seconds``, ``verdict`` (``pass`` / ``fail`` / ``null``), ``message``,
  ``warnings``, ``audio_seconds``, ``files`` (``path`` and ``sha256`` of every file of the
  package), ``attempt`` and ``worker``. The batch's ``exit_code`` is the largest of its tasks'
  (0 all ok; 1 a verification failed; 2 an input was bad; 3 an internal error).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stemprint._version import __version__
from stemprint.batch.cluster import SERIAL_NOTE, dask_available, dask_client
from stemprint.batch.names import SUMMARY_NAME, package_names, region_folder
from stemprint.batch.tasks import TaskRecord, TaskSpec, open_session, record_for
from stemprint.errors import InputError, SessionError, StemprintError
from stemprint.export.package import RenderOptions

STAGING_PREFIX = ".stemprint-batch-"
"""Hidden folder under ``ROOT`` that the batch's attempts write into (removed at the end)."""

_PER_TASK_OPTIONS = ("region", "threads", "force", "import_report")
"""``RenderOptions`` fields each task sets itself."""


@dataclass(frozen=True)
class BatchProgress:
    """Where the batch is, after a task finished (``record``) or at the start (``None``)."""

    done: int
    total: int
    audio_seconds: float
    record: TaskRecord | None = None


@dataclass
class BatchResult:
    """What a batch did.

    Attributes
    ----------
    root
        The folder holding the packages and ``batch.json``.
    tasks
        Every task's record, in the order of the tasks (``batch.json``'s ``tasks``).
    exit_code
        The largest exit code of the tasks (0 when every task is ok).
    runner
        ``local`` (a local cluster), ``scheduler`` (an existing one) or ``serial``.
    workers
        Worker processes of the local cluster, or of the scheduler when it started.
    notes
        What the command line says before the summary (rendering serially without Dask…).
    """

    root: Path
    tasks: list[TaskRecord]
    exit_code: int
    runner: str
    workers: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def summary_path(self) -> Path:
        """``ROOT/batch.json``."""
        return self.root / SUMMARY_NAME


def render_many(
    sessions: Sequence[str | Path],
    root: str | Path,
    options: RenderOptions | None = None,
    *,
    all_regions: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    serial: bool = False,
    force: bool = False,
    media_root: str | Path | None = None,
    plugin_map: str | Path | None = None,
    strict: bool = False,
    progress: Callable[[BatchProgress], None] | None = None,
) -> BatchResult:
    """Render every session into its package under ``root`` and write ``root/batch.json``.

    Parameters
    ----------
    sessions
        Session files, or DAW projects (``.dawproject``, ``.rpp``).
    root
        The folder for the packages and the summary (created if needed).
    options
        How to render (``RenderOptions``; its ``threads`` and ``force`` are the batch's).
    all_regions
        One task per region of each session.
    scheduler
        Address of an existing Dask scheduler (default: a new local cluster).
    workers
        Worker processes of the local cluster (default: one per core).
    serial
        Run the tasks one after the other in this process (also without Dask installed).
    force
        Replace existing packages (stemprint packages only) and ``batch.json``.
    media_root, plugin_map, strict
        DAW project import options, as ``stemprint import`` takes them.
    progress
        Called at the start and after every task with a :class:`BatchProgress`.

    Returns
    -------
    BatchResult
        The records, the exit code, how the tasks ran.

    Raises
    ------
    InputError
        No session, a bad ``root`` or worker count, an existing package or summary without
        ``force``, an unreachable scheduler, ``scheduler`` without Dask. A bad session is not
        raised: it is its task's record.
    """
    started = time.perf_counter()
    if not sessions:
        raise InputError("no session given", fix="name one or more session files")
    runner, notes = _runner(scheduler, workers, serial)
    root_dir = _check_root(Path(root), force)
    options = options or RenderOptions()
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = root_dir / f"{STAGING_PREFIX}{tag}"
    plan = _Plan(root_dir, staging, options, runner != "serial", media_root, plugin_map, strict)
    specs, planned = plan.tasks([Path(s) for s in sessions], all_regions)
    _check_destinations(specs, root_dir, force)
    records: dict[int, TaskRecord] = {}
    tracker = _Tracker(records, len(specs) + len(planned), progress)
    tracker.start(planned)
    count = None
    staging.mkdir()
    try:
        if specs:
            count = _run(specs, runner, scheduler, workers, tracker.add, tag)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ordered = [records[i] for i in sorted(records)]
    exit_code = max((r["exit_code"] for r in ordered), default=0)
    result = BatchResult(root_dir, ordered, exit_code, runner, count, notes)
    _write_summary(result, scheduler, time.perf_counter() - started)
    return result


def _check_root(root: Path, force: bool) -> Path:
    if root.exists() and not root.is_dir():
        raise InputError(
            f"output path exists and is not a folder: {root}",
            field="-o/--output",
            fix="choose a folder for the batch's packages",
        )
    summary = root / SUMMARY_NAME
    if summary.exists() and not force:
        raise InputError(
            f"{root} already holds a batch ({SUMMARY_NAME})",
            field="-o/--output",
            fix="choose a new folder, or pass --force to replace its packages",
        )
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def _runner(scheduler: str | None, workers: int | None, serial: bool) -> tuple[str, list[str]]:
    """``(runner, notes)``: where the tasks will run."""
    if workers is not None and workers < 1:
        raise InputError(
            f"--workers must be at least 1 (got {workers})",
            field="--workers",
            fix="give a worker count, or leave it out for one per core",
        )
    if scheduler is not None and serial:
        raise InputError(
            "a scheduler and a serial batch exclude each other",
            field="--scheduler",
            fix="leave out one of them",
        )
    if serial:
        return "serial", []
    if not dask_available():
        if scheduler is not None:
            raise InputError(
                "--scheduler needs Dask, which is not installed",
                field="--scheduler",
                fix="pip install 'stemprint[batch]'",
            )
        return "serial", [SERIAL_NOTE]
    return ("scheduler" if scheduler is not None else "local"), []


@dataclass(frozen=True)
class _Plan:
    """Turns sessions into task specs."""

    root: Path
    staging: Path
    options: RenderOptions
    on_cluster: bool
    media_root: str | Path | None
    plugin_map: str | Path | None
    strict: bool

    def tasks(
        self, sessions: list[Path], all_regions: bool
    ) -> tuple[list[TaskSpec], list[TaskRecord]]:
        """Task specs, and the records of sessions that failed before any task (their regions
        could not be listed)."""
        names = package_names(sessions)
        specs: list[TaskSpec] = []
        failed: list[TaskRecord] = []
        for session, name in zip(sessions, names, strict=True):
            base = self._spec(len(specs) + len(failed), session, name, self.options.region)
            if not all_regions:
                specs.append(base)
                continue
            try:
                regions = self._regions(base)
            except StemprintError as exc:
                failed.append(record_for(base, exc.exit_code, exc.format()))
                continue
            clash = _same_folder(regions)
            if clash:
                error = SessionError(
                    f"regions {clash[0]!r} and {clash[1]!r} would be written to the same folder",
                    file=str(session),
                    field="regions",
                    fix="give every region its own name",
                )
                failed.append(record_for(base, error.exit_code, error.format()))
                continue
            wanted: list[str | None] = [*regions] if regions else [None]
            for region in wanted:
                index = len(specs) + len(failed)
                package = f"{name}/{region_folder(region)}" if region is not None else name
                specs.append(dataclasses.replace(base, index=index, region=region, package=package))
        return specs, failed

    def _spec(self, index: int, session: Path, name: str, region: str | None) -> TaskSpec:
        plain = {
            k: v for k, v in dataclasses.asdict(self.options).items() if k not in _PER_TASK_OPTIONS
        }
        return TaskSpec(
            index=index,
            session=str(session),
            session_path=str(session.absolute()),
            package=name,
            root=str(self.root),
            staging=str(self.staging),
            region=region,
            options=tuple(sorted(plain.items())),
            threads=1 if self.on_cluster else self.options.threads,
            tune_allocator=self.on_cluster,
            media_root=str(Path(self.media_root).absolute()) if self.media_root else None,
            plugin_map=str(Path(self.plugin_map).absolute()) if self.plugin_map else None,
            strict=self.strict,
        )

    def _regions(self, spec: TaskSpec) -> list[str]:
        with open_session(spec) as (loaded, _report):
            return [region.name for region in loaded.session.regions]


def _same_folder(regions: Sequence[str]) -> tuple[str, str] | None:
    """Two regions whose folders would be the same (compared case-insensitively)."""
    seen: dict[str, str] = {}
    for region in regions:
        key = region_folder(region).casefold()
        if key in seen:
            return seen[key], region
        seen[key] = region
    return None


def _check_destinations(specs: Sequence[TaskSpec], root: Path, force: bool) -> None:
    """Refuse, before anything runs, a package folder that exists (unless ``force``, and then
    only a stemprint package)."""
    from stemprint.export.publish import is_package

    for folder in sorted({root / spec.package.split("/")[0] for spec in specs}):
        if not folder.exists():
            continue
        if not force:
            raise InputError(
                f"package folder already exists: {folder}",
                field="-o/--output",
                fix="choose a new folder for the batch, or pass --force to replace its packages",
            )
        if not folder.is_dir() or (any(folder.iterdir()) and not is_package(folder)):
            raise InputError(
                f"{folder} is not a stemprint package: --force replaces only packages",
                field="-o/--output",
                fix="choose a new folder for the batch; stemprint never deletes other folders",
            )


@dataclass
class _Tracker:
    """Collects records and reports progress."""

    records: dict[int, TaskRecord]
    total: int
    progress: Callable[[BatchProgress], None] | None
    audio_seconds: float = 0.0

    def start(self, planned: Sequence[TaskRecord]) -> None:
        """Report the start, then the tasks that failed before running."""
        self._report(None)
        for record in planned:
            self.add(record)

    def add(self, record: TaskRecord) -> None:
        self.records[record["index"]] = record
        self.audio_seconds += record["audio_seconds"]
        self._report(record)

    def _report(self, record: TaskRecord | None) -> None:
        if self.progress is not None:
            done = len(self.records)
            self.progress(BatchProgress(done, self.total, self.audio_seconds, record))


def _run(
    specs: Sequence[TaskSpec],
    runner: str,
    scheduler: str | None,
    workers: int | None,
    on_record: Callable[[TaskRecord], None],
    tag: str,
) -> int | None:
    """Run the tasks; returns the worker count (``None`` serially)."""
    from stemprint.batch.cluster import run_on_dask, run_serial

    if runner == "serial":
        run_serial(specs, on_record)
        return None
    with dask_client(scheduler, workers) as client:
        count = len(client.nthreads())
        run_on_dask(client, specs, on_record, tag)
    return count


def _write_summary(result: BatchResult, scheduler: str | None, seconds: float) -> None:
    """``ROOT/batch.json``, written whole and renamed into place."""
    counts = {"ok": 0, "failed": 0}
    for record in result.tasks:
        counts[record["status"]] += 1
    data: dict[str, Any] = {
        "stemprint_batch": 1,
        "generator": f"stemprint {__version__}",
        "root": str(result.root),
        "runner": result.runner,
        "scheduler": scheduler,
        "workers": result.workers,
        "exit_code": result.exit_code,
        "seconds": round(seconds, 3),
        "audio_seconds": sum(r["audio_seconds"] for r in result.tasks),
        "counts": counts,
        "notes": result.notes,
        "tasks": result.tasks,
    }
    path = result.summary_path
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["BatchProgress", "BatchResult", "render_many"]

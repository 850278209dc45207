"""One batch task: render one session (or one region of it) into its package under ``ROOT``.

Invariants
----------
- A task is plain data (:class:`TaskSpec`: paths, names, the render options as plain values)
  and returns plain data (a task record, JSON-ready): nothing of pedalboard crosses a process,
  so a task runs the same in this process, in a local worker process or on a remote worker.
- The session is opened inside the task (a session file, or a DAW project imported there); the
  render runs with the threads the spec says (one on a cluster: the cluster's processes are
  the parallelism).
- Each attempt renders into its own hidden folder in the batch's staging folder, publishes the
  finished package by one rename to its place under ``ROOT`` (replacing what an earlier attempt
  of the same task may have published) and removes its folder: an attempt killed half-way
  leaves its files only in the staging folder, which the batch removes.
- Bad input, a failed verification and every other stemprint error end the task with a record
  (status ``failed`` and the command line's exit code) and are never retried: they would fail
  the same way again. Only what escapes (a lost worker, an unexpected exception) is left to the
  scheduler to retry.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemprint.errors import StemprintError

TaskRecord = dict[str, Any]
"""A task's entry in ``batch.json`` (see ``stemprint.batch`` for its fields)."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything a task needs, as plain values.

    Attributes
    ----------
    index
        The task's position in the batch (its record's place in ``batch.json``).
    session
        The session or project as the user named it (for the record).
    session_path
        Its absolute path.
    package
        The package folder relative to ``ROOT`` (``song1``, ``song1/Verse``).
    root
        ``ROOT``, absolute.
    staging
        The batch's hidden staging folder, absolute.
    region
        The region to render, or ``None`` for the whole session.
    options
        ``RenderOptions`` fields as plain values (no ``region``, ``threads``, ``force``).
    threads
        Render threads inside the task (1 on a cluster).
    tune_allocator
        Tune the process's allocator for rendering (worker processes of our own).
    media_root, plugin_map, strict
        DAW project import options (``stemprint import``).
    """

    index: int
    session: str
    session_path: str
    package: str
    root: str
    staging: str
    region: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    threads: int | None = 1
    tune_allocator: bool = False
    media_root: str | None = None
    plugin_map: str | None = None
    strict: bool = False

    @property
    def dest(self) -> Path:
        """The package's folder."""
        return Path(self.root) / self.package

    @property
    def attempts_dir(self) -> Path:
        """Where this task's attempts stage their packages."""
        return Path(self.staging) / f"task-{self.index:05d}"


def record_for(spec: TaskSpec, exit_code: int, message: str | None = None) -> TaskRecord:
    """A task's record before it rendered anything (or after it failed without a package)."""
    return {
        "index": spec.index,
        "session": spec.session,
        "region": spec.region,
        "package": None,
        "status": "ok" if exit_code == 0 else "failed",
        "exit_code": exit_code,
        "seconds": 0.0,
        "verdict": None,
        "message": message,
        "warnings": [],
        "audio_seconds": 0.0,
        "files": [],
        "attempt": 1,
        "worker": None,
    }


def run_task(spec: TaskSpec) -> TaskRecord:
    """Render the task's package under ``ROOT`` and return its record.

    Only stemprint errors become a failed record here; anything else propagates, so that the
    scheduler retries it (or the batch records it as an internal error).
    """
    started = time.perf_counter()
    attempt, number = _new_attempt(spec)
    try:
        record = _render(spec, attempt)
    except StemprintError as exc:
        record = record_for(spec, exc.exit_code, exc.format())
    finally:
        shutil.rmtree(attempt, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - started, 3)
    record["attempt"] = number
    record["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return record


def _new_attempt(spec: TaskSpec) -> tuple[Path, int]:
    """A new folder for this attempt; its number counts the attempts that did not finish.

    The batch's staging folder is never created here: a task still running after its batch
    ended (a recompute on a remote worker) fails instead of leaving files behind."""
    folder = spec.attempts_dir
    folder.mkdir(exist_ok=True)
    number = sum(1 for _ in folder.iterdir()) + 1
    while True:
        attempt = folder / f"attempt-{number}-{os.getpid()}"
        try:
            attempt.mkdir()
            return attempt, number
        except FileExistsError:
            number += 1


def _render(spec: TaskSpec, attempt: Path) -> TaskRecord:
    from stemprint.export.package import RenderOptions, render_package, session_inputs
    from stemprint.export.publish import check_output_dir

    if spec.tune_allocator:
        from stemprint.render.allocator import tune_allocator

        tune_allocator()
    with open_session(spec) as (loaded, report):
        options = RenderOptions(
            **dict(spec.options),
            region=spec.region,
            threads=spec.threads,
            force=False,
            import_report=report.to_dict() if report is not None else None,
        )
        check_output_dir(spec.dest, True, session_inputs(loaded))  # never over its inputs
        result = render_package(loaded, attempt / "package", options)
    files = _hashes(attempt / "package", result.manifest)
    publish(attempt / "package", spec.dest)
    verification = result.manifest.get("verification")
    passed = None if verification is None else bool(verification["passed"])
    record = record_for(spec, 1 if passed is False else 0)
    record.update(
        package=spec.package,
        verdict=None if passed is None else ("pass" if passed else "fail"),
        warnings=list(result.warnings),
        audio_seconds=float(result.manifest["length_seconds"]),
        files=files,
    )
    if verification is not None and not passed:
        errors = "; ".join(verification["errors"])
        record["message"] = f"the package failed its verification: {errors}"
    return record


@contextmanager
def open_session(spec: TaskSpec) -> Iterator[tuple[Any, Any]]:
    """``(loaded, import report or None)`` of the task's session or DAW project."""
    from stemprint.importers import is_project

    if not is_project(spec.session_path):
        from stemprint.model.load import load_session

        yield load_session(spec.session_path), None
        return
    from stemprint.importers import load_plugin_map, open_project

    plugins = load_plugin_map(spec.plugin_map)
    with open_project(
        spec.session_path, media_root=spec.media_root, plugin_map=plugins, strict=spec.strict
    ) as opened:
        yield opened


def _hashes(package: Path, manifest: dict[str, Any]) -> list[dict[str, str]]:
    """SHA-256 of every file of the package: the manifest's for the audio, computed for the
    rest (manifest, README, reports), sorted by path."""
    from stemprint.export.manifest import sha256_file

    known = {e["path"]: e["sha256"] for e in manifest["files"] if e.get("sha256")}
    out = []
    for file in sorted(p for p in package.rglob("*") if p.is_file()):
        relative = file.relative_to(package).as_posix()
        out.append({"path": relative, "sha256": known.get(relative) or sha256_file(file)})
    return out


def publish(package: Path, dest: Path) -> None:
    """Move a finished package to ``dest`` by one rename (an earlier attempt's package there is
    replaced, and removed only after the rename)."""
    from stemprint.export.publish import replace_dir

    dest.parent.mkdir(parents=True, exist_ok=True)
    replace_dir(package, dest)


__all__ = ["TaskRecord", "TaskSpec", "open_session", "publish", "record_for", "run_task"]

"""Publishing a package: where it may go, whether it fits, and the atomic rename at the end.

Invariants
----------
- Nothing the user owns is deleted, overwritten or left half-written:

  - an existing output folder is refused unless ``force``, and even then only a stemprint
    package (a ``manifest.json`` written by stemprint, or a folder of such packages: a region
    matrix) or an empty folder is replaced;
  - no output folder may contain, or be, any input of the render (the session file, its clips,
    impulse responses, plug-ins);
  - the package is written into a hidden staging folder beside ``OUT`` and renamed to ``OUT``
    only when complete; an existing ``OUT`` is moved aside first and removed only after the
    rename, so a failure at any point leaves either the old package or nothing.

- A package that cannot fit on its disk is refused before rendering (estimate: every file's
  samples at the delivery bit depth plus headers); a disk that fills up anyway is reported as
  such (exit 2, with the disk, the size needed and what is free), and the staging folder is
  removed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from stemprint.errors import InputError

MANIFEST_NAME = "manifest.json"

HEADER_BYTES = 64 * 1024
"""Allowance per file for headers and metadata chunks in the size estimate."""

SIDE_FILES_BYTES = 4 * 1024 * 1024
"""Allowance for the manifest, README and verification report."""

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_package(folder: Path) -> bool:
    """A folder stemprint wrote: its manifest says so, or every entry is such a package."""
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text("utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and "stemprint" in data
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return bool(entries) and all(p.is_dir() and is_package(p) for p in entries)


def check_output_dir(out_dir: Path, force: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output folder that would destroy or hold anything the user owns.

    Raises
    ------
    InputError
        ``OUT`` exists (without ``force``), is not a folder, is a folder that is not a
        stemprint package (with ``force``), or contains, or is, an input of the render.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"output path exists and is not a folder: {out_dir}",
            field="-o/--output",
            fix="choose another path",
        )
    _check_inputs(out_dir, inputs)
    if not out_dir.exists():
        return
    if not force:
        raise InputError(
            f"output folder already exists: {out_dir}",
            field="-o/--output",
            fix="choose another folder, or pass --force to replace a stemprint package",
        )
    if any(out_dir.iterdir()) and not is_package(out_dir):
        raise InputError(
            f"{out_dir} is not a stemprint package: --force replaces only a folder that "
            "stemprint wrote (it has a stemprint manifest.json)",
            field="-o/--output",
            fix="choose a new folder for the package; stemprint never deletes other folders",
        )


def _check_inputs(out_dir: Path, inputs: Iterable[Path]) -> None:
    target = out_dir.resolve()
    for path in inputs:
        source = Path(path).resolve()
        if source == target or target in source.parents:
            raise InputError(
                f"the output folder {out_dir} holds an input of this render: {source}",
                field="-o/--output",
                fix="write the package to a new folder outside the session's audio and files",
            )


def estimate_bytes(files: Iterable[tuple[int, int, int]]) -> int:
    """Package size for ``(frames, channels, bytes per sample)`` files, with allowances."""
    total = SIDE_FILES_BYTES
    for frames, channels, sample_bytes in files:
        total += frames * channels * sample_bytes + HEADER_BYTES
    return total


def check_free_space(out_dir: Path, needed_bytes: int) -> None:
    """Refuse a package that cannot fit on the disk that will hold it."""
    parent = _existing_parent(out_dir)
    free = shutil.disk_usage(parent).free
    if needed_bytes > free:
        raise disk_full_error(out_dir, needed_bytes, free)


def disk_full_error(out_dir: Path, needed_bytes: int, free_bytes: int | None = None) -> InputError:
    """The error for a package that does not fit: which disk, how much is needed and free."""
    parent = _existing_parent(out_dir)
    if free_bytes is None:
        free_bytes = shutil.disk_usage(parent).free
    return InputError(
        f"not enough disk space for the package: it needs about {_mb(needed_bytes)}, and the "
        f"disk holding {parent} has {_mb(free_bytes)} free",
        file=str(out_dir),
        field="-o/--output",
        fix="free some space on that disk, or write the package to another disk (-o)",
    )


LOW_SPACE_BYTES = 1024 * 1024
"""A write that failed with less than this free on the disk failed because the disk is full."""


def is_disk_full(exc: BaseException, out_dir: Path) -> bool:
    """An error that means the disk (or the user's quota) filled up while writing."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    # libsndfile reports a failed write as its own error (a RuntimeError), without the errno.
    if isinstance(exc, OSError | RuntimeError):
        return shutil.disk_usage(_existing_parent(out_dir)).free < LOW_SPACE_BYTES
    return False


def staging_dir(out_dir: Path, tag: str = "partial") -> Path:
    """A new, empty hidden folder beside ``out_dir`` to write the package into."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.{tag}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def replace_dir(tmp: Path, out_dir: Path) -> None:
    """Publish ``tmp`` as ``out_dir``; an old ``out_dir`` is removed only after the rename."""
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def _existing_parent(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path(".")


def _mb(value: int) -> str:
    return f"{value / 1e6:.1f} MB"

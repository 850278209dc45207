"""Helper processes started as ``python -m MODULE``: a pickled job in on stdin, a pickled
``("ok", result)`` or ``("error", exception)`` out on stdout.

Invariants
----------
- A plain subprocess, not ``multiprocessing``: it never re-imports the caller's ``__main__``
  and never forks a multithreaded parent.
- Only ever fed by its parent, so pickle is safe here: nothing a user supplies is unpickled.
- BLAS and OpenMP pools are held to one thread: the parent already runs one helper per core.
- A helper that fails raises :class:`~stemprint.errors.StemprintError` in the parent, with the
  tail of its standard error; a stemprint error raised inside the helper is re-raised as is.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from stemprint.errors import StemprintError

_SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def start(module: str, job: object) -> subprocess.Popen[bytes]:
    """Start ``python -m module`` on ``job``; collect its result with :func:`collect`."""
    env = dict(os.environ, **_SINGLE_THREAD_ENV)
    src = str(Path(__file__).resolve().parents[1])  # the directory holding the stemprint package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(pickle.dumps(job))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # reported by collect()
    proc.stdin = None  # closed: communicate() must not touch it
    return proc


def collect(proc: subprocess.Popen[bytes], what: str, fix: str) -> Any:
    """Wait for a helper and return its result (re-raising its stemprint error, if any).

    Parameters
    ----------
    proc
        A helper from :func:`start`.
    what
        What the helper does, for the message (``metering``).
    fix
        What the user can do when it fails.
    """
    out, err = proc.communicate()
    code = proc.returncode
    if code != 0 or not out:
        raise StemprintError(
            f"{what} worker failed (exit code {code}): {err.decode(errors='replace')[-2000:]}",
            fix=fix,
        )
    status, payload = pickle.loads(out)
    if status == "error":
        raise payload
    return payload


def serve(work: Callable[[Any], object], stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """A helper's main: read the job, run ``work`` on it, write the result."""
    job = pickle.load(stdin)
    try:
        result: tuple[str, object] = ("ok", work(job))
    except StemprintError as exc:
        result = ("error", exc)
    pickle.dump(result, stdout)
    stdout.flush()
    return 0


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop a helper whose result is no longer wanted (the caller failed)."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()

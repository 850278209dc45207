"""Worker process that meters files for :func:`stemprint.analysis.verify.verify_package`.

Run as ``python -m stemprint.analysis._meter_worker``: reads a pickled list of
:class:`~stemprint.analysis.audio.AudioInfo` from stdin, writes a pickled
``("ok", [FileLevels, ...])`` or ``("error", exception)`` to stdout. A plain subprocess (not
``multiprocessing``) so it never re-imports the caller's ``__main__`` and never forks a
multithreaded parent. Only ever fed by its parent, so pickle is safe here.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import IO

from stemprint.errors import StemprintError

from .audio import AudioInfo
from .meters import FileLevels, measure_info

_SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def start(infos: list[AudioInfo]) -> subprocess.Popen[bytes]:
    """Start a worker metering ``infos``; collect with :func:`collect`."""
    env = dict(os.environ, **_SINGLE_THREAD_ENV)
    src = str(Path(__file__).resolve().parents[2])  # the directory holding the stemprint package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stemprint.analysis._meter_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(pickle.dumps(infos))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # reported by collect()
    proc.stdin = None  # closed: communicate() must not touch it
    return proc


def collect(proc: subprocess.Popen[bytes]) -> list[FileLevels]:
    """Wait for a worker and return its levels (re-raising its stemprint error, if any)."""
    out, err = proc.communicate()
    code = proc.returncode
    if code != 0 or not out:
        raise StemprintError(
            f"metering worker failed (exit code {code}): {err.decode(errors='replace')[-2000:]}",
            fix="run with workers=1 to meter in-process",
        )
    status, payload = pickle.loads(out)
    if status == "error":
        raise payload
    return list(payload)


def _main(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    infos: list[AudioInfo] = pickle.load(stdin)
    try:
        result: tuple[str, object] = ("ok", [measure_info(info) for info in infos])
    except StemprintError as exc:
        result = ("error", exc)
    pickle.dump(result, stdout)
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.stdin.buffer, sys.stdout.buffer))

"""Worker process that meters files for :func:`stemprint.analysis.verify.verify_package`.

Run as ``python -m stemprint.analysis._meter_worker`` (:mod:`stemprint.subprocess_worker`):
a pickled list of :class:`~stemprint.analysis.audio.AudioInfo` in, ``[FileLevels, ...]`` out.
"""

from __future__ import annotations

import subprocess
import sys

from stemprint import subprocess_worker

from .audio import AudioInfo
from .meters import FileLevels, measure_info


def start(infos: list[AudioInfo]) -> subprocess.Popen[bytes]:
    """Start a worker metering ``infos``; collect with :func:`collect`."""
    return subprocess_worker.start(__name__, infos)


def collect(proc: subprocess.Popen[bytes]) -> list[FileLevels]:
    """Wait for a worker and return its levels (re-raising its stemprint error, if any)."""
    return list(
        subprocess_worker.collect(proc, "metering", "run with workers=1 to meter in-process")
    )


def _measure(infos: list[AudioInfo]) -> list[FileLevels]:
    return [measure_info(info) for info in infos]


if __name__ == "__main__":
    sys.exit(subprocess_worker.serve(_measure, sys.stdin.buffer, sys.stdout.buffer))

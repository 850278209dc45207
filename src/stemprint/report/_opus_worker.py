"""Worker process that encodes report files to Opus in Ogg (:func:`.embed.opus_bytes`).

Run as ``python -m stemprint.report._opus_worker`` (:mod:`stemprint.subprocess_worker`): a
pickled list of :class:`~stemprint.report.inputs.ReportFile` in, their Ogg files (bytes) out.
libopus is deterministic, so the bytes do not depend on which process encoded them.
"""

from __future__ import annotations

import sys

from stemprint import subprocess_worker

from .embed import opus_bytes
from .inputs import ReportFile


def _encode(files: list[ReportFile]) -> list[bytes]:
    return [opus_bytes(f) for f in files]


if __name__ == "__main__":
    sys.exit(subprocess_worker.serve(_encode, sys.stdin.buffer, sys.stdout.buffer))

"""Batch scaling: eight sessions rendered serially vs on a local cluster of two workers.

Run from the repository root (needs ``pip install -e '.[batch]'``)::

    .venv/bin/python bench/batch.py                      # 8 sessions x 6 tracks x 30 s
    .venv/bin/python bench/batch.py --sessions 8 --tracks 8 --seconds 60 --repeat 3

Rows (each the median of ``--repeat`` runs, every run into a new folder):

- ``serial, 1 thread``: ``render_many(serial=True)`` with ``RenderOptions(threads=1)``;
- ``serial, N threads``: the same with the render's own default parallelism (tracks in worker
  processes, one per core), what ``stemprint render`` does one session after the other;
- ``cluster, 2 workers``: ``render_many(workers=2)``, a ``LocalCluster`` of two
  single-threaded processes on 127.0.0.1, its start-up included (also shown on its own).

Sessions are synthesized once into the work folder (default ``/tmp/stemprint-bench/batch``):
seeded noise and tones, each track with a high-pass, a compressor and a send to a shared reverb,
two group buses; 24-bit WAV at 48 kHz.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

RATE = 48000


def write_sessions(folder: Path, sessions: int, tracks: int, seconds: float) -> list[Path]:
    """``sessions`` sessions of ``tracks`` tracks of ``seconds`` each (reused when present)."""
    paths = []
    for index in range(sessions):
        song = folder / f"{tracks}x{seconds:g}" / f"song{index + 1:02d}"
        session = song / "session.yaml"
        paths.append(session)
        if session.exists():
            continue
        rng = np.random.default_rng(index)
        song.mkdir(parents=True, exist_ok=True)
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        entries = []
        for k in range(tracks):
            tone = 0.1 * np.sin(2 * np.pi * (80 + 40 * k) * t) * (1 + np.sin(t * (k + 1))) / 2
            data = tone + 0.02 * rng.standard_normal(n)
            sf.write(str(song / f"t{k}.wav"), data, RATE, subtype="PCM_24")
            entries.append(
                {
                    "name": f"Track {k + 1}",
                    "clips": [{"file": f"t{k}.wav"}],
                    "pan": round(-0.8 + 1.6 * k / max(tracks - 1, 1), 3),
                    "inserts": [
                        {"type": "highpass_filter", "cutoff_frequency_hz": 40},
                        {"type": "compressor", "threshold_db": -18, "ratio": 3},
                    ],
                    "sends": [{"to": "Verb", "level_db": -14}],
                    "output": "Group A" if k % 2 else "Group B",
                }
            )
        data = {
            "stemprint": 1,
            "name": f"Song {index + 1}",
            "tail_seconds": 1.0,
            "tracks": entries,
            "buses": [
                {"name": "Group A"},
                {"name": "Group B"},
                {"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.6}]},
            ],
        }
        session.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return paths


def run(sessions: list[Path], out: Path, **kwargs: object) -> tuple[float, float, int]:
    """One batch into a new ``out``: ``(wall seconds, audio seconds, exit code)``."""
    from stemprint.batch import render_many

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = render_many(sessions, out, **kwargs)  # type: ignore[arg-type]
    wall = time.perf_counter() - started
    audio = sum(t["audio_seconds"] for t in result.tasks)
    shutil.rmtree(out, ignore_errors=True)
    return wall, audio, result.exit_code


def cluster_startup_seconds(workers: int) -> float:
    """Time to start and close a local cluster of ``workers`` processes (nothing rendered)."""
    from stemprint.batch.cluster import dask_client

    started = time.perf_counter()
    with dask_client(None, workers) as client:
        client.wait_for_workers(workers)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--tracks", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/stemprint-bench/batch"))
    args = parser.parse_args(argv)

    from stemprint.export.package import RenderOptions

    sessions = write_sessions(args.work, args.sessions, args.tracks, args.seconds)
    out = args.work / "out"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = [
        ("serial, 1 thread", {"serial": True, "options": RenderOptions(threads=1)}),
        (f"serial, {cores} threads", {"serial": True}),
        (f"cluster, {args.workers} workers", {"workers": args.workers}),
    ]
    print(
        f"{args.sessions} sessions x {args.tracks} tracks x {args.seconds:g} s, {cores} cores, "
        f"median of {args.repeat}"
    )
    print(f"{'row':<24}{'wall s':>9}{'audio/wall':>12}{'speed-up':>10}")
    baseline = None
    for label, kwargs in rows:
        walls, audio = [], 0.0
        for _ in range(args.repeat):
            wall, audio, code = run(sessions, out, **kwargs)
            if code:
                print(f"{label}: exit code {code}", file=sys.stderr)
                return code
            walls.append(wall)
        median = statistics.median(walls)
        baseline = baseline or median
        print(f"{label:<24}{median:>9.2f}{audio / median:>11.1f}x{baseline / median:>9.2f}x")
    startup = statistics.median(cluster_startup_seconds(args.workers) for _ in range(args.repeat))
    print(f"{'cluster start-up alone':<24}{startup:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

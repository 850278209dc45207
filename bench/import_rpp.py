"""Time the REAPER project import: a generated 40-track, 400-item project.

    python bench/import_rpp.py [--tracks 40] [--items 400] [--repeat 5]

The project (written into a temporary folder with one short WAV per track) has 4 folders,
2 return tracks fed by receives, volume/pan envelopes on every track, send envelopes, and an
FX chain of three plug-ins with base64 state on every track, like a real mix. It reports the
median of ``--repeat`` runs of: the tokenizer alone, the full ``read_rpp`` (media probed, findings
made), and the ``rpp`` package's parser (the reference parser, when installed).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.importers.rpp_synth import envelope, item, project, receive, track  # noqa: E402

RATE = 48000


def _fx_chain(rng: np.random.Generator, index: int) -> str:
    lines = ["<FXCHAIN", "SHOW 0", "LASTSEL 0", "DOCKED 0"]
    for slot in range(3):
        state = base64.b64encode(rng.bytes(1500)).decode()
        lines += [
            "BYPASS 0 0 0",
            f'<VST "VST3: Plug {slot} (Vendor)" "Plug {slot}.vst3" 0 "" '
            f'{1000 + slot}{{{index:016X}{slot:016X}}} ""',
            *[state[i : i + 128] for i in range(0, len(state), 128)],
            ">",
            'PRESETNAME "Default"',
            f"FXID {{{index:08X}-0000-0000-0000-{slot:012X}}}",
            "WAK 0 0",
        ]
    return "\n".join([*lines, ">"])


def build(folder: Path, tracks: int, items: int) -> Path:
    """Write the project and its media; returns the project path."""
    rng = np.random.default_rng(6)
    audio_tracks = tracks - 2
    texts: list[str] = []
    returns = (tracks - 2, tracks - 1)
    for index in range(tracks - 2):
        name = f"t{index:02d}.wav"
        sf.write(str(folder / name), 0.1 * rng.standard_normal((RATE // 2, 2)), RATE)
        clips = [
            item(name, 0.5 * k, 0.45, fadein=(0.01, 0), fadeout=(0.01, 0))
            for k in range(items // audio_tracks + (index < items % audio_tracks))
        ]
        ramp = [(0.1 * k, 0.5 + 0.5 * float(rng.random())) for k in range(20)]
        chunks = [
            envelope("VOLENV2", ramp),
            envelope("PANENV2", [(0, -0.5), (5, 0.5)]),
            _fx_chain(rng, index),
        ]
        first, last = index % 9 == 0, index % 9 == 8 or index == tracks - 3
        isbus = (1, 1) if first else (2, -1) if last else (0, 0)
        texts.append(track(f"Track {index}", clips, pan=0.1, isbus=isbus, chunks=chunks))
    for slot, _ in enumerate(returns):
        recv = [
            receive(i, vol=0.3) + "\n" + envelope("AUXVOLENV", [(0, 1), (3, 0.5)])
            for i in range(slot, tracks - 2, 2)
        ]
        texts.append(track(f"Return {slot}", lines=recv))
    path = folder / "big.rpp"
    path.write_text(project(texts).replace("\n", "\r\n"), "utf-8")
    return path


def median_seconds(func: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=40)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from stemprint.importers.report import ImportReport
    from stemprint.importers.rpp import read_rpp
    from stemprint.importers.rpp.tokens import parse_project, read_project_text

    with tempfile.TemporaryDirectory(prefix="stemprint-bench-rpp-") as tmp:
        path = build(Path(tmp), args.tracks, args.items)
        text = read_project_text(path)
        rows = [
            ("rpp_tokens.parse_project", lambda: parse_project(text, str(path))),
            ("read_rpp (full import)", lambda: read_rpp(path, ImportReport(str(path), "rpp"))),
        ]
        try:
            import rpp

            rows.append(("rpp package (rpp.loads)", lambda: rpp.loads(text)))
        except ImportError:
            pass
        report = ImportReport(str(path), "rpp")
        read_rpp(path, report)
        size_kb = path.stat().st_size / 1024
        print(f"project: {size_kb:.0f} KB, {text.count(chr(10)) + 1} lines, {report.facts}")
        print(f"{'what':<28} {'median s':>9} {'x rpp_tokens':>13}")
        base = None
        for label, func in rows:
            seconds = median_seconds(func, args.repeat)
            base = base or seconds
            print(f"{label:<28} {seconds:>9.3f} {seconds / base:>13.1f}")


if __name__ == "__main__":
    main()

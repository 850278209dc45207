"""Synthetic REAPER projects for the importer tests: RPP text written in code, seeded audio.

Each helper returns a piece of RPP text; :func:`project` wraps tracks into a whole project.
Numbers are written with ``repr`` so the reader sees exactly the floats the test uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 48000


def noise(seed: int, channels: int, seconds: float, rate: int = RATE) -> np.ndarray:
    """Seeded white noise at −20 dBFS peak, ``(channels, n)`` float64 (float32-exact values)."""
    rng = np.random.default_rng(seed)
    data = 0.1 * rng.uniform(-1.0, 1.0, (channels, round(seconds * rate)))
    return data.astype(np.float32).astype(np.float64)


def write_wav(path: Path, data: np.ndarray, rate: int = RATE) -> Path:
    """Write ``(channels, n)`` audio as 32-bit float WAV (lossless for :func:`noise`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data.T, rate, subtype="FLOAT")
    return path


def _num(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def envelope(
    tag: str, points: Iterable[Sequence[float]], *, act: int = 1, voltype: int | None = None
) -> str:
    """An envelope chunk; each point is ``(time, value)`` or ``(time, value, shape)``."""
    lines = [f"<{tag}", f"ACT {act} -1", "VIS 1 1 1", "ARM 1", "DEFSHAPE 0 -1 -1"]
    if voltype is not None:
        lines.append(f"VOLTYPE {voltype}")
    for point in points:
        shape = int(point[2]) if len(point) > 2 else 0
        lines.append(f"PT {_num(point[0])} {_num(point[1])} {shape}")
    return "\n".join([*lines, ">"])


def item(
    file: str,
    position: float,
    length: float,
    *,
    soffs: float = 0.0,
    loop: int = 0,
    mute: int = 0,
    itemvol: float = 1.0,
    takevol: float = 1.0,
    fadein: tuple[float, int] = (0.0, 0),
    fadeout: tuple[float, int] = (0.0, 0),
    source: str = "WAVE",
    playrate: float = 1.0,
    pitch: float = 0.0,
    extra: str = "",
) -> str:
    """An ITEM with one take whose source is ``file``; fades are ``(seconds, shape)``."""
    return "\n".join(
        [
            "<ITEM",
            f"POSITION {_num(position)}",
            "SNAPOFFS 0",
            f"LENGTH {_num(length)}",
            f"LOOP {loop}",
            "ALLTAKES 0",
            f"FADEIN 1 {_num(fadein[0])} 0 {fadein[1]} 0 0",
            f"FADEOUT 1 {_num(fadeout[0])} 0 {fadeout[1]} 0 0",
            f"MUTE {mute} 0",
            "SEL 0",
            "IGUID {00000000-0000-0000-0000-000000000000}",
            'NAME "take"',
            f"VOLPAN {_num(itemvol)} 0 {_num(takevol)} -1",
            f"SOFFS {_num(soffs)}",
            f"PLAYRATE {_num(playrate)} 1 {_num(pitch)} -1 0 0.0025",
            "CHANMODE 0",
            *([extra] if extra else []),
            f"<SOURCE {source}",
            f'FILE "{file}"',
            ">",
            ">",
        ]
    )


def track(
    name: str,
    items: Iterable[str] = (),
    *,
    vol: float = 1.0,
    pan: float = 0.0,
    panlaw: float = -1.0,
    mute: int = 0,
    solo: int = 0,
    phase: int = 0,
    isbus: tuple[int, int] = (0, 0),
    mainsend: int = 1,
    automode: int = 0,
    lines: Iterable[str] = (),
    chunks: Iterable[str] = (),
) -> str:
    """A TRACK chunk; ``lines`` go before MAINSEND (AUXRECV, HWOUT…), ``chunks`` after it."""
    return "\n".join(
        [
            "<TRACK {11111111-2222-3333-4444-555555555555}",
            f'NAME "{name}"',
            "PEAKCOL 16576",
            "BEAT -1",
            f"AUTOMODE {automode}",
            f"VOLPAN {_num(vol)} {_num(pan)} {_num(panlaw)} -1 1",
            f"MUTESOLO {mute} {solo} 0",
            f"IPHASE {phase}",
            f"ISBUS {isbus[0]} {isbus[1]}",
            "BUSCOMP 0 0",
            "NCHAN 2",
            "FX 1",
            *lines,
            "MIDIOUT -1",
            f"MAINSEND {mainsend} 0",
            *chunks,
            *items,
            ">",
        ]
    )


def receive(
    source: int,
    *,
    mode: int = 0,
    vol: float = 1.0,
    pan: float = 0.0,
    mute: int = 0,
    phase: int = 0,
    srcch: int = 0,
    dstch: int = 0,
) -> str:
    """An AUXRECV line (a receive from 0-based track ``source``)."""
    return (
        f"AUXRECV {source} {mode} {_num(vol)} {_num(pan)} {mute} 0 {phase} {srcch} {dstch} "
        "-1:U 0 -1 ''"
    )


def project(
    tracks: Iterable[str],
    *,
    sample_rate: int = RATE,
    tempo: str = "120 4 4",
    panlaw: float = 1.0,
    master_volume: float = 1.0,
    master_pan: float = 0.0,
    master_mutesolo: int = 0,
    record_path: str = '"" ""',
    extra: Iterable[str] = (),
) -> str:
    """A whole REAPER project around ``tracks``."""
    return "\n".join(
        [
            '<REAPER_PROJECT 0.1 "7.11/linux-x86_64" 1700000000',
            "RIPPLE 0",
            "FEEDBACK 0",
            f"PANLAW {_num(panlaw)}",
            "PANMODE 3",
            f"RECORD_PATH {record_path}",
            "ITEMMIX 0",
            f"SAMPLERATE {sample_rate} 0 0",
            f"TEMPO {tempo}",
            f"MASTERMUTESOLO {master_mutesolo}",
            f"MASTER_VOLUME {_num(master_volume)} {_num(master_pan)} -1 -1 1",
            "MASTER_FX 1",
            *extra,
            "<PROJBAY",
            ">",
            *tracks,
            ">",
            "",
        ]
    )


def write_project(folder: Path, text: str, name: str = "song.rpp", crlf: bool = False) -> Path:
    """Write project text (LF, or CRLF like REAPER on Windows)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes((text.replace("\n", "\r\n") if crlf else text).encode("utf-8"))
    return path

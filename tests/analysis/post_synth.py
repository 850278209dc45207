"""5.1 / 7.1 signals, film-style (DME) packages and ffmpeg readers for the post-delivery tests.

Files are written by soundfile as ``WAVE_FORMAT_EXTENSIBLE`` (format ``WAVEX``): libsndfile
writes the mask 0x3F (FL FR FC LFE BL BR, ffprobe ``5.1``) for six channels and 0xFF
(``7.1(wide)``) for eight, so 7.1 files get the mask 0x63F (FL FR FC LFE BL BR SL SR) patched in,
at byte 20 of the ``fmt `` chunk's data. Plain format ``WAV`` writes no mask at all.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

FS = 48000
#: Lo = L + c·C + c·Ls: the exact BS.775-3 coefficient √½ (ffmpeg parses all these digits).
SQRT_HALF_TEXT = "0.70710678118654752"


def sine(level_dbfs: float, seconds: float, freq: float = 1000.0, fs: int = FS) -> np.ndarray:
    """One channel of a sine at ``level_dbfs`` peak, shape ``(n,)``."""
    t = np.arange(int(round(seconds * fs))) / fs
    return 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq * t)


def in_channel(x: np.ndarray, channel: int, channels: int) -> np.ndarray:
    """``(channels, n)`` with ``x`` in ``channel`` and silence elsewhere."""
    out = np.zeros((channels, x.shape[-1]))
    out[channel] = x
    return out


def write_multichannel(
    path: Path, x: np.ndarray, subtype: str = "PCM_24", mask: int | None = None
) -> Path:
    """Write float64 ``(channels, n)`` as WAVE_FORMAT_EXTENSIBLE; ``mask`` overrides the
    channel mask (0x63F for 7.1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.ascontiguousarray(x.T), FS, format="WAVEX", subtype=subtype)
    if mask is None and x.shape[0] == 8:
        mask = 0x63F
    if mask is not None:
        data = bytearray(path.read_bytes())
        fmt = data.find(b"fmt ")
        struct.pack_into("<I", data, fmt + 8 + 20, mask)
        path.write_bytes(bytes(data))
    return path


def channel_mask(path: Path) -> int:
    """``dwChannelMask`` of a WAVE_FORMAT_EXTENSIBLE file."""
    data = path.read_bytes()[:200]
    fmt = data.find(b"fmt ")
    assert struct.unpack_from("<H", data, fmt + 8)[0] == 0xFFFE, "not WAVE_FORMAT_EXTENSIBLE"
    return int(struct.unpack_from("<I", data, fmt + 8 + 20)[0])


def ffmpeg() -> str:
    """The ffmpeg executable, or skip the test with a message."""
    found = shutil.which("ffmpeg")
    if found is None:
        pytest.skip("ffmpeg is not installed (CI installs it with apt-get install ffmpeg)")
    return found


@dataclass(frozen=True)
class Ebur128:
    """ffmpeg ``ebur128=peak=true`` summary: integrated (LUFS), LRA (LU), true peak (dBFS)."""

    integrated_lufs: float
    lra_lu: float
    true_peak_dbfs: float


def ffmpeg_ebur128(path: Path) -> Ebur128:
    """ffmpeg's own EBU R128 meter (independent of libebur128) on ``path``."""
    result = subprocess.run(
        [ffmpeg(), "-nostats", "-hide_banner", "-i", str(path), "-af", "ebur128=peak=true",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = result.stderr[result.stderr.rindex("Summary:") :]

    def number(key: str) -> float:
        match = re.search(rf"{key}:\s+(-?[\d.]+|-inf)", summary)
        assert match, summary
        return float(match.group(1))

    return Ebur128(number("I"), number("LRA"), number("Peak"))


def ffmpeg_fold_down(source: Path, out: Path, coefficient: str = SQRT_HALF_TEXT) -> np.ndarray:
    """ffmpeg's ``pan`` fold-down Lo/Ro of a 5.1 file (float64 output), ``(2, n)``."""
    c = coefficient
    pan = f"pan=stereo|FL=FL+{c}*FC+{c}*BL|FR=FR+{c}*FC+{c}*BR"
    subprocess.run(
        [ffmpeg(), "-y", "-v", "error", "-i", str(source), "-af", pan, "-c:a", "pcm_f64le",
         str(out)],
        check=True,
    )  # fmt: skip
    data, rate = sf.read(str(out), dtype="float64", always_2d=True)
    assert rate == FS
    return np.ascontiguousarray(data.T)


@dataclass
class Dme:
    """A film-style package written by :func:`dme_package`, with its float64 signals."""

    root: Path
    signals: dict[str, np.ndarray]


DME_PATHS = {
    "PM": ("PM.wav", "mix"),
    "DX": ("stems/DX.wav", "stem"),
    "MX": ("stems/MX.wav", "stem"),
    "FX": ("stems/FX.wav", "stem"),
    "ME": ("ME.wav", "alt_mix"),
}


def dme_signals(
    seconds: float = 8.0,
    dialogue_seconds: float = 4.0,
    dx_dbfs: float = -20.0,
    mx_dbfs: float = -30.0,
    fx_dbfs: float = -70.0,
    seed: int = 11,
) -> dict[str, np.ndarray]:
    """5.1 DX (a 1 kHz tone in C for the first ``dialogue_seconds``), MX (tones in L and R,
    the whole time), FX (noise in Ls/Rs at ``fx_dbfs`` RMS and a 40 Hz LFE at −20 dBFS); PM =
    DX + MX + FX, ME = MX + FX."""
    n = int(round(seconds * FS))
    dx = in_channel(sine(dx_dbfs, seconds), 2, 6)
    dx[:, int(round(dialogue_seconds * FS)) :] = 0.0
    mx = np.zeros((6, n))
    mx[0] = sine(mx_dbfs, seconds, 500.0)
    mx[1] = sine(mx_dbfs, seconds, 700.0)
    fx = np.zeros((6, n))
    fx[3] = sine(-20.0, seconds, 40.0)
    fx[4:] = 10 ** (fx_dbfs / 20) * np.random.default_rng(seed).standard_normal((2, n))
    return {"PM": dx + mx + fx, "DX": dx, "MX": mx, "FX": fx, "ME": mx + fx}


def dme_package(
    root: Path,
    signals: dict[str, np.ndarray] | None = None,
    subtype: str = "PCM_24",
    names: dict[str, str] | None = None,
) -> Dme:
    """Write PM (mix), DX/MX/FX (stems) and ME (alt_mix) with a manifest and its sums.

    ``names`` renames manifest entries (``{"DX": "Dialogue"}`` leaves the package without a
    stem named DX).
    """
    signals = signals if signals is not None else dme_signals()
    names = names or {}
    files = []
    for key, (rel, role) in DME_PATHS.items():
        write_multichannel(root / rel, signals[key], subtype)
        files.append({"path": rel, "role": role, "name": names.get(key, key), "channels": 6})
    sums = [
        {"name": "DME", "parts": ["stems/DX.wav", "stems/MX.wav", "stems/FX.wav"],
         "reference": "PM.wav"},
        {"name": "M&E", "parts": ["stems/MX.wav", "stems/FX.wav"], "reference": "ME.wav"},
    ]  # fmt: skip
    manifest = {"stemprint": 1, "sample_rate": FS, "files": files, "sums": sums}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return Dme(root, signals)


def tone_energy(level_dbfs: float) -> float:
    """BS.1770-4 weighted energy ``z`` of a 1 kHz sine at ``level_dbfs`` in one weight-1
    channel, from the meter itself (``L = −0.691 + 10·log10 z``)."""
    from stemprint.analysis import LevelMeter

    meter = LevelMeter(FS, 1)
    meter.process(sine(level_dbfs, 4.0)[None, :])
    return float(10 ** ((meter.result().loudness_lufs + 0.691) / 10))

"""Helpers for the CLI verification tests: seeded signals, hand-written packages, the CLI.

Packages are written with numpy + soundfile and a hand-written ``manifest.json``, never by the
renderer. This module holds no tests.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app

FS = 48000
runner = CliRunner()


def tone(level_dbfs: float, seconds: float, freq: float = 1000.0, channels: int = 2) -> np.ndarray:
    """Sine at ``level_dbfs`` peak on every channel, float64 ``(channels, samples)``.

    A 1 kHz stereo sine at X dBFS reads X LUFS (BS.1770-4); a mono one X − 3.01 LUFS.
    """
    t = np.arange(int(round(seconds * FS))) / FS
    return np.tile(10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq * t), (channels, 1))


def noise(seconds: float, seed: int, level: float = 0.1, channels: int = 2) -> np.ndarray:
    """Seeded uniform noise in ``[-level, level]``, ``(channels, samples)``."""
    n = int(round(seconds * FS))
    return level * np.random.default_rng(seed).uniform(-1.0, 1.0, (channels, n))


def write(path: Path, x: np.ndarray, subtype: str = "FLOAT", fs: int = FS) -> Path:
    """Write float64 ``(channels, samples)`` to ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.ascontiguousarray(np.atleast_2d(x).T), fs, subtype=subtype)
    return path


def as_float32(x: np.ndarray) -> np.ndarray:
    """The values a FLOAT file holds (and a reader decodes) for ``x``."""
    return x.astype(np.float32).astype(np.float64)


def manifest(root: Path, files: list[dict[str, Any]], **extra: Any) -> Path:
    """Write a stemprint ``manifest.json`` listing ``files`` (plus top-level ``extra`` keys)."""
    data = {"stemprint": 1, "files": files, **extra}
    path = root / "manifest.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def cli(*args: str | Path) -> tuple[int, str]:
    """Run ``stemprint ARGS``; returns the exit code and stdout + stderr."""
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def cli_json(*args: str | Path) -> tuple[int, dict[str, Any]]:
    """Run ``stemprint verify ARGS --json``; returns the exit code and the parsed report."""
    result = runner.invoke(app, ["verify", *[str(a) for a in args], "--json"])
    text = result.stdout
    assert "{" in text, result.output
    return result.exit_code, json.loads(text[text.index("{") : text.rindex("}") + 1])


def peak_dbfs(x: np.ndarray) -> float:
    """``20·log10(max |x|)``."""
    return float(20 * np.log10(np.max(np.abs(x))))


def with_bext(path: Path, time_reference_samples: int) -> Path:
    """Insert a Broadcast WAVE ``bext`` chunk (EBU Tech 3285, version 1, 602 bytes) holding
    ``time_reference_samples`` before the ``fmt`` chunk of the RIFF WAV file at ``path``."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    body = bytearray(602)
    low, high = time_reference_samples & 0xFFFFFFFF, time_reference_samples >> 32
    struct.pack_into("<II", body, 338, low, high)  # TimeReferenceLow, TimeReferenceHigh
    struct.pack_into("<H", body, 346, 1)  # version
    chunk = b"bext" + struct.pack("<I", len(body)) + bytes(body)
    out = data[:12] + chunk + data[12:]
    out = out[:4] + struct.pack("<I", len(out) - 8) + out[8:]
    path.write_bytes(out)
    return path


def live_report_equals_read_back(monkeypatch: Any, root: Path, live: Any) -> dict[str, Any]:
    """Verify ``root`` from ``live`` (failing if the package is read back), then by reading it
    back; assert the two reports are identical and return the live one."""
    from stemprint.analysis import verify as verify_module
    from stemprint.analysis.verify import verify_package

    def no_read_back(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("read the package back instead of using the live measurement")

    monkeypatch.setattr(verify_module, "_measure", no_read_back)
    measured = verify_package(root, live=live).to_dict(reproducible=True)
    monkeypatch.undo()
    read_back = verify_package(root).to_dict(reproducible=True)
    assert json.dumps(measured) == json.dumps(read_back)
    return measured

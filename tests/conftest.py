"""Shared helpers: sessions built in code, signals synthesized with seeded generators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import yaml

from stemprint.graph.compile import RenderGraph, compile_session
from stemprint.model.load import LoadedSession, load_session
from stemprint.render.engine import Renderer


@pytest.fixture(autouse=True)
def _workers_for_any_length(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions here are seconds long: fork track workers for them as for a long session (the
    default forks only past ``MIN_WORKER_TRACK_SECONDS``), so every test that renders on two
    threads covers the worker processes. ``tests/render/test_workers.py`` tests the rule."""
    monkeypatch.setattr("stemprint.render.engine.MIN_WORKER_TRACK_SECONDS", 0.0)


class ArraySink:
    """Collects a tap's blocks in memory (tests only)."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.closed = False

    def write(self, block: np.ndarray) -> None:
        self.blocks.append(block.copy())

    def close(self) -> None:
        self.closed = True

    @property
    def data(self) -> np.ndarray:
        return np.concatenate(self.blocks, axis=1) if self.blocks else np.zeros((2, 0))


def write_wav(path: Path, signal: np.ndarray, sample_rate: int = 48000, subtype: str = "DOUBLE"):
    """Write ``(channels, n)`` float64 ``signal``; DOUBLE keeps it exact for null tests."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(signal).T, sample_rate, subtype=subtype)
    return path


def write_session(folder: Path, data: dict[str, Any], name: str = "session.yaml") -> Path:
    data = {"stemprint": 1, "sample_rate": 48000, "tail_seconds": 0.0, **data}
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def render_arrays(
    session_path: Path, block_size: int = 4096, allow_plugins: bool = False
) -> tuple[dict[str, np.ndarray], RenderGraph]:
    """Render every tap into memory; returns arrays by tap key and the graph."""
    loaded: LoadedSession = load_session(session_path)
    graph = compile_session(loaded, allow_plugins=allow_plugins)
    renderer = Renderer(graph, block_size)
    sinks = {tap.key: ArraySink() for tap in renderer.taps}
    renderer.run(sinks)  # type: ignore[arg-type]
    return {k: s.data for k, s in sinks.items()}, graph


def peak_dbfs(x: np.ndarray) -> float:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return 20 * np.log10(peak) if peak > 0 else -np.inf


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)

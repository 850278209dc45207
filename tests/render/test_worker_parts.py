"""Partial sums summed in the render workers: the same samples as one thread, less shipped."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.graph.compile import compile_session
from stemprint.model.load import load_session
from stemprint.render.engine import Renderer
from stemprint.render.runner import BlockRunner
from stemprint.render.workers import fork_available, split_in_order
from tests.conftest import ArraySink, write_session, write_wav
from tests.render.test_engine import _noise

TRACKS = 20
runner = CliRunner()


def test_split_in_order_cuts_consecutive_runs_of_about_equal_cost() -> None:
    costs = {f"t{i}": 3 for i in range(32)}
    assert split_in_order(costs, 2) == [list(costs)[:16], list(costs)[16:]]
    uneven = {"a": 10, "b": 1, "c": 1, "d": 1, "e": 7}
    assert split_in_order(uneven, 2) == [["a"], ["b", "c", "d", "e"]]
    assert split_in_order({"a": 1, "b": 1}, 5) == [["a"], ["b"]]  # never an empty run
    assert split_in_order({"a": 0, "b": 0, "c": 0}, 3) == [["a"], ["b"], ["c"]]
    assert split_in_order({"a": 1}, 1) == [["a"]]


def _session_data(media: Path, rng: np.random.Generator) -> dict:
    """20 tracks: T0-T1 into a group bus (one sum), T2-T17 into a bus of 16 inputs (partial
    sums of 8), T18-T19 into the master, every track into a return (20 inputs); mono and
    stereo, panned and pre-fader sends, and T19 without inserts (its edges carry a
    compensation delay, so the sums it is part of stay in the render process)."""
    tracks = []
    for i in range(TRACKS):
        write_wav(media / f"t{i}.wav", _noise(rng, 1 + i % 2, 7000 + 311 * i, 0.4), subtype="FLOAT")
        tracks.append(
            {
                "name": f"T{i}",
                "clips": [{"file": f"t{i}.wav", "start_seconds": 0.003 * i}],
                "gain_db": -1.5 * (i % 7),
                "pan": (i % 5 - 2) / 2,
                "output": "Group" if i < 2 else "Mains" if i < 18 else "master",
                "inserts": [{"type": "compressor", "threshold_db": -18, "ratio": 2}]
                if i != TRACKS - 1
                else [],
                "sends": [
                    {"to": "Verb", "level_db": -12, "pre_fader": i == 7, "pan": 0.3 * (i == 9)}
                ],
            }
        )
    return {
        "tail_seconds": 0.05,
        "tracks": tracks,
        "buses": [
            {"name": "Group", "inserts": [{"type": "distortion", "drive_db": 2}]},
            {"name": "Mains"},
            {"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.4}]},
        ],
        "master": {"inserts": [{"type": "limiter", "threshold_db": -2}]},
    }


@pytest.fixture
def session(tmp_path: Path, rng: np.random.Generator) -> Path:
    return write_session(tmp_path, _session_data(tmp_path, rng))


def _render(path: Path, block_size: int, **kwargs) -> dict[str, np.ndarray]:
    renderer = Renderer(compile_session(load_session(path)), block_size, **kwargs)
    sinks = {tap.key: ArraySink() for tap in renderer.taps}
    renderer.run(sinks)  # type: ignore[arg-type]
    return {k: s.data for k, s in sinks.items()}


@pytest.mark.skipif(not fork_available(), reason="worker processes need os.fork")
def test_workers_sum_whole_partial_sums_and_ship_only_what_else_is_read(session: Path) -> None:
    renderer = Renderer(compile_session(load_session(session)), 1000, threads=2, processes=True)
    block_runner = BlockRunner(renderer.plan, 1000, renderer.graph.extent())
    workers = renderer._track_workers(block_runner)
    try:
        shares = [sorted(int(t.removeprefix("track:T")) for t in w.tracks) for w in workers]
        assert len(shares) == 2 and all(s == list(range(s[0], s[-1] + 1)) for s in shares)
        summed = {(p.key[0], p.start, p.end) for w in workers for p in w.parts}
        # By cost (mono 2, stereo with an insert 4): T0-T9 and T10-T19. Group (one sum),
        # Mains' partial sums (T2-T9, T10-T17) and Verb's first (T0-T7) each lie in one
        # worker; Verb's second (T8-T15) spans both, its third holds T19 (delayed edges).
        assert shares == [list(range(10)), list(range(10, 20))]
        assert summed == {("bus:Group", 0, 2), ("bus:Mains", 0, 8), ("bus:Mains", 8, 16),
                          ("bus:Verb", 0, 8)}  # fmt: skip
        shipped = {(kind, key[0]) for w in workers for kind, key, _ in w.shipped if kind != "part"}
        assert ("post", "track:T0") not in shipped  # only sums in its worker read it
        assert ("post", "track:T9") in shipped  # Verb's second partial sum reads it here
        assert ("post", "track:T19") in shipped and ("pre", "track:T7") not in shipped
    finally:
        for worker in workers:
            worker.close()


@pytest.mark.skipif(not fork_available(), reason="worker processes need os.fork")
@pytest.mark.parametrize("block_size", [777, 4096])
def test_worker_sums_render_the_same_samples_as_one_thread(session: Path, block_size: int) -> None:
    reference = _render(session, block_size, threads=1)
    out = _render(session, block_size, threads=2, processes=True)
    assert reference.keys() == out.keys()
    for key, data in reference.items():
        assert np.array_equal(out[key], data), key
    assert np.max(np.abs(reference["premaster"])) > 0.01  # not silence


def _cli(folder: Path, data: dict, out: str, *options: str) -> Path:
    path = write_session(folder, data)
    args = ["render", str(path), "-o", str(folder / out), "--no-report", *options]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "verification PASS" in result.output
    return folder / out


def _samples(package: Path) -> dict[str, np.ndarray]:
    files = sorted(package.rglob("*.wav"))
    return {str(p.relative_to(package)): sf.read(p, dtype="int32")[0] for p in files}


@pytest.mark.skipif(not fork_available(), reason="worker processes need os.fork")
def test_cli_files_match_one_thread_with_and_without_the_cache(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    data = _session_data(tmp_path, rng)
    one = _samples(_cli(tmp_path, data, "one", "--threads", "1"))
    two = _samples(_cli(tmp_path, data, "two", "--threads", "2"))
    assert one.keys() == two.keys() and len(one) >= 4
    for name, samples in one.items():
        assert np.array_equal(two[name], samples), name
    # A fader change re-rendered from the cache: the worker sums meet the cache's entries.
    cache = str(tmp_path / "cache")
    _cli(tmp_path, data, "fill", "--threads", "2", "--cache", cache)
    changed = copy.deepcopy(data)
    changed["tracks"][9]["gain_db"] += 1.0
    cold = _samples(_cli(tmp_path, changed, "cold", "--threads", "1"))
    warm = _samples(_cli(tmp_path, changed, "warm", "--threads", "2", "--cache", cache))
    for name, samples in cold.items():
        assert np.array_equal(warm[name], samples), name
    assert not np.array_equal(cold["mix.wav"], one["mix.wav"])  # the change is heard

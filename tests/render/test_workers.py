"""Tracks rendered in worker processes: the same samples as one thread, errors carried home."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stemprint.errors import AudioFileError, RenderError
from stemprint.graph.compile import compile_session
from stemprint.model.load import load_session
from stemprint.render.engine import Renderer
from stemprint.render.runner import BlockRunner
from stemprint.render.workers import fork_available
from tests.conftest import ArraySink, write_session, write_wav
from tests.render.test_engine import _noise, _processed_session

pytestmark = pytest.mark.skipif(not fork_available(), reason="worker processes need os.fork")


def _render(path, block_size=1000, **kwargs):
    renderer = Renderer(compile_session(load_session(path)), block_size, **kwargs)
    sinks = {tap.key: ArraySink() for tap in renderer.taps}
    renderer.run(sinks)  # type: ignore[arg-type]
    return {k: s.data for k, s in sinks.items()}, renderer


def _many_tracks(tmp_path, rng, count=7, nan_track=None):
    tracks = []
    for i in range(count):
        x = _noise(rng, 1 + i % 2, 9000 + 700 * i, 0.5)
        if i == nan_track:
            x[0, 4321] = np.nan
        write_wav(tmp_path / f"t{i}.wav", x, subtype="FLOAT")
        tracks.append(
            {
                "name": f"T{i}",
                "clips": [{"file": f"t{i}.wav", "start_seconds": 0.01 * i}],
                "gain_db": -3.0 * i,
                "pan": (i % 5 - 2) / 2,
                "output": "Bus" if i % 2 else "master",
                "inserts": [{"type": "compressor", "threshold_db": -20, "ratio": 3}]
                if i % 3 == 0
                else [],
                "sends": [{"to": "Verb", "level_db": -10, "pre_fader": i == 4}],
            }
        )
    return write_session(
        tmp_path,
        {
            "tail_seconds": 0.05,
            "tracks": tracks,
            "buses": [
                {"name": "Bus", "inserts": [{"type": "distortion", "drive_db": 3}]},
                {"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.5}]},
            ],
            "master": {"inserts": [{"type": "limiter", "threshold_db": -3}]},
        },
    )


@pytest.mark.parametrize("block_size", [777, 4096, 16384])
def test_worker_processes_render_the_same_samples_as_one_thread(tmp_path, rng, block_size):
    path = _many_tracks(tmp_path, rng)
    reference, _ = _render(path, block_size, threads=1)
    for threads in (2, 3):
        out, renderer = _render(path, block_size, threads=threads, processes=True)
        for key, data in reference.items():
            assert np.array_equal(out[key], data), f"{key} differs with {threads} processes"
    # Linear routes still null far below the -60 dBFS gate: the stems sum to the master input.
    stems = sum(v for k, v in out.items() if k.startswith("stem:"))
    assert np.max(np.abs(stems - out["premaster"])) < 1e-12


def test_tracks_are_shared_among_workers_and_keyed_tracks_stay_home(tmp_path, rng):
    path = _processed_session(tmp_path, rng)  # Keys has a sidechain compressor keyed by Kick
    renderer = Renderer(compile_session(load_session(path)), 1000, threads=2, processes=True)
    runner = BlockRunner(renderer.plan, 1000, renderer.graph.extent())
    workers = renderer._track_workers(runner)
    try:
        remote = sorted(key for w in workers for key in w.tracks)
        assert remote == ["track:Kick", "track:Vox"]
        assert all(len(w.tracks) == 1 for w in workers)
        # Only what something reads is shipped: Vox feeds a pre-fader send, the only input of
        # Echo, which its worker sums itself (a part: not its pre), and the master (post, with
        # the other routes); the multitrack source is not tapped.
        shipped = {(kind, key[0]) for w in workers for kind, key, _ in w.shipped}
        assert ("part", ("bus:Echo", frozenset({"track:Vox"}), False, None)) in shipped
        assert ("pre", "track:Vox") not in shipped and ("post", "track:Vox") in shipped
        assert not any(kind == "source" for kind, _ in shipped)
    finally:
        for worker in workers:
            worker.close()
    reference, _ = _render(path, threads=1)
    out, _ = _render(path, threads=2, processes=True)
    for key, data in reference.items():
        assert np.array_equal(out[key], data), key


def test_nan_in_a_worker_names_the_track_and_the_sample(tmp_path, rng):
    path = _many_tracks(tmp_path, rng, nan_track=3)
    with pytest.raises(RenderError) as info:
        _render(path, threads=2, processes=True)
    text = info.value.format()
    assert "'T3' produced NaN or Inf after its clips" in text
    assert "sample 5761" in text  # 4321 in the file, the clip starts at 0.03 s (1440 samples)


def test_corrupt_file_in_a_worker_keeps_its_error_type(tmp_path, rng):
    path = _many_tracks(tmp_path, rng)
    renderer = Renderer(compile_session(load_session(path)), 1000, threads=2, processes=True)
    # Truncated between loading and rendering: the worker finds it short while reading.
    data = (tmp_path / "t5.wav").read_bytes()
    (tmp_path / "t5.wav").write_bytes(data[: len(data) // 2])
    sinks = {tap.key: ArraySink() for tap in renderer.taps}
    with pytest.raises(AudioFileError) as info:  # exit code 2, as in one process
        renderer.run(sinks)  # type: ignore[arg-type]
    assert "t5.wav" in info.value.format()
    assert "ended early" in info.value.format()


def test_sessions_hosting_native_plugins_never_fork(tmp_path, rng):
    from stemprint.dsp.inserts import InsertSpec

    path = _many_tracks(tmp_path, rng)
    graph = compile_session(load_session(path))
    assert Renderer(graph, 1000, threads=2, processes=True)._worker_shares() != []
    # As if the bus hosted a VST3 (building a real one needs a plug-in on disk).
    vst3 = InsertSpec("vst3", {"path": "x.vst3"}, "bus 'Bus' insert 2")
    nodes = tuple(
        replace(n, inserts=(*n.inserts, vst3)) if n.kind == "bus" else n for n in graph.nodes
    )
    hosted = replace(graph, nodes=nodes)
    assert Renderer(hosted, 1000, threads=2, processes=True)._worker_shares() == []


def test_a_worker_that_dies_fails_the_render_cleanly(tmp_path, rng, monkeypatch):
    import os

    from stemprint.render.workers import TrackWorker

    path = _many_tracks(tmp_path, rng)
    # The fork inherits the patch: the worker dies before rendering anything (as if killed).
    monkeypatch.setattr(TrackWorker, "_serve", lambda self, *args: os._exit(9))
    with pytest.raises(RenderError) as info:
        _render(path, threads=2, processes=True)
    assert "render worker process died" in info.value.format()
    assert "--threads 1" in info.value.format()


def test_workers_are_forked_only_for_enough_audio(tmp_path, rng, monkeypatch):
    # By default, tracks holding less than MIN_WORKER_TRACK_SECONDS of audio (tracks x render
    # length) render on threads only; processes=True forks for any length. Same samples.
    forked: list[int] = []
    track_workers = Renderer._track_workers

    def spy(self, runner, needed=None):
        workers = track_workers(self, runner, needed)
        forked.append(len(workers))
        return workers

    monkeypatch.setattr(Renderer, "_track_workers", spy)
    path = _many_tracks(tmp_path, rng)  # 7 tracks, 0.25-0.35 s each, a tail of 0.05 s
    graph = compile_session(load_session(path))
    run_length = Renderer(graph, 1000)._run_length(graph.extent())  # with the latencies
    seconds = 7 * run_length / graph.sample_rate
    runs = {}
    for limit, processes in [(seconds * 1.001, None), (seconds * 0.999, None), (1e9, True)]:
        monkeypatch.setattr("stemprint.render.engine.MIN_WORKER_TRACK_SECONDS", limit)
        runs[(limit, processes)], _ = _render(path, threads=2, processes=processes)
    assert forked == [2, 2]  # the first run forked none (never asked), the others two each
    first, *others = runs.values()
    for other in others:
        assert all(np.array_equal(first[k], other[k]) for k in first)

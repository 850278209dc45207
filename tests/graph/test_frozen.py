"""The compiled graph is frozen: rendering (regions, full, twice) never changes it, and one graph
renders the same whatever was rendered with it before."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from stemprint import RenderOptions, compile_session, load_session, render_package
from tests.conftest import ArraySink, write_session, write_wav

RATE = 48000


def _session(tmp_path):
    rng = np.random.default_rng(21)
    write_wav(tmp_path / "a.wav", 0.2 * rng.uniform(-1, 1, (2, 4 * RATE)))
    return write_session(
        tmp_path,
        {
            "tail_seconds": 0.5,
            "tracks": [
                {
                    "name": "A",
                    "clips": [{"file": "a.wav"}],
                    "inserts": [{"type": "reverb", "room_size": 0.3}],
                }
            ],
            "regions": [{"name": "R", "start": 1.0, "end": 2.0}],
        },
    )


def test_one_graph_renders_a_region_then_the_whole_session_right(tmp_path):
    loaded = load_session(_session(tmp_path))
    graph = compile_session(loaded)
    nodes = graph.nodes
    before = [(n.latency_samples, n.inputs) for n in nodes], graph.length_samples
    region = render_package(
        loaded, tmp_path / "region", RenderOptions(region="R", verify=False), graph=graph
    )
    full = render_package(loaded, tmp_path / "full", RenderOptions(verify=False), graph=graph)
    assert region.manifest["length_samples"] == RATE + RATE // 2
    assert full.manifest["length_samples"] == 4 * RATE + RATE // 2  # 216,000, not 72,000
    assert sf.info(str(tmp_path / "full" / "mix.wav")).frames == 4 * RATE + RATE // 2
    assert graph.nodes is nodes
    assert ([(n.latency_samples, n.inputs) for n in nodes], graph.length_samples) == before
    render_package(loaded, tmp_path / "fresh", RenderOptions(verify=False))
    full_mix = (tmp_path / "full" / "mix.wav").read_bytes()
    assert full_mix == (tmp_path / "fresh" / "mix.wav").read_bytes()


def test_graph_nodes_and_edges_cannot_be_changed(tmp_path):
    graph = compile_session(load_session(_session(tmp_path)))
    node = graph.nodes[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.gain_linear = 2.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph.end_samples = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        node.automation["gain_db"] = None  # type: ignore[index]
    assert isinstance(graph.nodes, tuple) and isinstance(node.inputs, tuple)


def test_a_renderer_renders_twice_the_same(tmp_path):
    from stemprint.render.engine import Renderer

    graph = compile_session(load_session(_session(tmp_path)))
    renderer = Renderer(graph, 1000)
    runs = []
    for _ in range(2):
        sinks = {t.key: ArraySink() for t in renderer.taps}
        renderer.run(sinks)  # type: ignore[arg-type]
        runs.append(sinks["mix"].data)
    assert np.array_equal(runs[0], runs[1])  # no plug-in state carried over

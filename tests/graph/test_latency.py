"""Latency compensation across the whole graph, in the style of pedalboard's latency tests:
sample rate × block size × latency × topology. A latent insert is modelled exactly by a
``sample_delay`` that declares its delay as latency (``latency_samples``), optionally followed by a
pedalboard plug-in (fed in fixed chunks, which adds its own compensated delay)."""

from __future__ import annotations

import numpy as np
import pytest

from stemprint.dsp.inserts import CHUNK_SAMPLES
from tests.conftest import render_arrays, write_session, write_wav

IMPULSE_AT = 1000


def _latent(latency: int, with_pedalboard: bool) -> list[dict]:
    inserts: list[dict] = [
        {"type": "sample_delay", "delay_samples": latency, "latency_samples": latency}
    ]
    if with_pedalboard:
        inserts.append({"type": "gain", "gain_db": 0.0})
    return inserts


def _source(tmp_path, sample_rate: int) -> np.ndarray:
    x = np.zeros((1, 3000))
    x[0, IMPULSE_AT] = 0.5
    x[0, 2000:2200] = 0.25 * np.random.default_rng(7).uniform(-1, 1, 200)
    write_wav(tmp_path / "a.wav", x, sample_rate)
    write_wav(tmp_path / "b.wav", x, sample_rate)
    return x


def _topology(name: str, latency: int, pb: bool) -> dict:
    a = {"name": "A", "clips": [{"file": "a.wav"}]}
    b = {"name": "B", "clips": [{"file": "b.wav"}]}
    if name == "track":
        a["inserts"] = _latent(latency, pb)
        return {"tracks": [a, b]}
    if name == "bus":
        a["output"] = "Bus"
        return {"tracks": [a, b], "buses": [{"name": "Bus", "inserts": _latent(latency, pb)}]}
    if name == "return":
        a["sends"] = [{"to": "Ret", "level_db": -6}]
        return {"tracks": [a, b], "buses": [{"name": "Ret", "inserts": _latent(latency, pb)}]}
    if name == "parallel":  # a dry path and an inverted latent path of the same signal: null
        a["output"] = "Dry"
        a["sends"] = [{"to": "Wet", "level_db": 0.0}]
        return {
            "tracks": [a],
            "buses": [
                {"name": "Dry"},
                {"name": "Wet", "inserts": _latent(latency, pb), "invert_polarity": True},
            ],
        }
    if name == "pre_fader_send":
        a["gain_db"] = -6.0
        a["inserts"] = _latent(latency, pb)
        a["sends"] = [{"to": "Ret", "level_db": -3, "pre_fader": True}]
        return {
            "tracks": [a, b],
            "buses": [{"name": "Ret", "inserts": _latent(latency // 2, pb)}],
        }
    raise AssertionError(name)


TOPOLOGIES = ["track", "bus", "return", "parallel", "pre_fader_send"]


@pytest.mark.parametrize("sample_rate", [44100, 48000, 96000])
@pytest.mark.parametrize("block_size", [32, 100, 1000, 4096, 65536])
@pytest.mark.parametrize("latency", [0, 1, 63, 64, 1000, 4096])
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_impulses_align_in_every_output(tmp_path, sample_rate, block_size, latency, topology):
    _source(tmp_path, sample_rate)
    with_pb = latency in (63, 1000)  # some cases also pass through a chunked pedalboard stage
    path = write_session(
        tmp_path,
        {"sample_rate": sample_rate, **_topology(topology, latency, with_pb)},
    )
    out, graph = render_arrays(path, block_size=block_size)
    assert all(data.shape == (2, graph.length_samples) for data in out.values())
    if topology == "parallel":
        residual = np.max(np.abs(out["mix"]))
        assert residual == 0 or 20 * np.log10(residual) < -120
        return
    for key, data in out.items():
        peak_at = int(np.argmax(np.abs(data[0, :1500])))
        assert peak_at == IMPULSE_AT, f"{key}: impulse at {peak_at}, expected {IMPULSE_AT}"
    stems = sum(v for k, v in out.items() if k.startswith("stem:"))
    residual = np.max(np.abs(stems - out["premaster"]))
    assert residual == 0 or 20 * np.log10(residual) < -120


def test_latency_reported_per_route(tmp_path):
    _source(tmp_path, 48000)
    path = write_session(tmp_path, _topology("bus", 64, True))
    out, graph = render_arrays(path)
    nodes = graph.by_key
    assert (
        nodes["bus:Bus"].chain_latency_samples == 64 + CHUNK_SAMPLES
    )  # declared + one fixed-chunk stage
    assert nodes["track:B"].chain_latency_samples == 0
    assert graph.master.input_latency_samples == 64 + CHUNK_SAMPLES
    edge_b = next(e for e in graph.master.inputs if e.source == "track:B")
    assert edge_b.delay_samples == 64 + CHUNK_SAMPLES  # B is delayed to meet the latent bus


def test_uncompensated_sample_delay_moves_audio(tmp_path):
    _source(tmp_path, 48000)
    path = write_session(
        tmp_path,
        {
            "tail_seconds": 0.01,
            "tracks": [
                {
                    "name": "A",
                    "clips": [{"file": "a.wav"}],
                    "inserts": [{"type": "sample_delay", "delay_samples": 26}],
                }
            ],
        },
    )
    out, _ = render_arrays(path)
    assert int(np.argmax(np.abs(out["mix"][0, :1500]))) == IMPULSE_AT + 26


def test_measure_latency_finds_undeclared_latency(tmp_path):
    from typer.testing import CliRunner

    from stemprint.cli.main import app

    _source(tmp_path, 48000)
    path = write_session(
        tmp_path,
        {
            "tracks": [
                {
                    "name": "A",
                    "clips": [{"file": "a.wav"}],
                    "inserts": [{"type": "sample_delay", "delay_samples": 26}],
                },
                {
                    "name": "B",
                    "clips": [{"file": "b.wav"}],
                    "inserts": [
                        {"type": "sample_delay", "delay_samples": 53, "latency_samples": 53},
                        {"type": "gain", "gain_db": -3},
                    ],
                },
            ]
        },
    )
    result = CliRunner().invoke(app, ["validate", str(path), "--measure-latency"])
    assert result.exit_code == 0, result.output
    assert "track 'A'" in result.output and "differs by +26 samples" in result.output
    assert "latency_samples: 26" in result.output
    assert "track 'B'" in result.output and "latency ok" in result.output

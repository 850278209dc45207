"""The package measured while written gives the report reading it back gives."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from stemprint.analysis import verify as verify_module
from stemprint.analysis.live import LiveFile, LiveMeasurement
from stemprint.analysis.verify import verify_package
from stemprint.errors import RenderError
from stemprint.export.package import RenderOptions, render_package
from stemprint.model.load import load_session
from stemprint.render.workers import fork_available
from tests.conftest import write_session, write_wav


def _session(tmp_path, rng, tail=None):
    for name, channels in (("a", 1), ("b", 2), ("c", 1)):
        write_wav(tmp_path / f"{name}.wav", 0.08 * rng.uniform(-1, 1, (channels, 70000)))
    delivery = {"tail": tail} if tail else {}
    return write_session(
        tmp_path,
        {
            "tail_seconds": 0.4,
            "delivery": delivery,
            "tracks": [
                {"name": "Kick", "clips": [{"file": "a.wav"}], "output": "Drums"},
                {"name": "Keys", "clips": [{"file": "b.wav", "start_seconds": 0.1}], "pan": 0.4},
                {
                    "name": "Vox",
                    "clips": [{"file": "c.wav", "start_seconds": 0.2}],
                    "sends": [{"to": "Verb", "level_db": -3}],
                },
            ],
            "buses": [
                {"name": "Drums", "inserts": [{"type": "compressor", "threshold_db": -20}]},
                {"name": "Verb", "inserts": [{"type": "reverb", "wet_level": 1.0}]},
            ],
            "master": {"inserts": [{"type": "compressor", "threshold_db": -24, "ratio": 4}]},
        },
    )


def _comparable(report: dict) -> dict:
    report = dict(report)
    report.pop("elapsed_seconds", None)
    report["package"] = "."
    for entry in report["files"]:
        entry["path"] = entry["label"]
    for null in report["nulls"]:
        if not null["decides_verdict"]:  # the render does not diagnose the informational null
            for key in ("diagnoses", "excerpt_start_seconds", "excerpt_seconds"):
                null.pop(key, None)
            for key in ("dynamics_drop_db", "stems"):
                null.pop(key, None)
    report["findings"] = [f for f in report["findings"] if f.get("file") != "mix.wav"]
    return report


@pytest.mark.parametrize("bit_depth", ["16", "24", "32f"])
def test_render_verification_equals_reading_the_package_back(tmp_path, rng, monkeypatch, bit_depth):
    session = _session(tmp_path, rng)

    def no_read_back(*args, **kwargs):
        raise AssertionError("the render read its package back instead of measuring it live")

    monkeypatch.setattr(verify_module, "_measure", no_read_back)
    out = tmp_path / "out"
    render_package(load_session(session), out, RenderOptions(bit_depth=bit_depth))
    monkeypatch.undo()
    live = json.loads((out / "verification.json").read_text())
    read_back = verify_package([out]).to_dict()
    assert live["passed"] and read_back["passed"]
    # Every level of every file, and the null numbers, are the same to the last digit.
    assert _comparable(live)["files"] == _comparable(read_back)["files"]
    assert _comparable(live)["nulls"] == _comparable(read_back)["nulls"]
    verdict = next(n for n in live["nulls"] if n["decides_verdict"])
    assert verdict["reference"] == "premaster.wav"
    assert verdict["residual_peak_dbfs"] < {"16": -70, "24": -120, "32f": -130}[bit_depth]


def test_live_measurement_with_until_silent_tail(tmp_path, rng):
    session = _session(
        tmp_path, rng, tail={"mode": "until_silent", "threshold_db": -70, "max_seconds": 3}
    )
    out = tmp_path / "out"
    render_package(load_session(session), out)
    live = json.loads((out / "verification.json").read_text())
    read_back = verify_package([out]).to_dict()
    assert _comparable(live)["files"] == _comparable(read_back)["files"]
    assert _comparable(live)["nulls"] == _comparable(read_back)["nulls"]


def test_live_measurement_reblocks_any_block_sizes(tmp_path, rng):
    x = rng.uniform(-0.5, 0.5, (2, 200_001))
    files = [
        LiveFile(tmp_path / "mix.wav", 48000, 2, 1.0, "mix"),
        LiveFile(tmp_path / "s1.wav", 48000, 2, 1.0, "stem"),
        LiveFile(tmp_path / "s2.wav", 48000, 2, 1.0, "stem"),
    ]
    results = []
    for step in (1000, 65536, 77777):
        live = LiveMeasurement(files)
        for i in range(0, x.shape[1], step):
            block = x[:, i : i + step]
            live.monitor(files[0].path)(block)
            live.monitor(files[1].path)(block * 0.25)
            live.monitor(files[2].path)(block * 0.75)
        levels = live.levels()
        results.append((levels, live.accumulators[str(files[0].path.resolve())]))
    for levels, accumulator in results[1:]:
        assert levels == results[0][0]
        assert accumulator.residual_peak == results[0][1].residual_peak
    assert results[0][1].residual_peak < 1e-15
    assert results[0][1].frames == 200_001


def test_live_measurement_refuses_unequal_lengths(tmp_path):
    files = [
        LiveFile(tmp_path / "mix.wav", 48000, 1, 1.0, "mix"),
        LiveFile(tmp_path / "s.wav", 48000, 1, 1.0, "stem"),
    ]
    live = LiveMeasurement(files)
    live.monitor(files[0].path)(np.zeros((1, 10)))
    live.monitor(files[1].path)(np.zeros((1, 12)))
    with pytest.raises(ValueError, match="differ in length"):
        live.finish()


def test_role_relations_and_file_levels(tmp_path, rng):
    """Without ``sums``: the stems against each pre-master, then mix; levels by disk layout."""
    files = [
        LiveFile(tmp_path / "mix.wav", 48000, 2, 1.0, "mix"),
        LiveFile(tmp_path / "premaster.wav", 48000, 2, 1.0, "premaster"),
        LiveFile(tmp_path / "a.wav", 48000, 1, 1.0, "stem"),
        LiveFile(tmp_path / "b.wav", 48000, 2, 1.0, "stem", mono_if_identical=True),
        LiveFile(tmp_path / "dry.wav", 48000, 2, 1.0, "stem_dry"),
    ]
    live = LiveMeasurement(files)
    keys = [str(f.path.resolve()) for f in files]
    assert [(r.parts, r.reference) for r in live.relations] == [
        ((keys[2], keys[3]), keys[1]),
        ((keys[2], keys[3]), keys[0]),
    ]
    assert live.accumulators == {r.reference: r.accumulator for r in live.relations}
    a = rng.uniform(-0.5, 0.5, (1, 5000))
    b = np.tile(rng.uniform(-0.5, 0.5, (1, 5000)), (2, 1))
    for path, block in zip([f.path for f in files], [a + b, a + b, a, b, 0.5 * b], strict=True):
        live.monitor(path)(block)
    assert live.relations[0].accumulator.residual_peak == 0.0  # mono a on both channels
    assert live.file_levels(keys[3], 1) == live.file_levels(keys[3], 1)  # cached, mono meter
    assert live.file_levels(keys[3], 1).sample_peak_dbfs_per_channel == [
        pytest.approx(20 * np.log10(np.abs(b[0]).max()))
    ]
    assert live.file_levels(keys[4], 1) is None  # not measured as mono: read it back
    assert live.file_levels(str(tmp_path / "other.wav"), 2) is None


def _surround_files(tmp_path):
    return [
        LiveFile(tmp_path / "mix.wav", 48000, 2, 1.0, "mix"),
        LiveFile(tmp_path / "premaster.wav", 48000, 2, 1.0, "premaster"),
        LiveFile(tmp_path / "a.wav", 48000, 1, 1.0, "stem"),
        LiveFile(tmp_path / "b.wav", 48000, 2, 1.0, "stem", mono_if_identical=True),
        LiveFile(tmp_path / "film.wav", 48000, 6, 1.0, "stem_dry"),
    ]


def _feed(live, files, rng_seed=5, frames=150_001, step=16384):
    rng = np.random.default_rng(rng_seed)
    a = rng.uniform(-0.5, 0.5, (1, frames))
    b = np.tile(rng.uniform(-0.5, 0.5, (1, frames)), (2, 1))
    film = rng.uniform(-0.3, 0.3, (6, frames))
    signals = [a + b, a + b, a, b, film]
    for i in range(0, frames, step):
        for f, x in zip(files, signals, strict=True):
            live.monitor(f.path)(x[:, i : i + step])


@pytest.mark.skipif(not fork_available(), reason="meter processes need os.fork (Linux)")
def test_meter_processes_measure_exactly_what_the_thread_measures(tmp_path):
    files = _surround_files(tmp_path)
    keys = [str(f.path.resolve()) for f in files]
    runs = []
    for processes in (0, 1, 2, 3):
        live = LiveMeasurement(files, fold_down=True, processes=processes)
        assert len(live._processes) == min(processes, len(files))
        _feed(live, files)
        runs.append(
            (
                live.levels(),
                live.file_levels(keys[3], 1),
                live.fold_levels(keys[4]),
                [
                    live.gating_blocks(k, f.channels).tolist()
                    for k, f in zip(keys, files, strict=True)
                ],
                live.gating_blocks(keys[4], 6, fold=True).tolist(),
                live.gating_blocks(keys[3], 1).tolist(),
                [vars(r.accumulator) for r in live.relations],
                [
                    live.hop_energies(k, f.channels).tolist()
                    for k, f in zip(keys, files, strict=True)
                ],
                live.hop_energies(keys[3], 1).tolist(),
            )
        )
        assert all(p._closed for p in live._processes)
    for run in runs[1:]:
        assert run == runs[0]  # every level, gating block and null number, to the last bit
    assert runs[0][1] is not None and runs[0][2] is not None
    assert runs[0][6][0]["residual_peak"] == 0.0
    assert [len(h) for h in runs[0][7]] == [150_001 // 4800] * 5  # every complete 100 ms hop


def test_live_hops_are_the_report_s_own_loudness_hops(tmp_path):
    """The report draws the render's hops; reading the file back gives the same values."""
    from stemprint.analysis.meters import HopEnergies

    files = _surround_files(tmp_path)
    keys = [str(f.path.resolve()) for f in files]
    live = LiveMeasurement(files)
    _feed(live, files, step=7001)
    rng = np.random.default_rng(5)
    a = rng.uniform(-0.5, 0.5, (1, 150_001))
    b = np.tile(rng.uniform(-0.5, 0.5, (1, 150_001)), (2, 1))
    film = rng.uniform(-0.3, 0.3, (6, 150_001))
    for key, channels, x in ((keys[2], 1, a), (keys[4], 6, film), (keys[3], 1, b[:1])):
        read_back = HopEnergies(48000, channels)
        hops = read_back.feed(x[:, :65536]) + read_back.feed(x[:, 65536:])
        assert live.hop_energies(key, channels).tolist() == hops  # bit for bit
    assert live.hop_energies(keys[4], 2) is None  # not measured as stereo
    assert live.hop_energies(str(tmp_path / "other.wav"), 2) is None


@pytest.mark.skipif(not fork_available(), reason="meter processes need os.fork (Linux)")
def test_a_meter_process_that_dies_fails_the_measurement(tmp_path):
    files = _surround_files(tmp_path)
    live = LiveMeasurement(files, processes=2)
    os.kill(live._processes[0].pid, signal.SIGKILL)
    with pytest.raises(RenderError, match="meter process died"):
        _feed(live, files)
        live.finish()
    live.close()
    assert all(p._closed for p in live._processes)

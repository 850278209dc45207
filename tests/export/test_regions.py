"""Regions: a range of the timeline on its own, cutdowns, seamless loops, the region matrix."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from stemprint.export.package import RenderOptions, render_package, render_regions
from stemprint.model.load import load_session
from tests.conftest import write_session, write_wav

RATE = 48000


def _read(folder, manifest, role):
    entry = next(f for f in manifest["files"] if f["role"] == role)
    return entry, sf.read(str(folder / entry["path"]), always_2d=True)[0].T


def test_region_equals_the_full_render_there(tmp_path):
    rng = np.random.default_rng(8)
    write_wav(tmp_path / "a.wav", 0.2 * rng.uniform(-1, 1, (2, 4 * RATE)))
    path = write_session(
        tmp_path,
        {
            "tail_seconds": 0.25,
            "tempo_bpm": 120,
            "tracks": [{"name": "A", "clips": [{"file": "a.wav"}], "gain_db": -3}],
            "regions": [
                {"name": "Verse", "start": "2.1.0", "end": "2.3.0"},
                {"name": "Cut", "start": 0.5, "end": 1.5, "fade_out_seconds": 0.25},
            ],
        },
    )
    loaded = load_session(path)
    full = render_package(loaded, tmp_path / "full", RenderOptions(bit_depth="32f")).manifest
    _, mix = _read(tmp_path / "full", full, "mix")
    verse = render_package(
        loaded, tmp_path / "verse", RenderOptions(bit_depth="32f", region="Verse")
    ).manifest
    entry, part = _read(tmp_path / "verse", verse, "mix")
    assert entry["path"] == "mix - Verse.wav"
    start, length = 2 * RATE, RATE  # bar 2 at 120 bpm, two beats
    assert verse["region"] == {
        "name": "Verse",
        "start_sample": start,
        "length_samples": length,
        "loop": False,
        "fade_out_samples": 0,
        "preroll_samples": start,  # warm: what plays before the region feeds its state
    }
    assert part.shape[1] == length + RATE // 4  # region + tail
    np.testing.assert_array_equal(part, mix[:, start : start + length + RATE // 4])
    assert all(" - Verse" in f["path"] for f in verse["files"])
    cut = render_package(
        loaded, tmp_path / "cut", RenderOptions(bit_depth="32f", region="Cut")
    ).manifest
    _, data = _read(tmp_path / "cut", cut, "mix")
    assert data.shape[1] == RATE  # exactly the region: no tail
    fade = 1 - np.arange(RATE // 4) / (RATE // 4)
    np.testing.assert_allclose(
        data[:, -RATE // 4 :], mix[:, RATE + RATE // 4 : int(1.5 * RATE)] * fade, atol=1e-7
    )


def test_loop_region_plays_back_to_back_like_the_session_looping(tmp_path):
    rng = np.random.default_rng(9)
    hit = np.zeros((1, RATE // 2))
    hit[0, :2000] = 0.5 * rng.uniform(-1, 1, 2000)
    write_wav(tmp_path / "hit.wav", hit)
    bus = {
        "name": "Echo",
        "inserts": [{"type": "delay", "delay_seconds": 0.1, "feedback": 0.5, "mix": 1.0}],
    }
    loop = write_session(
        tmp_path,
        {
            "tail_seconds": 2.0,
            "tracks": [
                {
                    "name": "Hit",
                    "clips": [{"file": "hit.wav", "start_seconds": 1.0}],
                    "sends": [{"to": "Echo"}],
                }
            ],
            "buses": [bus],
            "regions": [{"name": "Loop", "start": 1.0, "end": 2.0, "loop": True}],
        },
        name="loop.yaml",
    )
    manifest = render_package(
        load_session(loop), tmp_path / "loop", RenderOptions(bit_depth="32f", region="Loop")
    ).manifest
    _, looped = _read(tmp_path / "loop", manifest, "mix")
    assert looped.shape[1] == RATE  # exactly one pass
    # The session looping that region: the clip repeated every second, rendered long.
    repeats = write_session(
        tmp_path,
        {
            "tail_seconds": 0.0,
            "tracks": [
                {
                    "name": "Hit",
                    "clips": [{"file": "hit.wav", "start_seconds": float(k)} for k in range(8)],
                    "sends": [{"to": "Echo"}],
                }
            ],
            "buses": [bus],
        },
        name="repeats.yaml",
    )
    long = render_package(
        load_session(repeats), tmp_path / "long", RenderOptions(bit_depth="32f")
    ).manifest
    _, steady = _read(tmp_path / "long", long, "mix")
    period = steady[:, 5 * RATE : 6 * RATE]  # well after the first passes
    residual = np.max(np.abs(period - looped))
    assert residual == 0 or 20 * np.log10(residual) < -100


def test_all_regions_matrix(tmp_path):
    write_wav(tmp_path / "a.wav", 0.1 * np.ones((1, 2 * RATE)))
    path = write_session(
        tmp_path,
        {
            "tracks": [{"name": "A", "clips": [{"file": "a.wav"}]}],
            "regions": [
                {"name": "One", "start": 0.0, "end": 1.0},
                {"name": "Two", "start": 1.0, "end": 2.0},
            ],
        },
    )
    results = render_regions(load_session(path), tmp_path / "out")
    assert [r.out_dir.name for r in results] == ["One", "Two"]
    assert (tmp_path / "out" / "One" / "mix - One.wav").exists()
    assert (tmp_path / "out" / "Two" / "stems" / "A - Two.wav").exists()
    lengths = {sf.info(str(p)).frames for p in (tmp_path / "out").rglob("*.wav")}
    assert lengths == {RATE}

"""Synthetic DAWprojects rendered through the CLI against an independent numpy reference.

Each case writes one project (one feature) with seeded audio, renders it with
``stemprint render PROJECT -o OUT --bit-depth 32f`` and compares ``mix.wav`` with a reference
computed here from the project's own semantics (positions through the tempo map, linear gains,
the assumed pan laws), not from the imported session. Residual ≤ −120 dBFS unless a case says
why it cannot be (a densified gain-linear ramp: 0.05 dB; a resampled file).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.importers.dawproject_synth import RATE, Project, tone, wav_bytes

runner = CliRunner()
TAIL = 3.0  # the session default: the importer does not choose a tail
EXACT_DBFS = -120.0


def _render(project_path: Path, tmp_path: Path, *extra: str) -> np.ndarray:
    out = tmp_path / "out"
    args = [
        "render",
        str(project_path),
        "-o",
        str(out),
        "--bit-depth",
        "32f",
        "-q",
        "--no-verify",
        *extra,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data, rate = sf.read(str(out / "mix.wav"), dtype="float64", always_2d=True)
    assert rate == RATE
    return data.T


def _buffer(seconds: float) -> np.ndarray:
    return np.zeros((2, round(seconds * RATE)))


def _place(
    mix: np.ndarray,
    signal: np.ndarray,
    start_s: float,
    gains=(1.0, 1.0),
    offset_s: float = 0.0,
    duration_s: float | None = None,
    envelope: np.ndarray | None = None,
) -> int:
    """Add ``signal`` (mono to both sides) at ``round(start·rate)``; returns its end sample."""
    start, offset = round(start_s * RATE), round(offset_s * RATE)
    n = signal.shape[1] - offset if duration_s is None else round(duration_s * RATE)
    part = signal[:, offset : offset + n]
    part = np.vstack([part, part]) if part.shape[0] == 1 else part
    if envelope is not None:
        part = part * envelope
    mix[0, start : start + n] += gains[0] * part[0]
    mix[1, start : start + n] += gains[1] * part[1]
    return start + n


def _residual_dbfs(rendered: np.ndarray, expected: np.ndarray) -> float:
    assert rendered.shape == expected.shape, (rendered.shape, expected.shape)
    peak = float(np.max(np.abs(rendered - expected)))
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def _balance(pan: float) -> tuple[float, float]:
    return (math.cos(pan * math.pi / 2), 1.0) if pan > 0 else (1.0, math.cos(-pan * math.pi / 2))


# -- cases: each returns (project file, expected mix) ------------------------------------

Case = Callable[[Path], tuple[Path, np.ndarray]]


def case_positions_seconds(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    project.lanes.set("timeUnit", "seconds")
    track = project.track("A")
    audio = tone(0.5, seed=1)
    project.raw_clip(
        track, project.add_media("a.wav", audio), audio, time=0.25, duration=0.3, playStart="0.1"
    )
    mix = _buffer(0.55 + TAIL)
    _place(mix, audio, 0.25, offset_s=0.1, duration_s=0.3)
    return project.write(tmp / "p.dawproject"), mix


def case_positions_beats_bitwig_wrap(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project(tempo=100.0)
    track = project.track("A")
    audio = tone(0.5, channels=2, seed=2)
    path = project.add_media("a.wav", audio)
    project.bitwig_clip(
        track, path, audio, time_beats=1.0, duration_beats=0.5 * 100 / 60, tempo=100.0
    )
    mix = _buffer(0.6 + 0.5 + TAIL)
    _place(mix, audio, 0.6)
    return project.write(tmp / "p.dawproject"), mix


def case_tempo_ramp(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project(tempo=120.0)
    project.tempo_automation([(0.0, 120.0, "linear"), (8.0, 240.0, "hold")])
    track = project.track("A")
    audio = tone(0.5, seed=3)
    project.raw_clip(track, project.add_media("a.wav", audio), audio, time=2.0, duration=1.0)
    k = 15.0  # bpm per beat

    def seconds(beat: float) -> float:
        return 60.0 / k * math.log((120.0 + k * beat) / 120.0)

    start, end = seconds(2.0), seconds(3.0)
    mix = np.zeros((2, round(start * RATE) + round((end - start) * RATE) + round(TAIL * RATE)))
    _place(mix, audio, start, duration_s=end - start)
    return project.write(tmp / "p.dawproject"), mix


def case_muted_clip_and_fades(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    project.lanes.set("timeUnit", "seconds")
    track = project.track("A")
    audio = tone(0.5, seed=4)
    path = project.add_media("a.wav", audio)
    project.raw_clip(
        track,
        path,
        audio,
        time=0.0,
        duration=0.5,
        fadeTimeUnit="seconds",
        fadeInTime="0.05",
        fadeOutTime="0.1",
    )
    project.raw_clip(track, path, audio, time=0.6, duration=0.5, enable="false")
    n_in, n_out, n = round(0.05 * RATE), round(0.1 * RATE), audio.shape[1]
    envelope = np.ones(n)
    envelope[:n_in] = np.arange(n_in) / n_in
    envelope[n - n_out :] = 1.0 - np.arange(n_out) / n_out
    mix = _buffer(0.5 + TAIL)
    _place(mix, audio, 0.0, envelope=envelope)
    return project.write(tmp / "p.dawproject"), mix


def case_crossfade(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    project.lanes.set("timeUnit", "seconds")
    track = project.track("A")
    a, b = tone(0.5, seed=5), tone(0.6, seed=6)
    project.raw_clip(track, project.add_media("a.wav", a), a, time=0.0, duration=0.5)
    project.raw_clip(
        track,
        project.add_media("b.wav", b),
        b,
        time=0.5,
        duration=0.4,
        playStart="0.2",
        fadeTimeUnit="seconds",
        fadeInTime="-0.1",
    )
    n_x = round(0.1 * RATE)
    envelope = np.ones(round(0.5 * RATE))
    envelope[:n_x] = np.sin(np.pi / 2 * (np.arange(n_x) / n_x))
    mix = _buffer(0.9 + TAIL)
    _place(mix, a, 0.0)
    _place(mix, b, 0.4, offset_s=0.1, duration_s=0.5, envelope=envelope)
    return project.write(tmp / "p.dawproject"), mix


def case_loop_unrolled(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    project.lanes.set("timeUnit", "seconds")
    track = project.track("A")
    audio = tone(0.5, seed=7)
    project.raw_clip(
        track,
        project.add_media("a.wav", audio),
        audio,
        time=0.0,
        duration=0.7,
        playStart="0.1",
        loopStart="0.1",
        loopEnd="0.3",
    )
    mix = _buffer(0.7 + TAIL)
    for k, length in ((0, 0.2), (1, 0.2), (2, 0.2), (3, 0.1)):
        _place(mix, audio, 0.2 * k, offset_s=0.1, duration_s=length)
    return project.write(tmp / "p.dawproject"), mix


def case_fader_pan_mute(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    stereo = project.track("Stereo", volume=0.5, pan=0.75)
    mono = project.track("Mono", pan=0.25, volume=2.0)
    muted = project.track("Muted", mute=True)
    a, b = tone(0.5, channels=2, seed=8), tone(0.5, seed=9)
    for strip, audio, name in ((stereo, a, "a"), (mono, b, "b"), (muted, a, "c")):
        project.raw_clip(
            strip, project.add_media(f"{name}.wav", audio), audio, time=0.0, duration=1.0
        )  # 1 beat = 0.5 s at 120 bpm
    mix = _buffer(0.5 + TAIL)
    left, right = _balance(0.5)
    _place(mix, a, 0.0, gains=(0.5 * left, 0.5 * right))
    left, right = _balance(-0.5)  # a mono source: both sides at unity, then the balance
    _place(mix, b, 0.0, gains=(2.0 * left, 2.0 * right))
    return project.write(tmp / "p.dawproject"), mix


def case_groups_both_layouts(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    group = project.track("Drums", content="tracks", role="master", volume=0.5)
    kick = project.track("Kick", parent=group, destination=group, volume=0.8)
    folder = project.track("Keys", content="tracks", channel=False)
    keys = project.track("Keys bus", parent=folder, role="master", volume=0.25)
    piano = project.track("Piano", parent=folder, destination=keys)
    a, b = tone(0.5, channels=2, seed=10), tone(0.5, channels=2, seed=11)
    project.raw_clip(kick, project.add_media("a.wav", a), a, time=0.0, duration=1.0)
    project.raw_clip(piano, project.add_media("b.wav", b), b, time=0.0, duration=1.0)
    mix = _buffer(0.5 + TAIL)
    _place(mix, a, 0.0, gains=(0.4, 0.4))
    _place(mix, b, 0.0, gains=(0.25, 0.25))
    return project.write(tmp / "p.dawproject"), mix


def case_sends_pre_post_pan(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    fx = project.track("FX", role="effect", volume=0.8)
    post = project.track("Post", volume=0.5)
    pre = project.track("Pre", volume=0.25)
    project.send(post, fx, 0.5, kind="post", pan=0.25)
    project.send(pre, fx, 0.5, kind="pre")
    project.send(fx, fx, 0.0, enable=False)
    a, b = tone(0.5, channels=2, seed=12), tone(0.5, channels=2, seed=13)
    project.raw_clip(post, project.add_media("a.wav", a), a, time=0.0, duration=1.0)
    project.raw_clip(pre, project.add_media("b.wav", b), b, time=0.0, duration=1.0)
    mix = _buffer(0.5 + TAIL)
    left, right = _balance(-0.5)
    _place(mix, a, 0.0, gains=(0.5 + 0.5 * 0.5 * left * 0.8, 0.5 + 0.5 * 0.5 * right * 0.8))
    _place(mix, b, 0.0, gains=(0.25 + 0.5 * 0.8, 0.25 + 0.5 * 0.8))
    return project.write(tmp / "p.dawproject"), mix


def case_master_gain(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    project.master.channel.find("Volume").set("value", "0.5")
    track = project.track("A")
    audio = tone(0.5, channels=2, seed=14)
    project.raw_clip(track, project.add_media("a.wav", audio), audio, time=0.0, duration=1.0)
    mix = _buffer(0.5 + TAIL)
    _place(mix, audio, 0.0, gains=(0.5, 0.5))
    return project.write(tmp / "p.dawproject"), mix


def case_master_mute(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    project.master.channel.find("Mute").set("value", "true")
    track = project.track("A")
    audio = tone(0.5, channels=2, seed=15)
    project.raw_clip(track, project.add_media("a.wav", audio), audio, time=0.0, duration=1.0)
    return project.write(tmp / "p.dawproject"), _buffer(0.5 + TAIL)


def case_hold_volume_and_linear_pan_automation(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    track = project.track("A")
    audio = tone(1.0, channels=2, seed=16)
    project.raw_clip(track, project.add_media("a.wav", audio), audio, time=0.0, duration=2.0)
    project.points(track, track.volume, [(0.0, 1.0, "hold"), (0.5, 0.25, "hold")])
    project.points(track, track.pan, [(0.25, 0.5, "linear"), (0.75, 1.0, "linear")])
    n = audio.shape[1]
    t = np.arange(n)
    gain = np.where(t >= round(0.5 * RATE), 0.25, 1.0)
    s0, s1 = round(0.25 * RATE), round(0.75 * RATE)
    pan = np.clip((t - s0) / (s1 - s0), 0.0, 1.0)
    envelope = np.vstack([gain * np.cos(pan * np.pi / 2), gain])
    mix = _buffer(1.0 + TAIL)
    _place(mix, audio, 0.0, envelope=envelope)
    return project.write(tmp / "p.dawproject"), mix


def case_external_media_relative(tmp: Path) -> tuple[Path, np.ndarray]:
    project = Project()
    track = project.track("A")
    audio = tone(0.5, seed=17)
    (tmp / "media").mkdir(parents=True)
    (tmp / "media" / "ext.wav").write_bytes(wav_bytes(audio))
    project.raw_clip(track, "media/ext.wav", audio, time=0.0, duration=1.0, external=True)
    mix = _buffer(0.5 + TAIL)
    _place(mix, audio, 0.0)
    return project.write(tmp / "p.dawproject"), mix


CASES: dict[str, Case] = {
    name.removeprefix("case_"): fn for name, fn in globals().items() if name.startswith("case_")
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_matches_reference(tmp_path, name):
    path, expected = CASES[name](tmp_path)
    rendered = _render(path, tmp_path)
    assert _residual_dbfs(rendered, expected) <= EXACT_DBFS


def test_gain_linear_volume_ramp_within_005_db(tmp_path):
    project = Project()
    track = project.track("A")
    audio = 0.5 * np.ones((2, RATE))
    project.raw_clip(track, project.add_media("a.wav", audio), audio, time=0.0, duration=2.0)
    project.points(
        track, track.volume, [(0.0, 1.0, "linear"), (1.0, 0.01, "linear")], unit="linear"
    )
    rendered = _render(project.write(tmp_path / "p.dawproject"), tmp_path)
    t = np.arange(RATE) / RATE
    exact = 0.5 * (1.0 + (0.01 - 1.0) * t)
    error_db = 20 * np.log10(rendered[0, :RATE] / exact)
    assert np.max(np.abs(error_db)) <= 0.05
    assert np.all(rendered[:, RATE:] == 0)


def test_media_by_basename_under_media_root(tmp_path):
    project = Project()
    track = project.track("A")
    audio = tone(0.5, seed=18)
    (tmp_path / "library" / "deep").mkdir(parents=True)
    (tmp_path / "library" / "deep" / "gone.wav").write_bytes(wav_bytes(audio))
    project.raw_clip(
        track, "/nowhere/at/all/gone.wav", audio, time=0.0, duration=1.0, external=True
    )
    path = project.write(tmp_path / "p.dawproject")
    rendered = _render(path, tmp_path, "--media-root", str(tmp_path / "library"))
    expected = _buffer(0.5 + TAIL)
    _place(expected, audio, 0.0)
    assert _residual_dbfs(rendered, expected) <= EXACT_DBFS


def test_media_at_another_sample_rate(tmp_path):
    import soxr

    project = Project()
    track = project.track("A")
    other = project.track("B")
    slow = tone(0.5, seed=19, rate=44100)
    for name in ("x", "y"):
        audio = np.zeros((1, RATE // 2))
        project.raw_clip(
            other, project.add_media(f"{name}.wav", audio), audio, time=0.0, duration=1.0
        )
    project.raw_clip(
        track, project.add_media("slow.wav", slow, 44100), slow, time=0.0, duration=1.0, rate=44100
    )
    rendered = _render(project.write(tmp_path / "p.dawproject"), tmp_path)
    reference = soxr.resample(slow[0], 44100, RATE, quality="VHQ")
    n = RATE // 2
    # The clip is exactly as long as the file: sample-exact length, then silence.
    assert np.all(rendered[:, n:] == 0)
    core = slice(2000, n - 2000)  # the resampler's edges differ with the streaming
    assert np.max(np.abs(rendered[0, core] - reference[core])) < 1e-3


def test_send_and_mute_automation(tmp_path):
    project = Project()
    fx = project.track("FX", role="effect")
    track = project.track("A")
    send = project.send(track, fx, 1.0)
    audio = tone(1.0, channels=2, seed=20)
    project.raw_clip(track, project.add_media("a.wav", audio), audio, time=0.0, duration=2.0)
    project.points(track, send, [(0.0, 1.0, "hold"), (0.25, 0.5, "hold")], unit="linear")
    project.points(track, track.mute, [(0.0, False, "hold"), (0.5, True, "hold")])
    rendered = _render(project.write(tmp_path / "p.dawproject"), tmp_path)
    t = np.arange(audio.shape[1])
    gain = np.where(t < round(0.25 * RATE), 2.0, 1.5) * (t < round(0.5 * RATE))
    expected = _buffer(1.0 + TAIL)
    _place(expected, audio, 0.0, envelope=np.vstack([gain, gain]))
    ramp = slice(round(0.49 * RATE), round(0.51 * RATE))  # the engine's 5 ms mute ramp
    rendered[:, ramp] = expected[:, ramp] = 0.0
    assert _residual_dbfs(rendered, expected) <= EXACT_DBFS

"""The film demo: a 12-second 5.1 scene synthesized in code, delivered as DME stems.

``stemprint demo --film`` writes it and renders it with the ``dme`` preset: a line of dialogue in
the centre, a stereo score on a stereo bus folded into the 5.1 music stem, rain across the room,
a door behind the right surround with an LFE send, footsteps panned across the front, and a
shared stereo reverb for dialogue and effects; 48 kHz, timecode 01:00:00:00 at 23.976 fps. The
package holds the DX, MX and FX stems, the M&E and the printmaster, named as streaming platforms
ask (``Nightfall_v01_DIASTEM_6ch_48k_24b_23976.wav`` …).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stemprint.demo import SAMPLE_RATE, _envelope, _hz, _place, write_synthesized

SCENE_SECONDS = 12.0

FILM_SESSION = """\
# stemprint film demo ("stemprint demo --film" writes it with synthesized audio beside it).
stemprint: 1
name: Nightfall Reel 1
sample_rate: 48000
tail_seconds: 1.5
start_timecode: "01:00:00:00"
frame_rate: 23.976
metadata:
  title: Nightfall
  version: v01
  description: Reel 1, scene 12 (stemprint film demo)
  project: Nightfall
  scene: "12"
  take: "1"

tracks:
  - name: Line
    clips: [{file: audio/line.wav, start_seconds: 1.0, fade_out_seconds: 0.05}]
    inserts:
      - {type: highpass_filter, cutoff_frequency_hz: 90}
    sends:
      - {to: Room, level_db: -16}
    output: DX
  - name: Score
    clips: [{file: audio/score.wav, fade_in_seconds: 2.0, fade_out_seconds: 2.0}]
    output: Score Bus
  - name: Rain
    clips: [{file: audio/rain.wav, fade_in_seconds: 1.0, fade_out_seconds: 1.0}]
    gain_db: -10.0
    surround: {azimuth_deg: 180, width_deg: 220}
    output: FX
  - name: Door
    clips: [{file: audio/door.wav, start_seconds: 7.5, gain_db: -2.0}]
    surround: {azimuth_deg: 110}
    sends:
      - {to: Room, level_db: -8}
      - {to: FX, lfe: true, level_db: -6}
    output: FX
  - name: Steps
    clips: [{file: audio/steps.wav, start_seconds: 3.0}]
    pan: -0.6
    output: FX

buses:
  - name: DX
    layout: "5.1"
  - name: MX
    layout: "5.1"
  - name: FX
    layout: "5.1"
  - name: Score Bus
    gain_db: -4.0
    inserts:
      - {type: low_shelf_filter, cutoff_frequency_hz: 200, gain_db: -2.0}
    output: MX
  - name: Room
    inserts:
      - {type: reverb, room_size: 0.5, damping: 0.6, wet_level: 1.0, dry_level: 0.0}

master:
  layout: "5.1"

delivery:
  preset: dme
"""


def synthesize(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The scene's sources, ``(channels, samples)`` float64 at 48 kHz."""
    rate = SAMPLE_RATE
    n = int(SCENE_SECONDS * rate)
    return {
        "line": _dialogue(rng, rate)[None],
        "score": _score(rng, n, rate),
        "rain": _rain(rng, n),
        "door": _door(rng, rate)[None],
        "steps": _steps(rng, rate)[None],
    }


def _dialogue(rng: np.random.Generator, rate: int) -> np.ndarray:
    """Syllables of a voiced source through three formants, with pauses (speech-like)."""
    out = np.zeros(int(5.5 * rate))
    at = 0.0
    for syllable in range(14):
        seconds = rng.uniform(0.12, 0.3)
        t = np.arange(int(seconds * rate)) / rate
        f0 = 115.0 * (1 + 0.08 * np.sin(2 * np.pi * 3 * t + syllable))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        formants = np.array([rng.uniform(300, 800), rng.uniform(900, 1800), 2500.0])
        voice = np.zeros_like(t)
        for k in range(1, 30):
            weight = np.sum(1.0 / (1.0 + ((k * 115.0 - formants) / 80.0) ** 2)) / k**0.6
            voice += weight * np.sin(k * phase)
        shape = np.sin(np.pi * t / seconds) ** 0.5
        _place(out, 0.1 * voice * shape, at)
        at += seconds + (rng.uniform(0.25, 0.5) if syllable % 4 == 3 else 0.04)
    return out


def _score(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """Slow string-like chords, a little detuned between the sides."""
    out = np.zeros((2, n))
    t = np.arange(int(4.0 * rate)) / rate
    for index, root in enumerate((50, 46, 53)):
        for note in (root, root + 7, root + 12, root + 15):
            for channel, detune in ((0, 0.997), (1, 1.003)):
                partials = sum(
                    np.sin(2 * np.pi * _hz(note) * detune * k * t + rng.uniform(0, 6.28)) / k**2
                    for k in (1, 2, 3, 4)
                )
                _place(out[channel], 0.03 * partials * _envelope(t, 1.0, 6.0), index * 4.0)
    return out


def _rain(rng: np.random.Generator, n: int) -> np.ndarray:
    """Decorrelated soft noise with drops: a bed for the whole room."""
    noise = rng.standard_normal((2, n))
    bed = 0.5 * noise + 0.5 * np.roll(noise, 1, axis=1)  # a gentle low-pass
    drops = (rng.random((2, n)) > 0.9995) * rng.uniform(-0.5, 0.5, (2, n))
    return 0.05 * bed + drops


def _door(rng: np.random.Generator, rate: int) -> np.ndarray:
    """A door slam: a low thump and a rattle."""
    t = np.arange(int(1.2 * rate)) / rate
    thump = np.sin(2 * np.pi * 55 * t) * np.exp(-t / 0.15)
    rattle = rng.standard_normal(t.size) * _envelope(t, 0.002, 0.08)
    return 0.5 * thump + 0.15 * rattle


def _steps(rng: np.random.Generator, rate: int) -> np.ndarray:
    """Four footsteps on a wooden floor."""
    out = np.zeros(int(3.0 * rate))
    t = np.arange(int(0.2 * rate)) / rate
    for step in range(4):
        knock = np.sin(2 * np.pi * rng.uniform(140, 180) * t) * np.exp(-t / 0.03)
        scuff = np.diff(rng.standard_normal(t.size + 1)) * _envelope(t, 0.001, 0.02)
        _place(out, 0.3 * knock + 0.05 * scuff, step * 0.6)
    return out


def write_film_session(folder: str | Path, seed: int = 2027) -> Path:
    """Write the film demo's session and its synthesized audio (24-bit WAV) into ``folder``.

    Returns
    -------
    Path
        The session file, ``folder/session.yaml``.
    """
    return write_synthesized(folder, synthesize(np.random.default_rng(seed)), FILM_SESSION)

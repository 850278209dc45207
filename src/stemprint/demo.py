"""The bundled demo: a small multitrack song synthesized in code, its session, and its render.

No audio ships in the repository: drums, bass, keys and a vocal-like part are synthesized with a
seeded generator, so the demo is the same on every machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 48000
TEMPO_BPM = 120.0
BARS = 8
BEAT_SECONDS = 60.0 / TEMPO_BPM
SONG_SECONDS = BARS * 4 * BEAT_SECONDS  # 16 s

DEMO_SESSION = """\
# stemprint demo session ("stemprint demo" writes it with synthesized audio beside it).
stemprint: 1
name: Demo Song
sample_rate: 48000
tail_seconds: 2.5

tracks:
  - name: Kick
    clips: [{file: audio/kick.wav}]
    output: Drums
  - name: Snare
    clips: [{file: audio/snare.wav}]
    gain_db: -1.0
    inserts:
      - {type: highpass_filter, cutoff_frequency_hz: 100}
    sends:
      - {to: Room, level_db: -14}
    output: Drums
  - name: Hats
    clips: [{file: audio/hats.wav, gain_db: -3.0}]
    pan: 0.3
    output: Drums
  - name: Bass
    clips: [{file: audio/bass.wav}]
    inserts:
      - {type: compressor, threshold_db: -20, ratio: 3, attack_ms: 10, release_ms: 150}
  - name: Keys
    clips: [{file: audio/keys.wav, fade_in_seconds: 0.5, fade_out_seconds: 1.0}]
    gain_db: -4.0
    pan: -0.2
    sends:
      - {to: Room, level_db: -18}
    output: Music
  - name: Lead Vox
    clips:
      - {file: audio/vox.wav, start_seconds: 4.0, duration_seconds: 11.5, fade_out_seconds: 0.05}
    inserts:
      - {type: highpass_filter, cutoff_frequency_hz: 120}
      - {type: compressor, threshold_db: -22, ratio: 4, attack_ms: 5, release_ms: 100}
    sends:
      - {to: Room, level_db: -10}
      - {to: Slap, level_db: -16, pre_fader: true}
    output: Vocals

buses:
  - name: Drums
    inserts:
      - {type: compressor, threshold_db: -14, ratio: 2, attack_ms: 30, release_ms: 200}
  - name: Music
  - name: Vocals
    gain_db: -1.0
  - name: Room
    inserts:
      - {type: convolution, impulse_response_filename: audio/room-ir.wav, mix: 1.0}
  - name: Slap
    inserts:
      - {type: delay, delay_seconds: 0.125, feedback: 0.25, mix: 1.0}
      - {type: lowpass_filter, cutoff_frequency_hz: 4000}
    gain_db: -3.0
    output: Vocals

master:
  inserts:
    - {type: brickwall_limiter, ceiling_db: -1.0, release_ms: 100, lookahead_ms: 5.0}
"""


def _envelope(t: np.ndarray, attack: float, decay: float) -> np.ndarray:
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def _place(out: np.ndarray, hit: np.ndarray, at_seconds: float) -> None:
    start = int(round(at_seconds * SAMPLE_RATE))
    end = min(start + hit.shape[-1], out.shape[-1])
    out[..., start:end] += hit[..., : end - start]


def _hz(midi_note: float) -> float:
    return 440.0 * 2 ** ((midi_note - 69) / 12)


def _room_impulse_response(rng: np.random.Generator, rate: int) -> np.ndarray:
    """A stereo room: 12 ms pre-delay, then decorrelated, slightly darkened noise decaying
    60 dB in about 1.6 s. A convolution is linear to float precision, so a stem that carries
    its own share of the room (split returns) still sums to the mix to the last bits."""
    n = int(1.6 * rate)
    t = np.arange(n) / rate
    kernel = np.array([0.1, 0.2, 0.4, 0.2, 0.1])
    noise = rng.standard_normal((2, n))
    tail = np.stack([np.convolve(c, kernel, mode="same") for c in noise]) * np.exp(-t / 0.23)
    ir = np.zeros((2, n + int(0.012 * rate)))
    ir[:, -n:] = tail
    return 0.5 * ir / np.sqrt(np.sum(ir**2) / 2)


def synthesize(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The demo's sources, ``(channels, samples)`` float64 at :data:`SAMPLE_RATE`."""
    n = int(SONG_SECONDS * SAMPLE_RATE)
    rate = SAMPLE_RATE
    beats = int(SONG_SECONDS / BEAT_SECONDS)

    t = np.arange(int(0.5 * rate)) / rate
    kick_hit = np.sin(2 * np.pi * (45 * t + 75 * 0.04 * (1 - np.exp(-t / 0.04)))) * np.exp(
        -t / 0.18
    )
    kick = np.zeros(n)
    for beat in range(0, beats, 2):
        _place(kick, 0.45 * kick_hit, beat * BEAT_SECONDS)
        _place(kick, 0.3 * kick_hit, (beat + 1.5) * BEAT_SECONDS)

    t = np.arange(int(0.3 * rate)) / rate
    snare = np.zeros(n)
    for beat in range(1, beats, 2):
        noise = rng.standard_normal(t.size)
        body = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.05)
        _place(snare, 0.2 * noise * _envelope(t, 0.001, 0.07) + 0.22 * body, beat * BEAT_SECONDS)

    t = np.arange(int(0.08 * rate)) / rate
    hats = np.zeros(n)
    for eighth in range(beats * 2):
        noise = np.diff(rng.standard_normal(t.size + 1))  # first difference: bright noise
        level = 0.18 if eighth % 2 else 0.12
        _place(hats, level * noise * _envelope(t, 0.0005, 0.02), eighth * BEAT_SECONDS / 2)

    roots = [45, 45, 41, 41, 48, 48, 43, 43]  # A A F F C C G G (MIDI)
    bass = np.zeros(n)
    t = np.arange(int(BEAT_SECONDS * rate)) / rate
    for bar, root in enumerate(roots):
        for beat in range(4):
            f = _hz(root - 12 + (12 if beat == 3 else 0))
            tone = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
            _place(bass, 0.35 * tone * _envelope(t, 0.005, 0.35), (bar * 4 + beat) * BEAT_SECONDS)

    keys = np.zeros((2, n))
    t = np.arange(int(4 * BEAT_SECONDS * rate)) / rate
    for bar, root in enumerate(roots):
        chord = [root + 12, root + 16 if root in (48, 43) else root + 15, root + 19]
        for note in chord:
            f = _hz(note)
            for channel, detune in ((0, 0.998), (1, 1.002)):
                partials = np.zeros_like(t)
                for k in (1, 2, 3):
                    phase = rng.uniform(0, 2 * np.pi)
                    partials += np.sin(2 * np.pi * f * detune * k * t + phase) / k**1.5
                _place(
                    keys[channel], 0.07 * partials * _envelope(t, 0.02, 1.5), bar * 4 * BEAT_SECONDS
                )

    melody = [69, 72, 74, 72, 69, 67, 69, 64, 65, 67, 69, 72]
    vox = np.zeros(n)
    note_seconds = 2 * BEAT_SECONDS
    t = np.arange(int(note_seconds * rate)) / rate
    formants = np.array([700.0, 1150.0, 2600.0])
    for i, note in enumerate(melody):
        f0 = _hz(note - 12) * (1 + 0.006 * np.sin(2 * np.pi * 5.5 * t))  # vibrato
        voice_phase = 2 * np.pi * np.cumsum(f0) / rate
        voice = np.zeros_like(t)
        for k in range(1, 25):
            fk = k * _hz(note - 12)
            weight = np.sum(1.0 / (1.0 + ((fk - formants) / 90.0) ** 2)) / k**0.7
            voice += weight * np.sin(k * voice_phase)
        envelope = np.minimum(t / 0.06, 1.0) * np.minimum((note_seconds - t) / 0.15, 1.0)
        _place(vox, 0.12 * voice * np.clip(envelope, 0, 1), i * note_seconds)
    return {
        "room-ir": _room_impulse_response(rng, rate),
        "kick": kick[None],
        "snare": snare[None],
        "hats": hats[None],
        "bass": bass[None],
        "keys": keys,
        "vox": vox[None],
    }


def write_demo_session(folder: str | Path, seed: int = 2026) -> Path:
    """Write the demo session and its synthesized audio (24-bit WAV) into ``folder``.

    Returns
    -------
    Path
        The session file, ``folder/session.yaml``.
    """
    return write_synthesized(folder, synthesize(np.random.default_rng(seed)), DEMO_SESSION)


def write_synthesized(folder: str | Path, sources: dict[str, np.ndarray], session: str) -> Path:
    """Write ``sources`` as ``folder/audio/<name>.wav`` (24-bit) and ``session`` as
    ``folder/session.yaml``; return the session file."""
    import soundfile as sf

    folder = Path(folder)
    audio = folder / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for name, signal in sources.items():
        sf.write(str(audio / f"{name}.wav"), signal.T, SAMPLE_RATE, subtype="PCM_24")
    path = folder / "session.yaml"
    path.write_text(session, encoding="utf-8")
    return path

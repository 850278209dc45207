"""Generate the standard benchmark sessions (issue 6): program-like material synthesized with a
seeded generator, written as 24-bit WAV, and a session YAML beside it.

    python bench/generate.py OUT_DIR --tracks 32 --minutes 3 [--plain]

The full variant gives every track a channel strip (high-pass, EQ, compressor), routes the
tracks to 4 group buses (glue compressor), sends every track to one shared reverb return, and puts
a compressor and a limiter on the master. The plain variant is the same files summed at the
master with no processing at all.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

RATE = 48000
CHUNK_SECONDS = 10


def _material(rng: np.random.Generator, seconds: float, kind: int) -> np.ndarray:
    """One 10-second chunk of material: notes of harmonics (tonal) or enveloped noise (drums)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = np.zeros(n)
    if kind % 4 == 0:  # percussive: noise bursts on a grid
        step = int(RATE * 0.25)
        for start in range(0, n, step):
            length = min(step, n - start)
            env = np.exp(-np.arange(length) / (RATE * 0.04))
            out[start : start + length] += 0.3 * rng.standard_normal(length) * env
        return out
    f0 = 55.0 * 2 ** (kind % 24 / 12)
    note = int(RATE * 0.5)
    for start in range(0, n, note):
        length = min(note, n - start)
        tt = t[:length]
        f = f0 * 2 ** (rng.integers(0, 12) / 12)
        tone = sum(np.sin(2 * np.pi * f * k * tt) / k for k in range(1, 6))
        out[start : start + length] += 0.15 * tone * np.exp(-tt / 0.4)
    return out


def generate(out: Path, tracks: int, minutes: float, plain: bool, seed: int = 1) -> Path:
    """Write the audio and ``session.yaml`` into ``out``; return the session path."""
    rng = np.random.default_rng(seed)
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60
    for i in range(tracks):
        path = audio / f"t{i:03d}.wav"
        if path.exists() and sf.info(str(path)).duration >= seconds:
            continue
        channels = 2 if i % 3 == 0 else 1
        with sf.SoundFile(str(path), "w", RATE, channels, "PCM_24") as handle:
            done = 0.0
            while done < seconds:
                chunk = min(CHUNK_SECONDS, seconds - done)
                data = np.stack([_material(rng, chunk, i) for _ in range(channels)], axis=1)
                handle.write(data)
                done += chunk
    groups = ["Drums", "Bass", "Music", "Vocals"]
    session: dict = {
        "stemprint": 1,
        "name": f"bench {tracks} tracks {minutes:g} min{' plain' if plain else ''}",
        "sample_rate": RATE,
        "tail_seconds": 0.0 if plain else 3.0,
        "tracks": [],
        "buses": [],
    }
    for i in range(tracks):
        track: dict = {
            "name": f"T{i:03d}",
            "clips": [{"file": f"audio/t{i:03d}.wav"}],
            # -20 dB at 32 tracks, lower for more, so the mix keeps its headroom at any size.
            "gain_db": round(-20.0 - 10 * math.log10(max(tracks, 1) / 32), 2),
            "pan": round(((i * 37) % 21 - 10) / 10, 2),
        }
        if not plain:
            track["inserts"] = [
                {"type": "highpass_filter", "cutoff_frequency_hz": 40},
                {"type": "peak_filter", "cutoff_frequency_hz": 2500, "gain_db": 2, "q": 1.0},
                {
                    "type": "compressor",
                    "threshold_db": -24,
                    "ratio": 3,
                    "attack_ms": 5,
                    "release_ms": 120,
                },
            ]
            track["sends"] = [{"to": "Reverb", "level_db": -18}]
            track["output"] = groups[i % 4]
        session["tracks"].append(track)
    if not plain:
        session["buses"] = [
            {
                "name": g,
                "inserts": [
                    {
                        "type": "compressor",
                        "threshold_db": -18,
                        "ratio": 2,
                        "attack_ms": 30,
                        "release_ms": 200,
                    }
                ],
            }
            for g in groups
        ] + [
            {
                "name": "Reverb",
                "inserts": [
                    {"type": "reverb", "room_size": 0.7, "wet_level": 1.0, "dry_level": 0.0}
                ],
            }
        ]
        session["master"] = {
            "inserts": [
                {
                    "type": "compressor",
                    "threshold_db": -12,
                    "ratio": 2,
                    "attack_ms": 20,
                    "release_ms": 250,
                },
                {"type": "limiter", "threshold_db": -1.0, "release_ms": 100},
            ]
        }
    path = out / ("session-plain.yaml" if plain else "session.yaml")
    path.write_text(yaml.safe_dump(session, sort_keys=False), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--tracks", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args()
    print(generate(args.out, args.tracks, args.minutes, args.plain))


if __name__ == "__main__":
    main()

"""Incremental re-render: a cold render with ``--cache`` against the render after one fader change.

Runs from the repository root (``.venv/bin/python bench/cache.py``): generates (or reuses) the
standard full session (``bench/generate.py``), renders it cold without a cache, cold into an
empty cache, then once more after moving one track's fader by 1 dB, and checks that the last
package is bit-identical (every audio file) to a cold render of the changed session.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate  # noqa: E402


def _render(session: Path, out: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "stemprint.cli.main", "render", str(session),
           "-o", str(out), "--force", "--quiet", *extra]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - started


def _audio_digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in (".wav", ".aif", ".aiff", ".flac")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--no-verify", action="store_true", help="render with --no-verify")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(f"/tmp/stemprint-bench/{args.tracks}x{args.minutes:g}")
    session = generate(work, args.tracks, args.minutes, plain=False)
    runs = work / "cache-bench"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    cache = runs / "cache"
    verify = ["--no-verify"] if args.no_verify else []

    cold = _render(session, runs / "cold", verify)
    seed = _render(session, runs / "seed", [*verify, "--cache", str(cache)])
    data = yaml.safe_load(session.read_text("utf-8"))
    data["tracks"][0]["gain_db"] = float(data["tracks"][0].get("gain_db", 0.0)) + 1.0
    changed = session.with_name("session-fader.yaml")
    changed.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    warm = _render(changed, runs / "warm", [*verify, "--cache", str(cache)])
    _render(changed, runs / "changed-cold", verify)
    identical = _audio_digests(runs / "warm") == _audio_digests(runs / "changed-cold")
    manifest = json.loads((runs / "warm" / "manifest.json").read_text("utf-8"))
    entry = manifest["cache"]
    size = sum(p.stat().st_size for p in (cache / "entries").glob("*.pre"))
    result = {
        "session": f"{args.tracks} tracks x {args.minutes:g} min",
        "verify": not args.no_verify,
        "cold_s": round(cold, 2),
        "cold_into_cache_s": round(seed, 2),
        "after_fader_change_s": round(warm, 2),
        "ratio": round(warm / cold, 3),
        "bit_identical": identical,
        "reused_routes": len(entry["reused"]),
        "rendered_routes": len(entry["rendered"]),
        "cache_bytes": size,
    }
    for key, value in result.items():
        print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), "utf-8")
    if not identical:
        sys.exit("the re-render is NOT bit-identical to a cold render")


if __name__ == "__main__":
    main()

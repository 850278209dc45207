"""Size and build time of the HTML report (``stemprint report``) for three packages.

Run from the repository root::

    .venv/bin/python bench/report.py                         # demo, 10-min session, 40 stems
    .venv/bin/python bench/report.py --long-minutes 20 --stems 40 --stem-seconds 180

Packages (rendered once into the work folder, default ``/tmp/stemprint-bench/report``, reused):

- ``demo``: ``stemprint demo`` (5 stems, 18.5 s);
- ``long``: one session of ``--long-minutes`` minutes, 8 tracks into 3 group buses and a
  reverb return (4 stems), a limiter on the master;
- ``wide``: ``--stems`` tracks of ``--stem-seconds`` seconds, each its own stem, a shared
  reverb return.

Rows: each package with ``--audio embed`` (lossless FLAC up to the 150 MB cap, else the
fallback it takes) and ``--audio none`` (plots only): the best of ``--repeat`` builds of
``write_package_report`` in this process (matplotlib imported once, before timing), the page's
size, what the player embeds; and, when Chromium and Playwright are present, the time from
``goto`` to the player's ``ready`` and to the first null check printed (embedded audio).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

RATE = 48000


def _tone(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    t = np.arange(n) / RATE
    carrier = np.sin(2 * np.pi * (70 + 37 * k) * t) * (0.6 + 0.4 * np.sin(t * (0.5 + k)))
    return 0.08 * carrier + 0.01 * rng.standard_normal(n)


def write_session(folder: Path, tracks: int, seconds: float, own_stems: bool) -> Path:
    """A session of ``tracks`` mono tracks (seeded tones and noise), reused when present."""
    session = folder / "session.yaml"
    if session.exists():
        return session
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(tracks)
    n = int(seconds * RATE)
    entries = []
    for k in range(tracks):
        sf.write(str(folder / f"t{k}.wav"), _tone(rng, n, k), RATE, subtype="PCM_24")
        entry = {
            "name": f"Track {k + 1}",
            "clips": [{"file": f"t{k}.wav"}],
            "pan": round(-0.8 + 1.6 * k / max(tracks - 1, 1), 3),
            "inserts": [{"type": "highpass_filter", "cutoff_frequency_hz": 40}],
            "sends": [{"to": "Verb", "level_db": -16}],
        }
        if not own_stems:
            entry["output"] = ("Drums", "Music", "Vocals")[k % 3]
        entries.append(entry)
    buses = [{"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.5}]}]
    if not own_stems:
        buses += [{"name": name} for name in ("Drums", "Music", "Vocals")]
    data = {
        "stemprint": 1,
        "name": folder.name,
        "sample_rate": RATE,
        "tail_seconds": 1.0,
        "tracks": entries,
        "buses": buses,
        "master": {"inserts": [{"type": "limiter", "threshold_db": -3}]},
    }
    session.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return session


def rendered(session: Path, out: Path) -> Path:
    """The package of ``session`` (rendered without a report, once)."""
    if (out / "manifest.json").exists():
        return out
    from stemprint.export.package import RenderOptions, render_package
    from stemprint.model.load import load_session

    render_package(load_session(session), out, RenderOptions(report=False, force=True))
    return out


def demo_package(work: Path) -> Path:
    out = work / "demo" / "package"
    if not (out / "manifest.json").exists():
        from stemprint.demo import write_demo_session

        session = write_demo_session(work / "demo")
        rendered(session, out)
    return out


def build(package: Path, audio: str, repeat: int) -> tuple[float, Path, dict[str, object]]:
    """Best build time, the page, and what its player holds."""
    from stemprint.report import write_package_report

    out = package.parent / f"report-{audio}.html"
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        write_package_report(package, None, None, out=out, audio=audio)
        best = min(best, time.perf_counter() - started)
    return best, out, _player(out.read_text(encoding="utf-8"))


def _player(text: str) -> dict[str, object]:
    start = text.find('id="player-data">')
    if start < 0:
        return {"mode": "none"}
    body = text[start + len('id="player-data">') : text.index("</script>", start)]
    data: dict[str, object] = json.loads(body.replace("<\\/", "</"))
    return data


def browser_times(page_path: Path) -> tuple[float, float] | None:
    """Seconds from ``goto`` to the player's ``ready`` and to the first null check."""
    executable = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if executable is None:
        return None
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        started = time.perf_counter()
        page.goto(page_path.resolve().as_uri(), timeout=600_000)
        page.wait_for_function("() => document.body.dataset.player === 'ready'", timeout=600_000)
        ready = time.perf_counter() - started
        page.wait_for_function(
            "() => (document.getElementById('null-out') || {dataset: {state: 'done'}})"
            ".dataset.state === 'done'",
            timeout=600_000,
        )
        nulled = time.perf_counter() - started
        browser.close()
    return ready, nulled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--stems", type=int, default=40)
    parser.add_argument("--stem-seconds", type=float, default=120.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true", help="Skip the page-load timing.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/stemprint-bench/report"))
    args = parser.parse_args(argv)

    import stemprint.report.plots  # noqa: F401 - matplotlib's import is not the report's time

    long_name = f"long-{args.long_minutes:g}min"
    wide_name = f"wide-{args.stems}x{args.stem_seconds:g}s"
    packages = {
        "demo": demo_package(args.work),
        long_name: rendered(
            write_session(args.work / long_name, 8, args.long_minutes * 60, own_stems=False),
            args.work / long_name / "package",
        ),
        wide_name: rendered(
            write_session(args.work / wide_name, args.stems, args.stem_seconds, own_stems=True),
            args.work / wide_name / "package",
        ),
    }
    print(f"{'package':<20}{'audio':<7}{'files':>6}{'audio min':>10}{'build s':>9}"
          f"{'page MB':>9}  player            {'ready s':>8}{'null s':>8}")  # fmt: skip
    for name, package in packages.items():
        manifest = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
        minutes = sum(f["length_samples"] / f["sample_rate"] for f in manifest["files"]) / 60
        for audio in ("embed", "none"):
            seconds, page, player = build(package, audio, args.repeat)
            codec = f"{player['mode']} {player.get('codec') or ''}".strip()
            times = None
            if audio == "embed" and not args.no_browser:
                times = browser_times(page)
            timing = f"{times[0]:>8.1f}{times[1]:>8.1f}" if times else f"{'–':>8}{'–':>8}"
            print(
                f"{name:<20}{audio:<7}{len(manifest['files']):>6}{minutes:>10.1f}"
                f"{seconds:>9.2f}{page.stat().st_size / 1e6:>9.1f}  {codec:<18}{timing}"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

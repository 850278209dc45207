"""Benchmark runner: stemprint against the tools users would otherwise pick, in one run.

    python bench/run.py [--tracks 32] [--minutes 3] [--work /tmp/stemprint-bench] [--json FILE]
                        [--only full|plain|cache|demo|scale|all ...] [--scale 8x3,128x3,...]

Measures wall time, CPU time (user + system of the process and every descendant it waited for:
stemprint's worker processes are reaped by it, so they count), real-time factor, ratio to the
group's stemprint reference row and peak memory for the groups:

- full graph (``session.yaml``): stemprint mix + stems without and with self-verification
  (``--no-report``), the default render (verification + ``report.html``), mix only, one thread;
  a straightforward pedalboard script (1 and 2 threads), DawDreamer if installed;
- plain sum (``session-plain.yaml``): stemprint mix only through the CLI (start-up included), the
  numpy floor (read every file with soundfile and sum), sox, ffmpeg and ecasound if installed;
- cache: the full session after a +1 dB fader change on one track: a cold render without
  cache, a cold render filling an empty ``--cache``, the re-render with the cache the original
  session filled (reset before every run), and whether that re-render's audio is bit-identical
  to the cold one (the same as ``bench/cache.py``);
- demo: ``stemprint demo`` once (not timed), then rendering its session with ``--no-report``
  and by default (with its report);
- scale (``--scale`` or ``--only scale``): stemprint alone over sizes (tracks x minutes).

Ends with a table of the speed targets of bench/README.md (met, not met, or not measured in
this run). Each row runs in its own process so its memory is its own. Not part of the unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import RATE, generate  # noqa: E402

MAIN_GROUPS = ("full", "plain", "cache", "demo")
DEFAULT_SCALE = "8x3,32x3,128x3,8x30,8x60"
AUDIO_SUFFIXES = (".wav", ".aif", ".aiff", ".flac")
REFERENCE_ROWS = ("full.stems", "plain.stemprint", "cache.cold", "demo.noreport")
"""Each group's ``vs sp`` reference: the stemprint render its other rows are compared with."""

PEDALBOARD_SCRIPT = r"""
import sys, yaml, numpy as np, soundfile as sf, pedalboard as pb
from concurrent.futures import ThreadPoolExecutor
session_path, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = yaml.safe_load(open(session_path))
base = session_path.rsplit("/", 1)[0]
def board(inserts):
    classes = {"highpass_filter": pb.HighpassFilter, "peak_filter": pb.PeakFilter,
               "compressor": pb.Compressor, "reverb": pb.Reverb, "limiter": pb.Limiter}
    return pb.Pedalboard([classes[i["type"]](**{k: v for k, v in i.items() if k != "type"})
                          for i in inserts])
def track(t):
    x, sr = sf.read(f"{base}/{t['clips'][0]['file']}", dtype="float32", always_2d=True)
    y = board(t.get("inserts", []))(x.T, sr)
    if y.shape[0] == 1:
        y = np.vstack([y, y]) * np.float32(0.7071)
    return t, y * np.float32(10 ** (t["gain_db"] / 20))
with ThreadPoolExecutor(threads) as pool:
    results = list(pool.map(track, s["tracks"]))
n = max(y.shape[1] for _, y in results) + int(s["tail_seconds"] * 48000)
buses = {b["name"]: np.zeros((2, n), np.float32) for b in s["buses"]}
master = np.zeros((2, n), np.float32)
for t, y in results:
    (buses[t["output"]] if t.get("output", "master") != "master" else master)[:, :y.shape[1]] += y
    for send in t.get("sends", []):
        buses[send["to"]][:, :y.shape[1]] += y * np.float32(10 ** (send["level_db"] / 20))
def bus(b):
    return b, board(b.get("inserts", []))(buses[b["name"]], 48000)
with ThreadPoolExecutor(threads) as pool:
    for b, y in pool.map(bus, s["buses"]):
        master += y
mix = board(s.get("master", {}).get("inserts", []))(master, 48000)
sf.write(out, mix.T, 48000, subtype="PCM_24")
"""

NUMPY_FLOOR = r"""
import sys, glob, numpy as np, soundfile as sf
total = None
for f in sorted(glob.glob(sys.argv[1] + "/audio/*.wav")):
    with sf.SoundFile(f) as h:
        pos = 0
        for block in h.blocks(blocksize=262144, dtype="float32", always_2d=True):
            if total is None:
                total = np.zeros((h.frames, 2), np.float32)
            total[pos:pos + len(block)] += block if block.shape[1] == 2 else block[:, :1]
            pos += len(block)
sf.write(sys.argv[2], total, 48000, subtype="PCM_24")
"""

DAWDREAMER_SCRIPT = r"""
import sys, yaml, numpy as np, soundfile as sf, dawdreamer as daw
session_path, out = sys.argv[1], sys.argv[2]
s = yaml.safe_load(open(session_path))
base = session_path.rsplit("/", 1)[0]
engine = daw.RenderEngine(48000, 512)
graph = []
def chain(last, inserts, prefix):
    for i, ins in enumerate(inserts):
        name = f"{prefix}.{i}"
        if ins["type"] in ("compressor", "limiter"):  # DawDreamer has no limiter: ratio 20
            p = engine.make_compressor_processor(name)
            p.threshold = ins["threshold_db"]
            p.ratio = ins.get("ratio", 20.0)
            p.attack = ins.get("attack_ms", 1.0)
            p.release = ins.get("release_ms", 100.0)
        elif ins["type"] == "highpass_filter":
            p = engine.make_filter_processor(name, "high", float(ins["cutoff_frequency_hz"]))
        elif ins["type"] == "peak_filter":  # no peak mode: a high shelf, also one biquad
            p = engine.make_filter_processor(
                name, "high_shelf", float(ins["cutoff_frequency_hz"]), float(ins["q"]),
                float(10 ** (ins["gain_db"] / 20)))
        elif ins["type"] == "reverb":
            p = engine.make_reverb_processor(
                name, ins["room_size"], 0.5, ins["wet_level"], ins["dry_level"])
        else:
            raise SystemExit("unsupported insert " + ins["type"])
        graph.append((p, [last]))
        last = name
    return last
feeds = {}  # bus -> [(processor name, gain)]
for t in s["tracks"]:
    x, _ = sf.read(f"{base}/{t['clips'][0]['file']}", dtype="float32", always_2d=True)
    x = x.T if x.shape[1] == 2 else np.vstack([x.T, x.T])
    node = engine.make_playback_processor(t["name"], x)
    graph.append((node, []))
    last = chain(t["name"], t.get("inserts", []), t["name"])
    pan = engine.make_panner_processor(t["name"] + ".pan", "sin3dB", float(t.get("pan", 0.0)))
    graph.append((pan, [last]))
    gain = float(10 ** (t["gain_db"] / 20))
    feeds.setdefault(t.get("output", "master"), []).append((pan.get_name(), gain))
    for send in t.get("sends", []):
        level = gain * 10 ** (send["level_db"] / 20)
        feeds.setdefault(send["to"], []).append((pan.get_name(), level))
master_inputs = []
for b in s["buses"]:
    if b["name"] in feeds:
        names, gains = zip(*feeds[b["name"]])
        add = engine.make_add_processor(b["name"], list(gains))
        graph.append((add, list(names)))
        master_inputs.append((chain(b["name"], b.get("inserts", []), b["name"]), 1.0))
master_inputs += feeds.get("master", [])
names, gains = zip(*master_inputs)
graph.append((engine.make_add_processor("master", list(gains)), list(names)))
chain("master", s.get("master", {}).get("inserts", []), "master")
engine.load_graph(graph)
seconds = max(sf.info(f"{base}/{t['clips'][0]['file']}").duration for t in s["tracks"])
engine.render(seconds + s.get("tail_seconds", 0.0))
sf.write(out, engine.get_audio().T, 48000, subtype="PCM_24")
"""


def _tree_memory_kb(pid: int, peaks: dict[int, int]) -> int:
    """Proportional set size of ``pid`` and its descendants, in KB (shared pages split once);
    records each process's own peak RSS (``VmHWM``) into ``peaks``."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peaks[p] = max(peaks.get(p, 0), int(line.split()[1]))
                        break
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return total


class Run(NamedTuple):
    seconds: float
    ok: bool
    stderr: str
    cpu_seconds: float
    peak_rss_mb: float
    peak_pss_mb: float


def _run_once(command: list[str], sample_memory: bool) -> Run:
    """Wall seconds, success, stderr, CPU seconds, and with ``sample_memory`` the largest
    process's peak RSS and the tree's peak PSS (MB, sampled every 20 ms). Memory is sampled in a
    run of its own: reading ``smaps_rollup`` walks the page tables under the process's mmap lock
    and slows it. ``ru_maxrss`` is not used: Linux keeps it across exec, so a child would report
    at least this (Python) runner's own size. Worker processes share memory with their parent:
    the tree's PSS counts it once. CPU is ``wait4``'s rusage: the child's user + system time and
    that of all its terminated descendants it waited for."""
    os.sync()  # untimed: the disk has written back what earlier rows wrote (GBs of cache)
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_pss = 0
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_pss
        while not stop.wait(0.02):
            peak_pss = max(peak_pss, _tree_memory_kb(proc.pid, peaks))

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_memory:
        sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stop.set()
    if sample_memory:
        sampler.join()
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    ok = os.waitstatus_to_exitcode(status) == 0
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, ok, stderr, cpu, max(peaks.values(), default=0) / 1024, peak_pss / 1024)


def measure(
    name: str,
    command: list[str],
    audio_seconds: float,
    repeat: int = 1,
    before: Callable[[], None] | None = None,
) -> dict:
    """Run ``command`` ``repeat`` times for the median wall and CPU time, then once more for
    memory; ``before`` (not timed) runs before every run."""
    runs: list[Run] = []
    for _ in range(repeat + 1):
        if before:
            before()
        runs.append(_run_once(command, sample_memory=len(runs) == repeat))
    *runs, memory = runs
    ok = all(r.ok for r in runs) and memory.ok
    seconds = statistics.median(r.seconds for r in runs)
    stderr = next((r.stderr for r in [*runs, memory] if not r.ok), "")
    return {
        "name": name,
        "ok": ok,
        "seconds": round(seconds, 3),
        "runs": [round(r.seconds, 3) for r in runs],
        "cpu_seconds": round(statistics.median(r.cpu_seconds for r in runs), 3),
        "cpu_runs": [round(r.cpu_seconds, 3) for r in runs],
        "realtime_factor": round(audio_seconds / seconds, 1) if ok else None,
        "peak_rss_mb": round(memory.peak_rss_mb, 1),
        "peak_pss_tree_mb": round(memory.peak_pss_mb, 1),
        "error": None if ok else stderr.strip().splitlines()[-1:] or ["failed"],
    }


class Bench:
    """The rows of one run, each measured ``repeat`` times and tagged with a key
    (``group.name``) the targets look rows up by."""

    def __init__(self, repeat: int) -> None:
        self.repeat = repeat
        self.rows: list[dict] = []

    def row(
        self,
        key: str,
        name: str,
        command: list[str],
        audio_seconds: float,
        before: Callable[[], None] | None = None,
    ) -> dict:
        r = measure(name, command, audio_seconds, self.repeat, before)
        r["key"], r["group"] = key, key.split(".")[0]
        self.rows.append(r)
        print(f"  {name}: {r['runs']} s, CPU {r['cpu_runs']} s", file=sys.stderr)
        return r

    def find(self, key: str) -> dict | None:
        return next((r for r in self.rows if r["key"] == key), None)


def stemprint(*args: str) -> list[str]:
    """The ``stemprint`` console script users run (``python -m stemprint.cli.main`` compiles
    the CLI module from source on every run: ``__main__`` never uses its bytecode)."""
    script = Path(sys.executable).with_name("stemprint")
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-m", "stemprint.cli.main", *args]


def render(session: Path, out: Path, *extra: str) -> list[str]:
    return stemprint("render", str(session), "-o", str(out), "--force", "-q", *extra)


def full_rows(bench: Bench, work: Path, tracks: int, minutes: float) -> None:
    """The full graph: stemprint's variants, the pedalboard script, DawDreamer if installed."""
    session = generate(work, tracks, minutes, plain=False)
    out, seconds, py = work / "out", minutes * 60, sys.executable
    quiet = ("--no-verify", "--no-report")
    bench.row(
        "full.stems",
        "full: stemprint mix + 5 stems + manifest, --no-verify",
        render(session, out, *quiet),
        seconds,
    )
    bench.row(
        "full.verify",
        "full: stemprint, same + self-verification (--no-report)",
        render(session, out, "--no-report"),
        seconds,
    )
    bench.row(
        "full.default",
        "full: stemprint default render (verification + report)",
        render(session, out),
        seconds,
    )
    bench.row(
        "full.mix", "full: stemprint mix only", render(session, out, "--no-stems", *quiet), seconds
    )
    bench.row(
        "full.1thread",
        "full: stemprint mix + 5 stems, 1 thread",
        render(session, out, "--threads", "1", *quiet),
        seconds,
    )
    for threads in (1, 2):
        bench.row(
            f"full.pedalboard{threads}",
            f"full: pedalboard script, {threads} thread(s), mix only",
            [py, "-c", PEDALBOARD_SCRIPT, str(session), str(work / "pb.wav"), str(threads)],
            seconds,
        )
    try:
        import dawdreamer  # noqa: F401
    except ImportError:
        return
    bench.row(
        "full.dawdreamer",
        "full: DawDreamer, mix only (same graph, stand-ins noted)",
        [py, "-c", DAWDREAMER_SCRIPT, str(session), str(work / "dd.wav")],
        seconds,
    )


def plain_rows(bench: Bench, work: Path, tracks: int, minutes: float) -> None:
    """The plain sum: stemprint's CLI, the numpy floor, sox, ffmpeg, ecasound if installed."""
    session = generate(work, tracks, minutes, plain=True)
    seconds, py = minutes * 60, sys.executable
    bench.row(
        "plain.stemprint",
        "plain: stemprint CLI, mix only",
        render(session, work / "out", "--no-stems", "--no-verify", "--no-report"),
        seconds,
    )
    numpy_floor = [py, "-c", NUMPY_FLOOR, str(work), str(work / "np.wav")]
    bench.row("plain.numpy", "plain: numpy floor", numpy_floor, seconds)
    files = sorted(str(p) for p in (work / "audio").glob("*.wav"))
    if shutil.which("sox"):
        bench.row(
            "plain.sox", "plain: sox -m", ["sox", "-m", *files, str(work / "sox.wav")], seconds
        )
    if shutil.which("ffmpeg"):
        inputs = [a for f in files for a in ("-i", f)]
        mix = f"amix=inputs={len(files)}:normalize=0"
        command = ["ffmpeg", "-y", "-loglevel", "error", *inputs, "-filter_complex", mix]
        bench.row("plain.ffmpeg", "plain: ffmpeg amix", [*command, str(work / "ff.wav")], seconds)
    if shutil.which("ecasound"):
        chains = [a for i, f in enumerate(files) for a in ("-a:" + str(i + 1), "-i", f)]
        all_chains = ",".join(str(i + 1) for i in range(len(files)))
        bench.row(
            "plain.ecasound",
            "plain: ecasound",
            ["ecasound", "-q", *chains, f"-a:{all_chains}", "-o", str(work / "eca.wav")],
            seconds,
        )


def _fader_changed(session: Path, db: float = 1.0) -> Path:
    """``session-fader.yaml`` beside ``session``: the first track's fader moved by ``db``."""
    data = yaml.safe_load(session.read_text("utf-8"))
    data["tracks"][0]["gain_db"] = float(data["tracks"][0].get("gain_db", 0.0)) + db
    changed = session.with_name("session-fader.yaml")
    changed.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return changed


def _reset_cache(seed: Path, cache: Path) -> None:
    """``cache`` as ``seed`` was (hard links: the cache writes new files and renames them into
    place, it never writes into an entry), so every re-render starts from the same cache."""
    shutil.rmtree(cache, ignore_errors=True)
    if seed.is_dir():
        shutil.copytree(seed, cache, copy_function=os.link)


def _audio_files(folder: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(folder)): p
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in AUDIO_SUFFIXES
    }


def _same_audio(a: Path, b: Path) -> tuple[bool, int]:
    """Whether the packages ``a`` and ``b`` hold the same audio files with the same sample data
    (read as int32, or float64 for float files: exact either way), and how many files."""
    files_a, files_b = _audio_files(a), _audio_files(b)
    if not files_a or files_a.keys() != files_b.keys():
        return False, len(files_a)
    for name, path in files_a.items():
        with sf.SoundFile(str(path)) as x, sf.SoundFile(str(files_b[name])) as y:
            if (x.samplerate, x.channels, x.frames) != (y.samplerate, y.channels, y.frames):
                return False, len(files_a)
            dtype = "float64" if x.subtype in ("FLOAT", "DOUBLE") else "int32"
            while len(block := x.read(1 << 18, dtype=dtype)):
                if not np.array_equal(block, y.read(1 << 18, dtype=dtype)):
                    return False, len(files_a)
    return True, len(files_a)


def cache_rows(bench: Bench, work: Path, tracks: int, minutes: float, verify: bool) -> None:
    """Incremental re-render (as ``bench/cache.py``): a cold render of the session after a +1 dB
    fader change, a cold render filling an empty cache, the re-render of the changed session
    with the cache the original filled, and the bit-identity of the last two packages' audio."""
    session = generate(work, tracks, minutes, plain=False)
    changed = _fader_changed(session)
    runs = work / "cache-bench"
    shutil.rmtree(runs, ignore_errors=True)
    cache, seed = runs / "cache", runs / "seed-cache"
    flags = ["--no-report"] + ([] if verify else ["--no-verify"])
    seconds = minutes * 60
    bench.row(
        "cache.cold",
        "cache: cold render, no cache (after the fader change)",
        render(changed, runs / "cold", *flags),
        seconds,
    )
    bench.row(
        "cache.fill",
        "cache: cold render filling an empty --cache",
        render(session, runs / "fill", *flags, "--cache", str(cache)),
        seconds,
        before=lambda: shutil.rmtree(cache, ignore_errors=True),
    )
    if cache.is_dir():
        cache.rename(seed)
    warm = bench.row(
        "cache.rerender",
        "cache: re-render after +1 dB on one fader, same cache",
        render(changed, runs / "rerender", *flags, "--cache", str(cache)),
        seconds,
        before=lambda: _reset_cache(seed, cache),
    )
    warm["verify"] = verify
    warm["bit_identical"], warm["files_compared"] = _same_audio(runs / "rerender", runs / "cold")
    warm["cache_bytes"] = sum(
        p.stat().st_size for p in seed.rglob("*") if p.suffix in (".pre", ".file", ".json")
    )
    try:
        entry = json.loads((runs / "rerender" / "manifest.json").read_text("utf-8"))["cache"]
        warm["reused_routes"], warm["rendered_routes"] = (
            len(entry["reused"]),
            len(entry["rendered"]),
        )
        warm["files_reused"] = len(entry.get("files_reused", []))
    except (OSError, KeyError, ValueError):
        pass


def demo_rows(bench: Bench, root: Path) -> None:
    """``stemprint demo`` once (not timed), then its session rendered without and with the
    report."""
    folder = root / "demo"
    made = subprocess.run(stemprint("demo", "-o", str(folder), "-q"), capture_output=True)
    if made.returncode != 0:
        error = made.stderr.decode(errors="replace").strip().splitlines()[-1:]
        print(f"  stemprint demo failed, no demo rows: {error}", file=sys.stderr)
        return
    session, out = folder / "session.yaml", folder / "out"
    seconds = sf.info(str(folder / "package" / "mix.wav")).duration
    bench.row(
        "demo.noreport",
        "demo: stemprint render --no-report",
        render(session, out, "--no-report"),
        seconds,
    )
    bench.row(
        "demo.default",
        "demo: stemprint render (default, with report)",
        render(session, out),
        seconds,
    )


def scale_rows(bench: Bench, points: list[tuple[int, float]], root: Path) -> None:
    """stemprint alone (mix + stems + manifest, ``--no-verify --no-report``) over sizes: is the
    cost linear, the memory flat?"""
    for tracks, minutes in points:
        work = root / f"{tracks}x{minutes:g}"
        session = generate(work, tracks, minutes, plain=False)
        r = bench.row(
            f"scale.{tracks}x{minutes:g}",
            f"scale: {tracks} tracks x {minutes:g} min",
            render(session, work / "out", "--no-verify", "--no-report"),
            minutes * 60,
        )
        r["tracks"], r["minutes"] = tracks, minutes
        r["ms_per_track_minute"] = round(1000 * r["seconds"] / (tracks * minutes), 1)


def print_rows(rows: list[dict]) -> None:
    """The groups' table; ``vs sp``: the ratio to the group's reference row."""
    reference = {r["group"]: r["seconds"] for r in rows if r["ok"] and r["key"] in REFERENCE_ROWS}
    print(f"{'row':<58} {'s':>8} {'CPU s':>7} {'x RT':>7} {'vs sp':>6} {'RSS MB':>7} {'PSS MB':>7}")
    for r in rows:
        base = reference.get(r["group"])
        ratio = f"{r['seconds'] / base:.2f}" if base and r["ok"] else "-"
        r["ratio_to_stemprint"] = float(ratio) if ratio != "-" else None
        rtf = r["realtime_factor"] if r["ok"] else "FAIL"
        print(
            f"{r['name']:<58} {r['seconds']:>8.2f} {r['cpu_seconds']:>7.2f} {rtf!s:>7} "
            f"{ratio:>6} {r['peak_rss_mb']:>7.0f} {r['peak_pss_tree_mb']:>7.0f}"
        )


def print_scale(rows: list[dict]) -> None:
    print(
        f"{'row':<34} {'s':>8} {'CPU s':>7} {'x RT':>7} {'ms/track-min':>13} "
        f"{'RSS MB':>7} {'PSS MB':>7}"
    )
    for r in rows:
        rtf = r["realtime_factor"] if r["ok"] else "FAIL"
        print(
            f"{r['name']:<34} {r['seconds']:>8.2f} {r['cpu_seconds']:>7.2f} {rtf!s:>7} "
            f"{r['ms_per_track_minute']:>13} {r['peak_rss_mb']:>7.0f} {r['peak_pss_tree_mb']:>7.0f}"
        )


def _target(text: str, limit: str, measured: str | None, met: bool | None, why: str) -> dict:
    return {"target": text, "limit": limit, "measured": measured or why, "met": met}


def _ratio(bench: Bench, text: str, key: str, base_key: str, limit: float, field: str) -> dict:
    """``key``'s ``field`` over ``base_key``'s, met when at most ``limit``."""
    a, b = bench.find(key), bench.find(base_key)
    if a is None or b is None:
        why = "not run" if a is None else f"no {base_key.split('.')[1]} row"
        return _target(text, f"<= {limit:.2f}x", None, None, why)
    if not (a["ok"] and b["ok"]):
        return _target(text, f"<= {limit:.2f}x", None, False, "row FAILED")
    value = a[field] / b[field]
    return _target(text, f"<= {limit:.2f}x", f"{value:.2f}x", value <= limit, "")


def _spread(rows: list[dict], same: str, field: str) -> float | None:
    """The largest max/min of ``field`` among rows sharing ``same`` (2 rows or more)."""
    groups: dict[float, list[float]] = {}
    for r in rows:
        groups.setdefault(r[same], []).append(r[field])
    spreads = [max(v) / min(v) for v in groups.values() if len(v) > 1 and min(v) > 0]
    return max(spreads, default=None)


def _scale_targets(bench: Bench) -> list[dict]:
    """Target 6 from the scale rows. "Flat" and "linear" are this bench's reading: peak PSS
    within 10 % over lengths at equal tracks; ms per track-minute within 25 % over lengths at
    equal tracks and over track counts (32 tracks or more: fixed costs dominate below) at equal
    length."""
    rows = [r for r in bench.rows if r["group"] == "scale" and r["ok"]]
    big = [r["peak_pss_tree_mb"] for r in rows if r["tracks"] >= 128]
    flat = _spread(rows, "tracks", "peak_pss_tree_mb")
    in_length = _spread(rows, "tracks", "ms_per_track_minute")
    in_tracks = _spread([r for r in rows if r["tracks"] >= 32], "minutes", "ms_per_track_minute")
    why = "no 128-track point" if rows else "not run"
    spread = "needs 2 lengths" if rows else "not run"
    return [
        _at_most("6. peak memory (tree PSS) at 128 tracks", max(big) if big else None, 150,
                 "{:.0f} MB", why),
        _at_most("6. memory flat with length (max/min PSS, same tracks)", flat, 1.10,
                 "{:.2f}x", spread),
        _at_most("6. cost linear in length (ms per track-minute, max/min)", in_length, 1.25,
                 "{:.2f}x", spread),
        _at_most("6. cost linear in tracks, >= 32 (ms per track-minute)", in_tracks, 1.25,
                 "{:.2f}x", "needs 2 counts" if rows else "not run"),
    ]  # fmt: skip


def _at_most(text: str, value: float | None, limit: float, shown: str, why: str) -> dict:
    """Met when ``value`` is at most ``limit``; ``why`` stands in when there is no value."""
    if not value:
        return _target(text, f"<= {shown.format(limit)}", None, None, why)
    return _target(text, f"<= {shown.format(limit)}", shown.format(value), value <= limit, why)


RATIO_TARGETS = [  # (target, row, reference row, limit of row / reference, field)
    ("1. full + stems + verification / pedalboard 2 thr, wall",
     "full.verify", "full.pedalboard2", 1.0, "seconds"),
    ("1. full + stems + verification / DawDreamer, wall",
     "full.verify", "full.dawdreamer", 0.5, "seconds"),
    ("1. full + stems + verification / pedalboard 2 thr, CPU",
     "full.verify", "full.pedalboard2", 1.25, "cpu_seconds"),
    ("2. verification: --no-report / --no-report --no-verify",
     "full.verify", "full.stems", 1.10, "seconds"),
    ("3. re-render after a fader change / cold render, no cache",
     "cache.rerender", "cache.cold", 0.25, "seconds"),
    ("4. plain sum, stemprint CLI / ecasound, wall",
     "plain.stemprint", "plain.ecasound", 1.0, "seconds"),
]  # fmt: skip


def targets(bench: Bench) -> list[dict]:
    """The speed targets from this run's rows (not run: the group or the peer was missing)."""
    found = [_ratio(bench, *t) for t in RATIO_TARGETS]
    warm = bench.find("cache.rerender") or {}
    same = warm.get("bit_identical") if warm.get("ok") else None
    files = (
        f"{'yes' if same else 'NO'} ({warm['files_compared']} files)" if same is not None else None
    )
    identical = "3. re-render bit-identical to the cold render"
    found.insert(5, _target(identical, "identical", files, same, "not run"))
    demo = bench.find("demo.noreport")
    seconds = f"{demo['seconds']:.2f} s" if demo and demo["ok"] else None
    met = demo["seconds"] <= 1.0 if seconds and demo else None
    found.append(_target("5. demo: render --no-report, wall", "<= 1.00 s", seconds, met, "not run"))
    return found + _scale_targets(bench)


def print_targets(found: list[dict]) -> None:
    print(f"\ntargets{'':<57} {'measured':>18} {'limit':>10}  status")
    for t in found:
        status = {True: "met", False: "NOT met", None: "-"}[t["met"]]
        print(f"{t['target']:<64} {t['measured']:>18} {t['limit']:>10}  {status}")


def _groups(only: list[str] | None, scale: str | None) -> list[str]:
    """``--only`` (repeatable) or every main group; ``--scale`` adds the scale series (alone,
    without ``--only``, as it always ran); ``all``: every group and the scale series."""
    chosen = set(only or ([] if scale else MAIN_GROUPS))
    if "all" in chosen:
        chosen |= {*MAIN_GROUPS, "scale"}
    if scale:
        chosen.add("scale")
    return [g for g in (*MAIN_GROUPS, "scale") if g in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/stemprint-bench"))
    parser.add_argument(
        "--json", type=Path, default=None, help="Also write the rows and targets here."
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[*MAIN_GROUPS, "scale", "all"],
        help="Run only this group (repeatable); all: every group and the scale series.",
    )
    parser.add_argument("--repeat", type=int, default=3, help="Runs per row (median time).")
    parser.add_argument(
        "--scale",
        default=None,
        help=f"Scale series points (tracks x minutes; default {DEFAULT_SCALE}); alone: "
        "the scale series instead of the other groups.",
    )
    parser.add_argument(
        "--cache-no-verify",
        action="store_true",
        help="Cache rows with --no-verify (default: verification on, no report).",
    )
    args = parser.parse_args()
    groups = _groups(args.only, args.scale)
    work = args.work / f"{args.tracks}x{args.minutes:g}"
    bench = Bench(args.repeat)
    if "full" in groups:
        full_rows(bench, work, args.tracks, args.minutes)
    if "plain" in groups:
        plain_rows(bench, work, args.tracks, args.minutes)
    if "demo" in groups:  # before the cache rows, which leave gigabytes for the disk to write
        demo_rows(bench, args.work)
    if "cache" in groups:
        cache_rows(bench, work, args.tracks, args.minutes, verify=not args.cache_no_verify)
    if "scale" in groups:
        points = [p.split("x") for p in (args.scale or DEFAULT_SCALE).split(",")]
        scale_rows(bench, [(int(t), float(m)) for t, m in points], args.work)

    rows = [r for r in bench.rows if r["group"] != "scale"]
    print(f"{os.cpu_count()} CPUs, {RATE} Hz; median of {args.repeat} run(s)")
    print("CPU s: user + system of the process tree; PSS: the tree's, shared pages counted once")
    if rows:
        print(f"\n{args.tracks} tracks × {args.minutes:g} min (the demo: its own length)")
        print_rows(rows)
    if len(rows) < len(bench.rows):
        print("\nscale series: stemprint mix + stems + manifest, --no-verify --no-report")
        print_scale([r for r in bench.rows if r["group"] == "scale"])
    found = targets(bench)
    print_targets(found)
    if args.json:
        result = {"tracks": args.tracks, "minutes": args.minutes, "cpus": os.cpu_count()}
        result |= {"repeat": args.repeat, "rows": bench.rows, "targets": found}
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

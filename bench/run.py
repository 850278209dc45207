"""Benchmark runner: stemprint against the tools users would otherwise pick, in one run.

    python bench/run.py [--tracks 32] [--minutes 3] [--work /tmp/stemprint-bench] [--json FILE]

Measures wall time, real-time factor, ratio to stemprint and peak memory (RSS of the child
process) for:

- full graph (``session.yaml``): stemprint mix + stems, stemprint mix only, stemprint on one
  thread, a straightforward pedalboard script (1 and 2 threads), DawDreamer if installed;
- plain sum (``session-plain.yaml``): stemprint mix only through the CLI (start-up included), the
  numpy floor (read every file with soundfile and sum), sox, ffmpeg and ecasound if installed.

Each row runs in its own process so its peak RSS is its own. Not part of the unit tests.
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import RATE, generate  # noqa: E402

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


def _run_once(command: list[str], sample_memory: bool) -> tuple[float, bool, str, float, float]:
    """Wall seconds, success, stderr, and with ``sample_memory`` the largest process's peak RSS
    and the tree's peak PSS (MB, sampled every 20 ms). Memory is sampled in a run of its own:
    reading ``smaps_rollup`` walks the page tables under the process's mmap lock and slows it.
    ``ru_maxrss`` is not used: Linux keeps it across exec, so a child would report at least this
    (Python) runner's own size. Worker processes share memory with their parent: the tree's PSS
    counts it once."""
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
    _, status, _ = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stop.set()
    if sample_memory:
        sampler.join()
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    ok = os.waitstatus_to_exitcode(status) == 0
    return seconds, ok, stderr, max(peaks.values(), default=0) / 1024, peak_pss / 1024


def measure(name: str, command: list[str], audio_seconds: float, repeat: int = 1) -> dict:
    """Run ``command`` ``repeat`` times for the median wall time, then once more for memory."""
    runs = [_run_once(command, sample_memory=False) for _ in range(repeat)]
    memory = _run_once(command, sample_memory=True)
    ok = all(r[1] for r in runs) and memory[1]
    seconds = statistics.median(r[0] for r in runs)
    stderr = next((r[2] for r in [*runs, memory] if not r[1]), "")
    return {
        "name": name,
        "ok": ok,
        "seconds": round(seconds, 3),
        "runs": [round(r[0], 3) for r in runs],
        "realtime_factor": round(audio_seconds / seconds, 1) if ok else None,
        "peak_rss_mb": round(memory[3], 1),
        "peak_pss_tree_mb": round(memory[4], 1),
        "error": None if ok else stderr.strip().splitlines()[-1:] or ["failed"],
    }


def scale_series(points: list[tuple[int, float]], root: Path, repeat: int) -> list[dict]:
    """stemprint alone (mix + stems + manifest) over sizes: is the cost linear?"""
    rows = []
    py = sys.executable
    for tracks, minutes in points:
        work = root / f"{tracks}x{minutes:g}"
        session = generate(work, tracks, minutes, plain=False)
        command = [py, "-m", "stemprint.cli.main", "render", str(session), "-o"]
        command += [str(work / "out"), "--force", "-q", "--no-verify"]
        row = measure(f"scale: {tracks} tracks x {minutes:g} min", command, minutes * 60, repeat)
        row["tracks"], row["minutes"] = tracks, minutes
        row["ms_per_track_minute"] = round(1000 * row["seconds"] / (tracks * minutes), 1)
        rows.append(row)
    print(f"{'row':<34} {'s':>8} {'x RT':>7} {'ms/track-min':>13} {'RSS MB':>7} {'PSS MB':>7}")
    for r in rows:
        print(
            f"{r['name']:<34} {r['seconds']:>8.2f} {r['realtime_factor']!s:>7} "
            f"{r['ms_per_track_minute']:>13} {r['peak_rss_mb']:>7.0f} {r['peak_pss_tree_mb']:>7.0f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/stemprint-bench"))
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    parser.add_argument("--only", choices=["full", "plain"], default=None)
    parser.add_argument("--repeat", type=int, default=3, help="Runs per row (median time).")
    parser.add_argument(
        "--scale",
        default=None,
        help="Scale series instead, e.g. 8x3,32x3,128x3,8x30,8x60 (tracks x minutes).",
    )
    args = parser.parse_args()
    if args.scale:
        points = [(int(t), float(m)) for t, m in (p.split("x") for p in args.scale.split(","))]
        rows = scale_series(points, args.work, args.repeat)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        return

    work = args.work / f"{args.tracks}x{args.minutes:g}"
    full = generate(work, args.tracks, args.minutes, plain=False)
    plain = generate(work, args.tracks, args.minutes, plain=True)
    out = work / "out"
    seconds = args.minutes * 60
    py = sys.executable
    stemprint = [py, "-m", "stemprint.cli.main"]
    rows: list[dict] = []
    repeat = args.repeat

    def render(session: Path, *extra: str) -> list[str]:
        return [*stemprint, "render", str(session), "-o", str(out), "--force", "-q", *extra]

    def row(name: str, command: list[str]) -> None:
        rows.append(measure(name, command, seconds, repeat))
        print(f"  {rows[-1]['name']}: {rows[-1]['runs']}", file=sys.stderr)

    if args.only in (None, "full"):
        row("full: stemprint mix + 5 stems + manifest", render(full, "--no-verify"))
        row("full: stemprint ... + self-verification (default)", render(full))
        row("full: stemprint mix only", render(full, "--no-stems", "--no-verify"))
        row(
            "full: stemprint mix + 5 stems, 1 thread",
            render(full, "--threads", "1", "--no-verify"),
        )
        for threads in (1, 2):
            row(
                f"full: pedalboard script, {threads} thread(s), mix only",
                [py, "-c", PEDALBOARD_SCRIPT, str(full), str(work / "pb.wav"), str(threads)],
            )
        try:
            import dawdreamer  # noqa: F401

            row(
                "full: DawDreamer, mix only (same graph, stand-ins noted)",
                [py, "-c", DAWDREAMER_SCRIPT, str(full), str(work / "dd.wav")],
            )
        except ImportError:
            pass
    if args.only in (None, "plain"):
        row("plain: stemprint CLI, mix only", render(plain, "--no-stems", "--no-verify"))
        row("plain: numpy floor", [py, "-c", NUMPY_FLOOR, str(work), str(work / "np.wav")])
        files = sorted(str(p) for p in (work / "audio").glob("*.wav"))
        if shutil.which("sox"):
            row("plain: sox -m", ["sox", "-m", *files, str(work / "sox.wav")])
        if shutil.which("ffmpeg"):
            inputs = [a for f in files for a in ("-i", f)]
            mix = f"amix=inputs={len(files)}:normalize=0"
            out_file = str(work / "ff.wav")
            row(
                "plain: ffmpeg amix",
                ["ffmpeg", "-y", "-loglevel", "error", *inputs, "-filter_complex", mix, out_file],
            )
        if shutil.which("ecasound"):
            chains = [a for i, f in enumerate(files) for a in ("-a:" + str(i + 1), "-i", f)]
            all_chains = ",".join(str(i + 1) for i in range(len(files)))
            row(
                "plain: ecasound",
                ["ecasound", "-q", *chains, f"-a:{all_chains}", "-o", str(work / "eca.wav")],
            )
    reference: dict[str, float] = {}  # the first stemprint row of each group
    for r in rows:
        if r["ok"] and "stemprint" in r["name"]:
            reference.setdefault(r["name"].split(":")[0], r["seconds"])
    print(f"{args.tracks} tracks × {args.minutes:g} min at {RATE} Hz, {os.cpu_count()} CPUs")
    print(f"median of {repeat} run(s); PSS: the process tree's, shared pages counted once")
    print(f"{'row':<58} {'s':>8} {'x RT':>7} {'vs sp':>6} {'RSS MB':>7} {'PSS MB':>7}")
    for r in rows:
        base = reference.get(r["name"].split(":")[0])
        ratio = f"{r['seconds'] / base:.2f}" if base and r["ok"] else "-"
        r["ratio_to_stemprint"] = float(ratio) if ratio != "-" else None
        rtf = r["realtime_factor"] if r["ok"] else "FAIL"
        print(
            f"{r['name']:<58} {r['seconds']:>8.2f} {rtf!s:>7} {ratio:>6} "
            f"{r['peak_rss_mb']:>7.0f} {r['peak_pss_tree_mb']:>7.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

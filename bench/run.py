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
import subprocess
import sys
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
graph, sums = [], {}
for t in s["tracks"]:
    x, _ = sf.read(f"{base}/{t['clips'][0]['file']}", dtype="float32", always_2d=True)
    x = x.T if x.shape[1] == 2 else np.vstack([x.T, x.T])
    node = engine.make_playback_processor(t["name"], x)
    graph.append((node, []))
    last = node.get_name()
    for i, ins in enumerate(t.get("inserts", [])):
        if ins["type"] == "compressor":
            c = engine.make_compressor_processor(f"{t['name']}c{i}")
            c.threshold, c.ratio = ins["threshold_db"], ins["ratio"]
            graph.append((c, [last])); last = c.get_name()
        elif ins["type"] == "highpass_filter":
            f = engine.make_filter_processor(f"{t['name']}f{i}", "high", 40.0, 0.707, 1.0)
            graph.append((f, [last])); last = f.get_name()
    sums.setdefault(t.get("output", "master"), []).append(last)
master_inputs = []
for b in s["buses"]:
    if b["name"] in sums:
        add = engine.make_add_processor(b["name"], [1.0] * len(sums[b["name"]]))
        graph.append((add, sums[b["name"]])); master_inputs.append(b["name"])
add = engine.make_add_processor("master", [1.0] * len(master_inputs))
graph.append((add, master_inputs))
engine.load_graph(graph)
seconds = max(sf.info(f"{base}/{t['clips'][0]['file']}").duration for t in s["tracks"])
engine.render(seconds)
sf.write(out, engine.get_audio().T, 48000, subtype="PCM_24")
"""


def measure(name: str, command: list[str], audio_seconds: float) -> dict:
    """Run ``command``; wall time and the child's peak RSS (``os.wait4``)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    ok = os.waitstatus_to_exitcode(status) == 0
    return {
        "name": name,
        "ok": ok,
        "seconds": round(seconds, 3),
        "realtime_factor": round(audio_seconds / seconds, 1) if ok else None,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "error": None if ok else stderr.strip().splitlines()[-1:] or ["failed"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/stemprint-bench"))
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    parser.add_argument("--only", choices=["full", "plain"], default=None)
    args = parser.parse_args()

    work = args.work / f"{args.tracks}x{args.minutes:g}"
    full = generate(work, args.tracks, args.minutes, plain=False)
    plain = generate(work, args.tracks, args.minutes, plain=True)
    out = work / "out"
    seconds = args.minutes * 60
    py = sys.executable
    stemprint = [py, "-m", "stemprint.cli.main"]
    rows: list[dict] = []

    def render(session: Path, *extra: str) -> list[str]:
        return [*stemprint, "render", str(session), "-o", str(out), "--force", "-q", *extra]

    if args.only in (None, "full"):
        rows.append(measure("full: stemprint mix + stems", render(full), seconds))
        rows.append(measure("full: stemprint mix only", render(full, "--no-stems"), seconds))
        rows.append(
            measure(
                "full: stemprint mix + stems, 1 thread", render(full, "--threads", "1"), seconds
            )
        )
        for threads in (1, 2):
            rows.append(
                measure(
                    f"full: pedalboard script, {threads} thread(s), mix only",
                    [py, "-c", PEDALBOARD_SCRIPT, str(full), str(work / "pb.wav"), str(threads)],
                    seconds,
                )
            )
        try:
            import dawdreamer  # noqa: F401

            rows.append(
                measure(
                    "full: DawDreamer, mix only (no reverb/sends/master chain)",
                    [py, "-c", DAWDREAMER_SCRIPT, str(full), str(work / "dd.wav")],
                    seconds,
                )
            )
        except ImportError:
            pass
    if args.only in (None, "plain"):
        rows.append(measure("plain: stemprint CLI, mix only", render(plain, "--no-stems"), seconds))
        rows.append(
            measure(
                "plain: numpy floor",
                [py, "-c", NUMPY_FLOOR, str(work), str(work / "np.wav")],
                seconds,
            )
        )
        files = sorted(str(p) for p in (work / "audio").glob("*.wav"))
        if shutil.which("sox"):
            rows.append(
                measure("plain: sox -m", ["sox", "-m", *files, str(work / "sox.wav")], seconds)
            )
        if shutil.which("ffmpeg"):
            inputs = [a for f in files for a in ("-i", f)]
            rows.append(
                measure(
                    "plain: ffmpeg amix",
                    [
                        "ffmpeg",
                        "-y",
                        "-loglevel",
                        "error",
                        *inputs,
                        "-filter_complex",
                        f"amix=inputs={len(files)}:normalize=0",
                        str(work / "ff.wav"),
                    ],
                    seconds,
                )
            )
        if shutil.which("ecasound"):
            chains = [a for i, f in enumerate(files) for a in ("-a:" + str(i + 1), "-i", f)]
            all_chains = ",".join(str(i + 1) for i in range(len(files)))
            rows.append(
                measure(
                    "plain: ecasound",
                    ["ecasound", "-q", *chains, f"-a:{all_chains}", "-o", str(work / "eca.wav")],
                    seconds,
                )
            )
    reference: dict[str, float] = {}  # the first stemprint row of each group
    for r in rows:
        if r["ok"] and "stemprint" in r["name"]:
            reference.setdefault(r["name"].split(":")[0], r["seconds"])
    print(f"{args.tracks} tracks × {args.minutes:g} min at {RATE} Hz, {os.cpu_count()} CPUs")
    print(f"{'row':<58} {'s':>8} {'x RT':>7} {'vs sp':>6} {'RSS MB':>7}")
    for row in rows:
        base = reference.get(row["name"].split(":")[0])
        ratio = f"{row['seconds'] / base:.2f}" if base and row["ok"] else "-"
        row["ratio_to_stemprint"] = float(ratio) if ratio != "-" else None
        rtf = row["realtime_factor"] if row["ok"] else "FAIL"
        print(
            f"{row['name']:<58} {row['seconds']:>8.2f} {rtf!s:>7} {ratio:>6} "
            f"{row['peak_rss_mb']:>7.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The incremental re-render cache: bit-identical to a cold render, reusing what is unchanged."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from stemprint.errors import InputError
from stemprint.export.package import RenderOptions, render_package
from stemprint.model.load import load_session
from stemprint.render.cache import MARKER_NAME, RenderCache
from stemprint.render.workers import fork_available
from tests.conftest import ArraySink, write_session, write_wav

BASE = {
    "tail_seconds": 0.05,
    "tracks": [
        {
            "name": "Kick",
            "clips": [{"file": "kick.wav"}],
            "gain_db": -2.0,
            "inserts": [{"type": "compressor", "threshold_db": -20, "ratio": 3}],
            "output": "Drums",
        },
        {
            "name": "Snare",
            "clips": [{"file": "snare.wav", "start_seconds": 0.01, "fade_in_seconds": 0.01}],
            "pan": -0.3,
            "inserts": [{"type": "distortion", "drive_db": 4}],
            "output": "Drums",
            "sends": [{"to": "Verb", "level_db": -8}],
        },
        {
            "name": "Bass",
            "clips": [{"file": "bass.wav"}],
            "inserts": [
                {"type": "highpass_filter", "cutoff_frequency_hz": 40},
                {"type": "compressor", "threshold_db": -18, "ratio": 2},
            ],
            "sends": [{"to": "Verb", "level_db": -12}],
        },
        {"name": "Vox", "clips": [{"file": "vox.wav"}], "pan": 0.2},  # no inserts: never cached
    ],
    "buses": [
        {"name": "Drums", "inserts": [{"type": "compressor", "threshold_db": -12, "ratio": 2}]},
        {"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.4}]},
    ],
    "master": {"inserts": [{"type": "limiter", "threshold_db": -3}]},
}
CACHED = sorted(["Kick", "Snare", "Bass", "Drums", "Verb", "master"])


@pytest.fixture(autouse=True)
def _signal_entries_only(monkeypatch):
    """These tests are of the signal entries: no printed file is reused from the cache here
    (a re-render of an unchanged route would copy its file and run nothing; that layer is
    tested in tests/export/test_reuse.py)."""
    monkeypatch.setattr("stemprint.export.package._file_keys", lambda job, settings: {})


@pytest.fixture
def media(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    for i, name in enumerate(["kick", "snare", "bass", "vox"]):
        x = rng.normal(0, 0.2, (1 + i % 2, 30000 + 1000 * i))
        write_wav(tmp_path / f"{name}.wav", x, subtype="FLOAT")
    return tmp_path


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of a package; the manifest without its ``cache`` entry."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name == "manifest.json":
            manifest = json.loads(data)
            manifest.pop("cache", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        found[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return found


def _render(folder: Path, session: dict, out: str, cache: Path | None, **options):
    path = write_session(folder, session)
    result = render_package(
        load_session(path),
        folder / out,
        RenderOptions(cache_dir=cache, force=True, verify=False, **options),
    )
    return _digests(folder / out), result.manifest


ROUTES = {"Kick", "Snare", "Bass", "Vox", "Drums", "Verb", "master"}
STORED = {"Kick", "Snare", "Bass", "Drums", "Verb", "master"}  # Vox has no inserts


def _change(kind: str, session: dict, folder: Path) -> tuple[dict, set[str]]:
    """The changed session and the routes that must run again (the rest is read back from
    the cache, or not needed at all). Kick and Snare feed Drums; Snare and Bass send to Verb
    (post-fader); Bass, Vox, Drums and Verb feed the master."""
    s = copy.deepcopy(session)
    tracks = {t["name"]: t for t in s["tracks"]}
    buses = {b["name"]: b for b in s["buses"]}
    if kind == "fader":
        tracks["Kick"]["gain_db"] = -5.0
        return s, {"Drums", "master"}
    if kind == "pan":
        tracks["Snare"]["pan"] = 0.5  # into Drums, and its post-fader send into Verb
        return s, {"Drums", "Verb", "master"}
    if kind == "send":
        tracks["Bass"]["sends"][0]["level_db"] = -3.0
        return s, {"Verb", "master"}
    if kind == "mute":
        tracks["Snare"]["mute"] = True  # Snare is not rendered at all
        return s, {"Drums", "Verb", "master"}
    if kind == "clip_gain":
        tracks["Snare"]["clips"][0]["gain_db"] = -1.5
        return s, {"Snare", "Drums", "Verb", "master"}
    if kind == "insert":
        tracks["Bass"]["inserts"][1]["ratio"] = 4
        return s, {"Bass", "Verb", "master"}
    if kind == "file":
        x = np.random.default_rng(99).normal(0, 0.2, (1, 30000))
        write_wav(folder / "kick.wav", x, subtype="FLOAT")
        return s, {"Kick", "Drums", "master"}
    if kind == "bus_insert":
        buses["Drums"]["inserts"][0]["ratio"] = 5
        return s, {"Drums", "master"}
    if kind == "bus_fader":
        buses["Verb"]["gain_db"] = -2.0  # its pre signal is unchanged
        return s, {"master"}
    if kind == "master_insert":
        s["master"]["inserts"][0]["threshold_db"] = -6
        return s, {"master"}
    raise AssertionError(kind)


KINDS = ["fader", "pan", "send", "mute", "clip_gain", "insert", "file", "bus_insert",
         "bus_fader", "master_insert"]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_second_render_is_identical_and_reruns_only_what_changed(media, kind):
    cache = media / "cache"
    first, manifest = _render(media, BASE, "a", cache)
    assert manifest["cache"]["reused"] == []
    assert set(manifest["cache"]["stored"]) == STORED
    changed, again = _change(kind, BASE, media)
    cold, _ = _render(media, changed, "cold", None)
    warm, manifest = _render(media, changed, "warm", cache)
    assert warm == cold
    present = ROUTES - ({"Snare"} if kind == "mute" else set())
    assert set(manifest["cache"]["rendered"]) == again | {"Vox"}  # Vox: no inserts, no entry
    assert set(manifest["cache"]["reused"]) == present - again - {"Vox"}
    assert set(manifest["cache"]["stored"]) == again
    # A third render of the same session reuses everything that has an entry.
    again_warm, manifest = _render(media, changed, "again", cache)
    assert again_warm == cold
    assert set(manifest["cache"]["reused"]) == present - {"Vox"}
    assert manifest["cache"]["stored"] == []


def _wide(count: int) -> dict:
    """``count`` tracks into one bus, each with a post-fader send to a shared return."""
    tracks = [
        {
            "name": f"T{i}",
            "clips": [{"file": f"w{i % 4}.wav", "start_seconds": 0.001 * i}],
            "gain_db": -6.0 - i % 3,
            "pan": (i % 5 - 2) / 3,
            "inserts": [{"type": "compressor", "threshold_db": -20, "ratio": 2 + i % 3}],
            "output": "Group",
            "sends": [{"to": "Verb", "level_db": -10.0 - i % 4, "pre_fader": i % 7 == 0}],
        }
        for i in range(count)
    ]
    return {
        "tail_seconds": 0.05,
        "tracks": tracks,
        "buses": [
            {"name": "Group", "inserts": [{"type": "compressor", "threshold_db": -10}]},
            {"name": "Verb", "inserts": [{"type": "reverb", "room_size": 0.3}]},
        ],
        "master": {"inserts": [{"type": "limiter", "threshold_db": -3}]},
    }


@pytest.mark.parametrize("kind", ["fader", "pan", "send", "pre_fader_send_and_fader"])
@pytest.mark.parametrize("threads", [1, 2])
def test_many_inputs_resum_one_partial_sum(media, kind, threads):
    # 20 inputs are summed in parts of 8, 8 and 4: one changed track re-sums its part and reads
    # the other parts' sums back; the tracks of those parts are not run at all.
    rng = np.random.default_rng(3)
    for k in range(4):
        write_wav(media / f"w{k}.wav", rng.normal(0, 0.1, (1 + k % 2, 20000)), subtype="FLOAT")
    session = _wide(20)
    cache = media / "cache"
    _, manifest = _render(media, session, "a", cache, threads=threads)
    assert manifest["cache"]["sums_stored"] == 6  # 3 partial sums into Group, 3 into Verb
    changed = copy.deepcopy(session)
    tracks = changed["tracks"]
    if kind == "fader":  # T9 is in part 1 of both sums; its send is post-fader
        tracks[9]["gain_db"] = -1.0
    elif kind == "pan":
        tracks[9]["pan"] = 0.9
    elif kind == "send":  # Group is unchanged: read back whole, its tracks not needed
        tracks[9]["sends"][0]["level_db"] = -2.0
    else:  # T0 sends pre-fader: its fader changes part 0 of Group, not Verb
        tracks[0]["gain_db"] = 0.0
    cold, _ = _render(media, changed, "cold", None, threads=threads)
    warm, manifest = _render(media, changed, "warm", cache, threads=threads)
    assert warm == cold
    entry = manifest["cache"]
    part = range(0, 8) if kind == "pre_fader_send_and_fader" else range(8, 16)
    both = kind in ("fader", "pan")
    assert entry["sums_stored"] == (2 if both else 1)
    assert entry["sums_reused"] == (4 if both else 2)
    assert set(entry["idle"]) == {f"T{i}" for i in range(20) if i not in part}
    assert set(entry["reused"]) == {f"T{i}" for i in range(20)} | (
        {"Verb"} if kind == "pre_fader_send_and_fader" else {"Group"} if kind == "send" else set()
    )
    assert "master" in entry["rendered"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block_size", [777, 4096])
def test_identical_for_block_sizes_threads_and_processes(media, threads, block_size):
    cache = media / "cache"
    _render(media, BASE, "seed", cache, block_size=1000, threads=2)
    cold, _ = _render(media, BASE, "cold", None, block_size=block_size, threads=threads)
    warm, manifest = _render(media, BASE, "warm", cache, block_size=block_size, threads=threads)
    assert warm == cold
    assert set(manifest["cache"]["reused"]) == STORED


def _entries(cache: Path) -> list[Path]:
    return sorted((cache / "entries").glob("*.pre"))


def test_corrupt_entry_is_a_miss_and_rendered_again(media):
    cache = media / "cache"
    cold, _ = _render(media, BASE, "cold", None)
    _render(media, BASE, "a", cache)
    entries = _entries(cache)
    assert len(entries) == len(STORED)
    for k, victim in enumerate(entries):
        data = bytearray(victim.read_bytes())
        if k % 3 == 0:
            data[-100] ^= 0x01  # one flipped bit in the samples
        elif k % 3 == 1:
            data = data[:-8]  # truncated
        else:
            data = bytearray(b"garbage")  # no header
        victim.write_bytes(bytes(data))
    warm, manifest = _render(media, BASE, "b", cache)
    assert warm == cold
    # A flipped bit stops the render where its chunk is read (the entry is deleted) and the
    # render runs again, checking every entry first: what the first run stored before it
    # stopped (computed, never read from a damaged entry) may be reused by the second.
    assert set(manifest["cache"]["stored"]) | set(manifest["cache"]["reused"]) == STORED
    warm, manifest = _render(media, BASE, "c", cache)
    assert warm == cold and set(manifest["cache"]["reused"]) == STORED


@pytest.mark.parametrize("victim", range(len(STORED)))
def test_one_corrupt_entry_renders_only_its_route_again(media, victim):
    # Whichever entry fails its check (a track's, a bus's or the master's), only its route is
    # rendered again, from inputs that come back from their own entries.
    cache = media / "cache"
    cold, _ = _render(media, BASE, "cold", None)
    _render(media, BASE, "a", cache)
    path = _entries(cache)[victim]
    data = bytearray(path.read_bytes())
    data[-4] ^= 0x10
    path.write_bytes(bytes(data))
    warm, manifest = _render(media, BASE, "b", cache)
    assert warm == cold
    stored = set(manifest["cache"]["stored"])
    assert set(manifest["cache"]["reused"]) == STORED - stored
    assert len(stored) <= 1
    # The premaster is tapped, so the master sums its inputs (the buses' entries): Kick and
    # Snare are needed only to render a bus again; a damaged entry of theirs is never read.
    idle = set(manifest["cache"]["idle"])
    assert (
        idle
        == {"Kick", "Snare"}
        - ({"Kick", "Snare"} if stored & {"Drums"} else set())
        - ({"Snare"} if stored & {"Verb"} else set())
        - stored
    )


def test_a_new_cache_opened_at_once_by_many_renders(tmp_path):
    # Every opener sees an empty folder or a marked one, never ``entries`` without its marker.
    errors: list[BaseException] = []

    def open_cache(root: Path, start: threading.Barrier) -> None:
        start.wait()
        try:
            RenderCache(root)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    for round_ in range(40):
        root = tmp_path / f"c{round_}"
        start = threading.Barrier(6)
        openers = [threading.Thread(target=open_cache, args=(root, start)) for _ in range(6)]
        for t in openers:
            t.start()
        for t in openers:
            t.join()
        assert not errors
        assert sorted(p.name for p in root.iterdir()) == sorted([MARKER_NAME, "entries"])
        assert "stemprint render cache" in (root / MARKER_NAME).read_text("utf-8")


def test_concurrent_renders_share_a_cache(media):
    cache = media / "cache"
    cold, _ = _render(media, BASE, "cold", None)
    path = write_session(media, BASE)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            render_package(
                load_session(path), media / f"c{i}",
                RenderOptions(cache_dir=cache, force=True, verify=False, threads=1),
            )  # fmt: skip
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    for i in range(3):
        assert _digests(media / f"c{i}") == cold
    assert len(_entries(cache)) == len(STORED)
    assert not [p for p in (cache / "entries").iterdir() if p.name.startswith(".tmp")]
    warm, manifest = _render(media, BASE, "after", cache)
    assert warm == cold and sorted(manifest["cache"]["reused"]) == CACHED


def test_size_cap_evicts_least_recently_used(media):
    cache = media / "cache"
    _render(media, BASE, "a", cache)
    sizes = {p.name: p.stat().st_size for p in _entries(cache)}
    biggest = max(sizes.values())
    _render(media, BASE, "b", cache, cache_max_bytes=biggest)
    left = _entries(cache)
    assert len(left) == 1
    assert sum(p.stat().st_size for p in left) <= biggest
    assert (cache / MARKER_NAME).is_file()


def test_refuses_a_folder_that_is_not_a_cache(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(InputError):
        RenderCache(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_eviction_is_least_recently_used_first(tmp_path):
    import os

    cache = RenderCache(tmp_path / "c", max_bytes=25)
    paths = [cache.entries / f"{c * 64}.pre" for c in "abc"]
    for age, path in zip([300, 100, 200], paths, strict=True):
        path.write_bytes(b"x" * 10)
        os.utime(path, (1e9 - age, 1e9 - age))
    cache.evict()
    assert [p.exists() for p in paths] == [False, True, True]
    cache.max_bytes = 15
    cache.evict()
    assert [p.exists() for p in paths] == [False, True, False]


def test_eviction_touches_only_its_own_files(tmp_path):
    cache = RenderCache(tmp_path / "c", max_bytes=0)
    other = cache.entries / "notes.txt"
    other.write_text("not an entry")
    (cache.entries / f"{'a' * 64}.pre").write_bytes(b"x" * 10)
    cache.evict()
    assert other.exists()
    assert not (cache.entries / f"{'a' * 64}.pre").exists()


def test_until_silent_is_not_cached(media):
    session = {**BASE, "delivery": {"tail": {"mode": "until_silent", "max_seconds": 0.2}}}
    try:
        yaml.safe_dump(session)
        _, manifest = _render(media, session, "a", media / "cache")
    except InputError:
        pytest.skip("delivery tail policy spelled differently")
    assert manifest["cache"]["stored"] == [] and "note" in manifest["cache"]


@pytest.mark.skipif(not fork_available(), reason="worker processes need os.fork")
def test_worker_processes_write_entries(media):
    cache = media / "cache"
    _render(media, BASE, "a", cache, threads=2)
    assert len(_entries(cache)) == len(STORED)
    cold, _ = _render(media, BASE, "cold", None, threads=1)
    warm, manifest = _render(media, BASE, "b", cache, threads=2)
    assert warm == cold and sorted(manifest["cache"]["reused"]) == CACHED


@pytest.mark.parametrize(
    "delivery",
    [{"returns": "split"}, {"preset": "remix"}, {"preset": "multitrack"}, {"preset": "mastering"}],
)
def test_variants_are_identical_with_the_cache(media, delivery):
    # Split returns, wet and dry stems, multitrack prints: instances of the same node for other
    # sets of tracks (and dry ones, never cached) live beside the full session's.
    session = {**copy.deepcopy(BASE), "delivery": delivery}
    cache = media / "cache"
    _render(media, session, "a", cache)
    changed, _ = _change("fader", session, media)
    cold, _ = _render(media, changed, "cold", None)
    warm, manifest = _render(media, changed, "warm", cache)
    assert warm == cold
    if delivery.get("preset") != "remix":  # remix prints dry stems: Kick's dry instance runs
        assert "Kick" in manifest["cache"]["reused"]
    else:
        assert manifest["cache"]["stored"] == ["Drums", "master"]


@pytest.mark.parametrize(("kind", "tracks"), [("fader", 1), ("insert", 2), ("file", 2)])
def test_tracks_to_run_counts_what_the_cached_render_renders(media, kind, tracks):
    """What decides the meter processes: the tracks a render runs. Cold: all four; after a
    change, only those without a usable entry (Vox has no inserts, so never an entry)."""
    from stemprint.graph.compile import compile_session
    from stemprint.render.engine import Renderer

    cache = media / "cache"

    def renderer(session: dict) -> Renderer:
        graph = compile_session(load_session(write_session(media, session)))
        return Renderer(graph, 4096, cache=RenderCache(cache), threads=1)

    assert renderer(BASE).tracks_to_run() == 4
    _render(media, BASE, "a", cache)
    assert renderer(BASE).tracks_to_run() == 1  # Vox
    changed, _ = _change(kind, BASE, media)
    prepared = renderer(changed)
    assert prepared.tracks_to_run() == tracks
    sinks = {tap.key: ArraySink() for tap in prepared.taps}
    prepared.run(sinks)  # type: ignore[arg-type]  # the plan made for the count is used
    assert prepared._prepared is None
    assert set(prepared.cache_report["rendered"]) >= {"Vox"}

"""NI Stems (``.stem.mp4``) through ``stemprint render``: streams, audio, boxes, bytes, refusals.

The file is read back by independent readers (the ffmpeg and ffprobe CLIs, MediaInfo, mutagen),
never by the PyAV that wrote it; each is skipped with a message where it is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from stemprint.analysis.ni_stem_check import check_ni_stem
from stemprint.cli.main import app
from stemprint.export import mp4box
from tests.conftest import write_wav

RATE = 44100
SECONDS = 2.0
STEMS = ["Drums", "Bass", "Other", "Vocals"]
runner = CliRunner()


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(
            f"{tool} is not installed (CI installs it with apt-get): independent check skipped"
        )
    return path


def _signals() -> dict[str, np.ndarray]:
    """Music-like mono sources (tones, a kick with a click on every beat) for four tracks."""
    n = int(RATE * SECONDS)
    t = np.arange(n) / RATE
    kick = np.zeros(n)
    for onset in [*range(0, n, RATE // 2), n - RATE // 10]:  # the last one rings past the end
        tau = t[: n - onset]
        kick[onset:] += 0.5 * np.sin(2 * np.pi * 60 * tau) * np.exp(-tau / 0.08)
        kick[onset] += 0.4  # the click: a sharp edge for alignment
    bass = sum(0.12 / k * np.sin(2 * np.pi * 55 * k * t) for k in range(1, 7))
    keys = sum(
        0.05 / k * np.sin(2 * np.pi * f * k * t) for f in (262.0, 330.0, 392.0) for k in (1, 2, 3)
    ) * (0.75 + 0.25 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * 220 * t + 0.02 * 220 / 5 * np.sin(2 * np.pi * 5 * t)
    vox = sum(0.1 / k**2 * np.sin(k * phase) for k in range(1, 9)) * np.minimum(1, 4 * t)
    return {"kick": kick, "bass": bass, "keys": keys, "vox": vox}


def _session(folder: Path, ni_stem: dict[str, Any] | None, **delivery: Any) -> Path:
    """Four tracks, a shared convolution reverb fed from three of them, a limiting master;
    four stems; ``returns: split`` unless ``delivery`` says otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, signal in _signals().items():
        write_wav(folder / f"{name}.wav", signal[None, :], RATE, subtype="PCM_24")
    rng = np.random.default_rng(7)
    length = int(0.25 * RATE)
    ir = rng.standard_normal((2, length)) * np.exp(-np.arange(length) / (0.05 * RATE)) * 0.05
    write_wav(folder / "ir.wav", ir, RATE, subtype="FLOAT")
    send = [{"to": "Verb", "level_db": -8}]
    data = {
        "stemprint": 1,
        "name": "Club Night",
        "sample_rate": RATE,
        "tail_seconds": 0.3,
        "tracks": [
            {"name": "Kick", "clips": [{"file": "kick.wav"}], "sends": send},
            {"name": "Bass", "clips": [{"file": "bass.wav"}], "pan": -0.2},
            {"name": "Keys", "clips": [{"file": "keys.wav"}], "pan": 0.4, "sends": send},
            {"name": "Lead Vox", "clips": [{"file": "vox.wav"}], "sends": send},
        ],
        "buses": [
            {
                "name": "Verb",
                "inserts": [
                    {"type": "convolution", "impulse_response_filename": "ir.wav", "mix": 1.0}
                ],
            }
        ],
        "master": {"inserts": [{"type": "limiter", "threshold_db": -6}]},
        "stems": [
            {"name": "Drums", "routes": ["Kick"]},
            {"name": "Bass", "routes": ["Bass"]},
            {"name": "Other", "routes": ["Keys"]},
            {"name": "Vocals", "routes": ["Lead Vox"]},
        ],
        "delivery": {"returns": "split", **delivery},
    }
    if ni_stem is not None:
        data["delivery"]["ni_stem"] = ni_stem
    path = folder / "session.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _render(session: Path, out: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["render", str(session), "-o", str(out)])
    assert result.exit_code == 0, result.output
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return manifest


@pytest.fixture(scope="module")
def alac(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("alac")
    out = root / "out"
    return out, _render(_session(root / "s", {"stems": STEMS}), out)


@pytest.fixture(scope="module")
def aac(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("aac")
    out = root / "out"
    return out, _render(_session(root / "s", {"codec": "aac", "stems": STEMS}), out)


def _entry(manifest: dict[str, Any], role: str) -> dict[str, Any]:
    return next(f for f in manifest["files"] if f["role"] == role)


def _wavs(out: Path, manifest: dict[str, Any]) -> list[np.ndarray]:
    """The mix and the four stems (``(n, 2)``; a mono file on both channels), in stream order."""
    stems = {f["name"]: f["path"] for f in manifest["files"] if f["role"] == "stem"}
    paths = [_entry(manifest, "mix")["path"], *(stems[name] for name in STEMS)]
    found = []
    for path in paths:
        data = sf.read(str(out / path), always_2d=True)[0]
        found.append(np.repeat(data, 2, axis=1) if data.shape[1] == 1 else data)
    return found


def _decode(path: Path, codec: str, *extra: str) -> list[np.ndarray]:
    """Every audio stream decoded by the ffmpeg CLI in one run, ``(n, 2)`` float64 each (s32
    for ALAC: exact)."""
    ffmpeg = _need("ffmpeg")
    pcm, dtype = ("s32le", "<i4") if codec == "alac" else ("f32le", "<f4")
    with tempfile.TemporaryDirectory() as folder:
        raws = [Path(folder) / f"{index}.raw" for index in range(5)]
        command = [ffmpeg, "-v", "error", *extra, "-i", str(path)]
        for index, raw in enumerate(raws):
            command += ["-map", f"0:a:{index}", "-f", pcm, str(raw)]
        subprocess.run(command, capture_output=True, check=True)
        found = [np.frombuffer(raw.read_bytes(), dtype).reshape(-1, 2) for raw in raws]
    scale = 2.0**31 if codec == "alac" else 1.0
    return [x.astype(np.float64) / scale for x in found]


def _ffprobe(path: Path) -> list[dict[str, Any]]:
    command = [_need("ffprobe"), "-v", "error", "-show_streams", "-of", "json", str(path)]
    done = subprocess.run(command, capture_output=True, check=True, text=True)
    streams: list[dict[str, Any]] = json.loads(done.stdout)["streams"]
    return streams


def _dbfs(x: np.ndarray) -> float:
    peak = float(np.max(np.abs(x)))
    return 20 * np.log10(peak) if peak > 0 else -np.inf


def _ebur128_lufs(*inputs: str) -> float:
    """Integrated loudness by ffmpeg's own ``ebur128`` filter."""
    command = [_need("ffmpeg"), "-hide_banner", "-nostats", *inputs]
    done = subprocess.run(
        [*command, "-af", "ebur128", "-f", "null", "-"], capture_output=True, text=True, check=True
    )
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", done.stderr)[-1])


def test_alac_streams_as_ffprobe_and_mediainfo_see_them(alac):
    out, manifest = alac
    entry = _entry(manifest, "ni_stem")
    path = out / entry["path"]
    assert entry["path"] == "Club Night.stem.mp4" and path.is_file()
    streams = _ffprobe(path)
    assert [s["codec_name"] for s in streams] == ["alac"] * 5
    assert [s["channels"] for s in streams] == [2] * 5
    assert {s["sample_rate"] for s in streams} == {str(RATE)}
    assert [s["disposition"]["default"] for s in streams] == [1, 0, 0, 0, 0]
    assert [s["tags"]["handler_name"] for s in streams] == ["Mix", *STEMS]
    assert entry["streams"] == ["Mix", *STEMS]
    assert entry["codec"] == "alac" and entry["lossy"] is False and entry["priming_samples"] == 0
    mediainfo = _need("mediainfo")
    done = subprocess.run(
        [mediainfo, "--Output=JSON", str(path)], capture_output=True, check=True, text=True
    )
    audio = [t for t in json.loads(done.stdout)["media"]["track"] if t["@type"] == "Audio"]
    assert [t["Format"] for t in audio] == ["ALAC"] * 5
    assert [t["Default"] for t in audio] == ["Yes", "No", "No", "No", "No"]
    assert [t["Channels"] for t in audio] == ["2"] * 5
    assert [t["SamplingCount"] for t in audio] == [str(manifest["length_samples"])] * 5


def test_alac_decodes_to_the_wavs_and_the_stems_sum_to_the_premaster(alac):
    out, manifest = alac
    path = out / _entry(manifest, "ni_stem")["path"]
    wavs = _wavs(out, manifest)
    decoded = _decode(path, "alac")
    for index, (got, want) in enumerate(zip(decoded, wavs, strict=True)):
        assert got.shape == want.shape == (manifest["length_samples"], 2), index
        assert _dbfs(got - want) <= -120, index  # 24-bit in, 24-bit out: bit-exact
    premaster = sf.read(str(out / _entry(manifest, "premaster")["path"]), always_2d=True)[0]
    assert _dbfs(sum(decoded[1:]) - premaster) <= -120
    # The shared reverb really was split into the stems: its tail rings in three of them.
    tail = slice(int(SECONDS * RATE) + 1000, int(SECONDS * RATE) + 5000)
    ringing = [_dbfs(d[tail]) > -80 for d in decoded[1:]]
    assert ringing == [True, False, True, True]


def test_boxes_are_as_ni_writes_them(alac):
    out, manifest = alac
    path = out / _entry(manifest, "ni_stem")["path"]
    data = path.read_bytes()
    boxes = mp4box.read_boxes(data)
    order = [b.type for b in boxes]
    assert order[0] == "ftyp" and order.index("moov") < order.index("mdat")  # fast start
    assert mp4box.major_brand(data) == "M4A "
    assert mp4box.track_flags(data) == [0x1, 0x0, 0x0, 0x0, 0x0]
    stem = mp4box.find_box(boxes, "moov/udta/stem")
    assert stem is not None
    document = json.loads(stem.payload(data))
    assert document["version"] == 1
    assert document["stems"] == [
        {"name": "Drums", "color": "#009E73"},
        {"name": "Bass", "color": "#D55E00"},
        {"name": "Other", "color": "#CC79A7"},
        {"name": "Vocals", "color": "#56B4E9"},
    ]
    assert document["mastering_dsp"]["compressor"]["enabled"] is False
    assert document["mastering_dsp"]["limiter"]["enabled"] is False
    times = mp4box.header_times(data)
    assert all(value == 0 for values in times.values() for value in values)
    assert b"Lavf" not in data and b"Lavc" not in data  # no library version tags


def test_itunes_tags_and_a_mutagen_round_trip_keep_the_stem_box(alac, tmp_path):
    from mutagen.mp4 import MP4

    out, manifest = alac
    path = out / _entry(manifest, "ni_stem")["path"]
    tags = MP4(str(path)).tags
    assert tags is not None
    assert tags["\xa9nam"] == ["Club Night"] and tags["TAUT"] == ["STEM"]
    copy = tmp_path / "copy.stem.mp4"
    shutil.copy(path, copy)
    tagged = MP4(str(copy))
    assert tagged.tags is not None
    tagged.tags["\xa9ART"] = ["A much longer artist name, so that the tags grow " * 100]
    tagged.save()
    before = mp4box.find_box(mp4box.read_boxes(path.read_bytes()), "moov/udta/stem")
    after_data = copy.read_bytes()
    after = mp4box.find_box(mp4box.read_boxes(after_data), "moov/udta/stem")
    assert before is not None and after is not None
    assert after.payload(after_data) == before.payload(path.read_bytes())
    assert copy.stat().st_size > path.stat().st_size
    # The chunk offsets moved with the grown moov: every stream still decodes to its WAV.
    for index, (got, want) in enumerate(
        zip(_decode(copy, "alac"), _wavs(out, manifest), strict=True)
    ):
        assert _dbfs(got - want) <= -120, index
    assert check_ni_stem(copy).passed


def test_checker_and_cli_accept_the_rendered_file(alac):
    out, manifest = alac
    path = out / _entry(manifest, "ni_stem")["path"]
    check = check_ni_stem(path)
    assert check.passed, check.findings
    assert not [f for f in check.findings if f.severity == "warning"]
    result = runner.invoke(app, ["verify", str(path), "--profile", "ni-stem"])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    # The package itself still verifies: the .stem.mp4 takes part in no sum.
    result = runner.invoke(app, ["verify", str(out)])
    assert result.exit_code == 0, result.output


def test_two_renders_give_identical_bytes(alac, tmp_path):
    out, manifest = alac
    again = _render(_session(tmp_path / "s", {"stems": STEMS}), tmp_path / "out")
    first, second = _entry(manifest, "ni_stem"), _entry(again, "ni_stem")
    assert first["sha256"] == second["sha256"]
    assert (out / first["path"]).read_bytes() == (tmp_path / "out" / second["path"]).read_bytes()


def test_aac_is_aligned_and_as_loud_as_the_wavs(aac):
    out, manifest = aac
    entry = _entry(manifest, "ni_stem")
    path = out / entry["path"]
    assert entry["codec"] == "aac" and entry["bitrate_kbps"] == 256 and entry["lossy"] is True
    streams = _ffprobe(path)
    assert [s["codec_name"] for s in streams] == ["aac"] * 5
    assert [s["disposition"]["default"] for s in streams] == [1, 0, 0, 0, 0]
    # Every track's edit list declares the encoder delay, which the manifest records.
    lists = mp4box.edit_lists(path.read_bytes())
    assert [entries[0][1] for entries in lists] == [1024] * 5 == [entry["priming_samples"]] * 5
    n = manifest["length_samples"]
    raws = _decode(path, "aac", "-ignore_editlist", "1")
    edited = _decode(path, "aac")  # ffmpeg applies the edit list itself
    for index, (raw, decoded, want) in enumerate(
        zip(raws, edited, _wavs(out, manifest), strict=True)
    ):
        assert len(raw) >= n + 1024, index  # the priming is in the stream ...
        trimmed = raw[1024 : 1024 + n]  # ... and trimmed as the edit list says
        assert _lag(trimmed[:, 0], want[:, 0]) == 0, index
        assert n <= len(decoded) < n + 1024, index  # AAC frames: not sample-exact in length
        assert _lag(decoded[:n, 0], want[:, 0]) == 0, index
        wav = str(out / ([_entry(manifest, "mix")] + _stem_entries(manifest))[index]["path"])
        coded = _ebur128_lufs("-i", str(path), "-map", f"0:a:{index}")
        assert abs(coded - _ebur128_lufs("-i", wav)) <= 0.2, index
    assert check_ni_stem(path).passed


def _stem_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    stems = {f["name"]: f for f in manifest["files"] if f["role"] == "stem"}
    return [stems[name] for name in STEMS]


def _lag(got: np.ndarray, want: np.ndarray) -> int:
    """Lag of ``got`` behind ``want`` in samples (cross-correlation peak, by FFT)."""
    size = 1 << int(np.ceil(np.log2(len(got) + len(want))))
    spectrum = np.fft.rfft(got, size) * np.conj(np.fft.rfft(want, size))
    correlation = np.fft.irfft(spectrum, size)
    lag = int(np.argmax(correlation))
    return lag if lag < size // 2 else lag - size


def test_a_mono_stem_is_written_as_stereo(tmp_path):
    session = _session(tmp_path / "s", {"stems": STEMS}, mono_stems=True)
    data = yaml.safe_load(session.read_text(encoding="utf-8"))
    data["tracks"][3]["sends"] = []  # dry vocals panned centre: a mono stem
    session.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    manifest = _render(session, tmp_path / "out")
    vocals = next(f for f in manifest["files"] if f["name"] == "Vocals")
    assert vocals["channels"] == 1
    path = tmp_path / "out" / _entry(manifest, "ni_stem")["path"]
    assert [s["channels"] for s in _ffprobe(path)] == [2] * 5
    decoded = _decode(path, "alac")[4]
    mono = sf.read(str(tmp_path / "out" / vocals["path"]), always_2d=True)[0][:, 0]
    assert _dbfs(decoded[:, 0] - mono) <= -120 and _dbfs(decoded[:, 1] - mono) <= -120


def _refused(session: Path, out: Path) -> str:
    result = runner.invoke(app, ["render", str(session), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert not out.exists()  # nothing published
    return " ".join(result.output.split())


def test_refuses_a_stem_the_package_does_not_have(tmp_path):
    session = _session(tmp_path / "s", {"stems": ["Drums", "Bass", "Keys", "Vocals"]})
    text = _refused(session, tmp_path / "out")
    assert "delivery.ni_stem.stems" in text and "'Keys' is not a stem of the package" in text
    assert "its stems: Drums, Bass, Other, Vocals" in text


def test_refuses_stems_that_do_not_sum_to_the_premaster(tmp_path):
    # Separate returns: the reverb is a fifth stem, so the four alone miss its share.
    session = _session(tmp_path / "s", {"stems": STEMS}, returns="separate")
    text = _refused(session, tmp_path / "out")
    assert "delivery.ni_stem.stems" in text and "only with stems/Verb.wav" in text
    assert "delivery.returns: split" in text


def test_refuses_bad_colours(tmp_path):
    session = _session(tmp_path / "s", {"stems": STEMS, "colors": ["red"] * 4})
    text = _refused(session, tmp_path / "out")
    assert "delivery.ni_stem.colors" in text and "#RRGGBB" in text


def test_box_edits_keep_the_media_and_move_the_offsets(alac):
    out, manifest = alac
    data = (out / _entry(manifest, "ni_stem")["path"]).read_bytes()
    pad = mp4box.make_box("free", bytes(1000))
    grown = mp4box.insert_box(data, "moov/udta", pad)
    assert len(grown) == len(data) + 1008
    old, new = mp4box.read_boxes(data), mp4box.read_boxes(grown)
    for name in ("moov", "moov/udta"):
        before, after = mp4box.find_box(old, name), mp4box.find_box(new, name)
        assert before is not None and after is not None and after.size == before.size + 1008
    mdat_old = next(b for b in old if b.type == "mdat")
    mdat_new = next(b for b in new if b.type == "mdat")
    assert mdat_old.payload(data) == mdat_new.payload(grown)
    assert _chunk_offsets(grown) == [o + 1008 for o in _chunk_offsets(data)]
    assert mp4box.remove_box(grown, "moov/udta/free") == data
    replaced = mp4box.replace_payload(data, "moov/udta/stem", b'{"version": 1}')
    stem = mp4box.find_box(mp4box.read_boxes(replaced), "moov/udta/stem")
    assert stem is not None and stem.payload(replaced) == b'{"version": 1}'


def _chunk_offsets(data: bytes) -> list[int]:
    import struct

    found: list[int] = []
    for box in mp4box.walk(mp4box.read_boxes(data)):
        if box.type == "stco":
            (count,) = struct.unpack_from(">I", data, box.payload_offset + 4)
            found += struct.unpack_from(f">{count}I", data, box.payload_offset + 8)
    return found

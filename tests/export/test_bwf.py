"""Broadcast WAV: bext v2 bytes at the documented offsets, loudness patched from the meters,
iXML, RF64, independent readers (MediaInfo, ffprobe), untouched audio, byte-identical renders."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from defusedxml import ElementTree
from typer.testing import CliRunner

from stemprint._version import __version__
from stemprint.cli.main import app
from stemprint.errors import InputError, RenderError
from stemprint.export.audio import AudioWriter
from stemprint.export.bwf import (
    BextLoudness,
    BroadcastInfo,
    append_chunk,
    bext_fixed,
    broadcast_info_struct,
    coding_history,
    libsndfile_handle,
    origination,
    read_bext,
    read_chunk,
    write_bext,
)
from stemprint.export.package import RenderOptions, render_package
from stemprint.model.load import load_session
from stemprint.riff import riff_layout
from tests.conftest import write_session, write_wav

RATE = 48_000
ONE_HOUR_23_976 = 172_972_800
LIBSNDFILE_LINE = f"A=PCM,F=48000,W=24,M=stereo,T=libsndfile-{sf.__libsndfile_version__}\r\n"
runner = CliRunner()


def _session(folder: Path, **extra) -> Path:
    rng = np.random.default_rng(7)
    seconds = 3.5  # past the 3 s short-term window: every loudness field is measured
    n = int(seconds * RATE)
    write_wav(folder / "music.wav", 0.2 * rng.uniform(-1, 1, (2, n)), subtype="PCM_24")
    tone = 0.1 * np.sin(2 * np.pi * 997 * np.arange(n) / RATE)
    write_wav(folder / "dial.wav", tone[None, :], subtype="PCM_24")
    return write_session(
        folder,
        {
            "name": "Reel 1",
            "start_timecode": "01:00:00:00",
            "frame_rate": "23.976",
            "metadata": {
                "title": "Film",
                "originator": "Post House",
                "originator_reference": "REF-42",
                "project": "Proj & <Co>",
                "scene": "12A",
                "take": "3",
                "tape": "R1",
                "note": "temp mix",
            },
            "tracks": [
                {"name": "Music", "clips": [{"file": "music.wav"}]},
                {"name": "Dial", "clips": [{"file": "dial.wav"}], "gain_db": -6},
            ],
            **extra,
        },
    )


def _render(folder: Path, out: str, **options) -> tuple[Path, dict]:
    result = render_package(load_session(folder / "session.yaml"), folder / out,
                            RenderOptions(**options))  # fmt: skip
    return result.out_dir, result.manifest


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.delenv("SOURCE_DATE_EPOCH", raising=False)
    folder = tmp_path_factory.mktemp("bwf")
    _session(folder)
    out, manifest = _render(folder, "out")
    mp.undo()
    return folder, out, manifest


def _wavs(out: Path, manifest: dict) -> list[tuple[Path, dict]]:
    return [(out / e["path"], e) for e in manifest["files"]]


def _levels(out: Path) -> dict[str, dict]:
    report = json.loads((out / "verification.json").read_text())
    return {f["label"]: f["levels"] for f in report["files"]}


# --- bytes ---------------------------------------------------------------------------------


def test_bext_bytes_at_the_documented_offsets(package):
    _, out, manifest = package
    raw = (out / "stems" / "Dial.wav").read_bytes()
    at = raw.index(b"bext")
    (size,) = struct.unpack_from("<I", raw, at + 4)
    data = raw[at + 8 : at + 8 + size]
    ours = coding_history(RATE, 24, 2)
    assert ours == f"A=PCM,F=48000,W=24,M=stereo,T=stemprint {__version__}\r\n"
    history = (ours + LIBSNDFILE_LINE).encode()
    assert size == 602 + len(history) + (len(history) & 1)  # libsndfile's line appended
    assert data[0:256].rstrip(b"\0") == b"Film: Dial"
    assert data[256:288].rstrip(b"\0") == b"Post House"
    assert data[288:320].rstrip(b"\0") == b"REF-42"
    assert data[320:338] == b"\0" * 18  # no SOURCE_DATE_EPOCH: no origination date or time
    assert struct.unpack_from("<IIH", data, 338) == (ONE_HOUR_23_976, 0, 2)
    assert data[348:412] == b"\0" * 64  # UMID
    assert data[422:602] == b"\0" * 180  # reserved
    assert data[602:].rstrip(b"\0") == history
    loudness = struct.unpack_from("<5h", data, 412)
    assert loudness == tuple(
        round(v * 100) for v in manifest["files"][2]["bwf"]["loudness"].values()
    )
    assert manifest["files"][2]["path"] == "stems/Dial.wav"


def test_libsndfile_writes_our_fixed_part_unchanged(tmp_path):
    """The C struct (2 alignment bytes after OriginationTime) lands as the 602 on-disk bytes."""
    info = BroadcastInfo(
        title="T", description="d" * 300, originator="o", origination_date="2026-01-02",
        origination_time="03:04:05", time_reference_samples=(7 << 32) + 5,
    )  # fmt: skip
    fixed = bext_fixed(info)
    assert len(fixed) == 602
    history = coding_history(RATE, 24, 2)
    assert len(broadcast_info_struct(fixed, history)) == 608 + len(history)
    path = tmp_path / "t.wav"
    with sf.SoundFile(str(path), "w", RATE, 2, "PCM_24") as handle:
        write_bext(handle, info, RATE, 24)
        handle.write(np.zeros((10, 2)))
    chunk = riff_layout(path).find(b"bext")
    assert chunk is not None
    assert path.read_bytes()[chunk.data_offset : chunk.data_offset + 602] == fixed
    bext = read_bext(path)
    assert bext is not None
    assert bext.description == "d" * 256 and bext.time_reference_samples == (7 << 32) + 5
    assert bext.loudness == BextLoudness()  # 0x7FFF: unknown until patched


def test_soundfile_private_api_still_reaches_libsndfile(tmp_path):
    """stemprint reaches sf_command through soundfile's private _snd/_ffi/_file: if a soundfile
    release renames them, this fails (pin the version that works)."""
    assert hasattr(sf, "_snd") and hasattr(sf, "_ffi") and hasattr(sf._snd, "sf_command")
    with sf.SoundFile(str(tmp_path / "t.wav"), "w", RATE, 1, "PCM_16") as handle:
        lib, _ffi, pointer = libsndfile_handle(handle)
        assert pointer is handle._file and lib is sf._snd
        handle.write(np.zeros(4))
        with pytest.raises(RenderError, match="did not take the bext"):
            write_bext(handle, BroadcastInfo(), RATE, 16)  # after the first sample: refused
    assert read_bext(tmp_path / "t.wav") is None


def test_loudness_encoding():
    loudness = BextLoudness(-23.124, 7.455, -1.05, float("-inf"), None)
    assert struct.unpack("<5h", loudness.encode()) == (-2312, 746, -105, 0x7FFF, 0x7FFF)
    assert loudness.stored() == BextLoudness(-23.12, 7.46, -1.05, None, None)
    assert struct.unpack("<5h", BextLoudness(-400.0, 500.0).encode())[:2] == (-32768, 32766)


def test_origination_from_source_date_epoch():
    assert origination({}) == ("", "")
    assert origination({"SOURCE_DATE_EPOCH": "1767225600"}) == ("2026-01-01", "00:00:00")
    with pytest.raises(InputError) as info:
        origination({"SOURCE_DATE_EPOCH": "yesterday"})
    assert info.value.field == "SOURCE_DATE_EPOCH"


# --- loudness, iXML, manifest --------------------------------------------------------------


def test_loudness_patched_equals_the_verification(package):
    _, out, manifest = package
    levels = _levels(out)
    keys = ("loudness_lufs", "loudness_range_lu", "true_peak_dbtp", "max_momentary_lufs",
            "max_short_term_lufs")  # fmt: skip
    for path, entry in _wavs(out, manifest):
        bext = read_bext(path)
        assert bext is not None and bext.version == 2
        measured = [levels[entry["path"]][k] for k in keys]
        assert all(v is not None for v in measured)
        assert bext.loudness == BextLoudness(*entry["bwf"]["loudness"].values())
        for stored, value in zip(bext.loudness.values(), measured, strict=True):
            assert stored == pytest.approx(value, abs=0.005 + 1e-9)
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_records_the_timecode(package):
    _, out, manifest = package
    assert manifest["start_timecode"] == "01:00:00:00" and manifest["frame_rate"] == "23.976"
    for _, entry in _wavs(out, manifest):
        assert entry["bwf"]["time_reference_samples"] == ONE_HOUR_23_976
        assert entry["bwf"]["start_timecode"] == "01:00:00:00"
        assert entry["bwf"]["frame_rate"] == "23.976"


def test_ixml_names_the_channels_and_the_timestamp(package):
    _, out, _ = package
    payload = read_chunk(out / "mix.wav", b"iXML")
    assert payload is not None
    root = ElementTree.fromstring(payload)
    assert root.tag == "BWFXML"
    assert [root.findtext(t) for t in ("PROJECT", "SCENE", "TAKE", "TAPE", "NOTE")] == [
        "Proj & <Co>", "12A", "3", "R1", "temp mix",
    ]  # fmt: skip
    speed = root.find("SPEED")
    assert speed is not None
    assert {c.tag: c.text for c in speed} == {
        "MASTER_SPEED": "24000/1001",
        "CURRENT_SPEED": "24000/1001",
        "TIMECODE_RATE": "24000/1001",
        "TIMECODE_FLAG": "NDF",
        "FILE_SAMPLE_RATE": "48000",
        "AUDIO_BIT_DEPTH": "24",
        "TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI": "0",
        "TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO": str(ONE_HOUR_23_976),
        "TIMESTAMP_SAMPLE_RATE": "48000",
    }
    assert root.findtext("TRACK_LIST/TRACK_COUNT") == "2"
    tracks = [
        (t.findtext("CHANNEL_INDEX"), t.findtext("NAME"), t.findtext("FUNCTION"))
        for t in root.iterfind("TRACK_LIST/TRACK")
    ]
    assert tracks == [("1", "L", "LEFT"), ("2", "R", "RIGHT")]


def test_ixml_chunk_is_last_padded_and_counted_in_the_riff_size(package):
    _, out, _ = package
    path = out / "mix.wav"
    raw = path.read_bytes()
    layout = riff_layout(path)
    assert [c.id for c in layout.chunks] == [b"fmt ", b"bext", b"data", b"iXML"]
    last = layout.chunks[-1]
    assert last.data_offset % 2 == 0
    assert last.data_offset + last.size + (last.size & 1) == len(raw)
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8


# --- independent readers -------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (CI installs it with apt-get)")
    return path


def _mediainfo(path: Path) -> dict[str, dict]:
    text = subprocess.run(
        [_tool("mediainfo"), "-f", "--Output=JSON", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    tracks = json.loads(text)["media"]["track"]
    return {t["@type"]: {**t, **t.get("extra", {})} for t in tracks}


def _ffprobe(path: Path, entries: str) -> dict:
    text = subprocess.run(
        [_tool("ffprobe"), "-v", "error", "-show_entries", entries, "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(text)


MEDIAINFO_FIELDS = {
    "LoudnessValue": "loudness_lufs",
    "LoudnessRange": "loudness_range_lu",
    "MaxTruePeakLevel": "max_true_peak_dbtp",
    "MaxMomentaryLoudness": "max_momentary_lufs",
    "MaxShortTermLoudness": "max_short_term_lufs",
}


def test_mediainfo_reads_bext_v2_loudness_and_timecode(package):
    _, out, manifest = package
    for path, entry in _wavs(out, manifest):
        info = _mediainfo(path)
        general, audio = info["General"], info["Audio"]
        assert general["bext_Version"] == "2"
        assert general["Producer"] == "Post House"
        assert general["Description"] == f"Film: {entry['name']}"
        for field, key in MEDIAINFO_FIELDS.items():
            assert float(audio[field]) == pytest.approx(entry["bwf"]["loudness"][key], abs=0.01)
        assert audio["Delay_Source"] == "Container (bext)"
        assert float(audio["Delay"]) == pytest.approx(ONE_HOUR_23_976 / RATE)  # 3603.6 s


def test_ffprobe_reads_the_time_reference(package):
    _, out, manifest = package
    for path, _entry in _wavs(out, manifest):
        tags = _ffprobe(path, "format_tags")["format"]["tags"]
        assert tags["time_reference"] == str(ONE_HOUR_23_976)
        assert tags["encoded_by"] == "Post House"
        assert tags["coding_history"].startswith("A=PCM,F=48000,W=24,M=stereo,T=stemprint")


# --- the audio is untouched ----------------------------------------------------------------


def test_samples_identical_to_a_flac_render_without_metadata(package):
    folder, out, manifest = package
    flac_out, flac_manifest = _render(folder, "flac", format="flac")
    assert all("bwf" not in e for e in flac_manifest["files"])
    for wav, flac in zip(manifest["files"], flac_manifest["files"], strict=True):
        a = sf.read(str(out / wav["path"]), dtype="int32")[0]
        b = sf.read(str(flac_out / flac["path"]), dtype="int32")[0]
        assert np.array_equal(a, b)
        assert read_chunk(out / wav["path"], b"bext") is not None


def test_writer_data_chunk_identical_with_and_without_bwf(tmp_path):
    block = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 4801))
    paths = []
    for name, bwf in (("plain", None), ("bwf", BroadcastInfo(title="x"))):
        writer = AudioWriter(tmp_path / f"{name}.wav", RATE, 2, "24", bwf=bwf)
        writer.write(block)
        writer.close()
        writer.finish_bwf()
        paths.append(tmp_path / f"{name}.wav")
    plain, with_bwf = (read_chunk(p, b"data") for p in paths)
    assert plain is not None and plain == with_bwf
    assert read_chunk(paths[0], b"bext") is None and read_chunk(paths[1], b"iXML") is not None


def test_odd_length_data_gets_its_pad_byte_before_ixml(tmp_path):
    path = tmp_path / "odd.wav"
    writer = AudioWriter(path, RATE, 1, "24", bwf=BroadcastInfo(title="odd"))
    writer.write(np.full((1, 1001), 0.25))  # 3003 bytes of data
    writer.close()
    writer.finish_bwf()
    layout = riff_layout(path)
    data, ixml = layout.find(b"data"), layout.find(b"iXML")
    assert data is not None and ixml is not None and data.size == 3003
    assert ixml.data_offset == data.data_offset + 3004 + 8
    assert np.array_equal(sf.read(str(path))[0], np.full(1001, 0.25))
    assert struct.unpack_from("<I", path.read_bytes(), 4)[0] == path.stat().st_size - 8


# --- variants ------------------------------------------------------------------------------


def test_two_renders_are_byte_identical_also_with_source_date_epoch(tmp_path, monkeypatch):
    _session(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    first, one = _render(tmp_path, "a", verify=False)
    second, two = _render(tmp_path, "b", verify=False)
    for a, b in zip(one["files"], two["files"], strict=True):
        assert (first / a["path"]).read_bytes() == (second / b["path"]).read_bytes()
        assert a["sha256"] == b["sha256"]
    bext = read_bext(first / "mix.wav")
    assert bext is not None
    assert (bext.origination_date, bext.origination_time) == ("2026-01-01", "00:00:00")


def test_rf64_gets_bext_and_ixml_and_still_reads(package, tmp_path):
    folder, out, manifest = package
    rf_out, rf_manifest = _render(folder, "rf64", rf64_threshold_bytes=1000)
    path = rf_out / "mix.wav"
    layout = riff_layout(path)
    assert layout.form == b"RF64"
    assert [c.id for c in layout.chunks] == [b"ds64", b"fmt ", b"bext", b"data", b"iXML"]
    ds64 = layout.find(b"ds64")
    assert ds64 is not None
    raw = path.read_bytes()
    assert struct.unpack_from("<Q", raw, ds64.data_offset)[0] == len(raw) - 8
    assert np.array_equal(sf.read(str(path), dtype="int32")[0],
                          sf.read(str(out / "mix.wav"), dtype="int32")[0])  # fmt: skip
    bext = read_bext(path)
    assert bext is not None and bext.time_reference_samples == ONE_HOUR_23_976
    assert bext.loudness == read_bext(out / "mix.wav").loudness  # type: ignore[union-attr]
    assert rf_manifest["files"][0]["sha256"] == hashlib.sha256(raw).hexdigest()
    probe = _ffprobe(path, "format=duration:format_tags=time_reference:stream=channels")
    assert probe["format"]["tags"]["time_reference"] == str(ONE_HOUR_23_976)
    assert float(probe["format"]["duration"]) == pytest.approx(3.5, abs=1e-3)
    assert probe["streams"][0]["channels"] == 2


def test_aiff_and_flac_untouched(package):
    folder, _, _ = package
    for fmt in ("aiff", "flac"):
        out, manifest = _render(folder, f"{fmt}-plain", format=fmt, verify=False)
        for entry in manifest["files"]:
            raw = (out / entry["path"]).read_bytes()
            assert b"bext" not in raw and b"iXML" not in raw and "bwf" not in entry


def test_without_verification_the_loudness_is_unknown(tmp_path):
    session = _session(tmp_path)
    result = runner.invoke(app, ["render", str(session), "-o", str(tmp_path / "o"), "-q",
                                 "--no-verify"])  # fmt: skip
    assert result.exit_code == 0, result.output
    raw = (tmp_path / "o" / "mix.wav").read_bytes()
    at = raw.index(b"bext") + 8
    assert raw[at + 412 : at + 422] == b"\xff\x7f" * 5
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert set(manifest["files"][0]["bwf"]["loudness"].values()) == {None}


def test_resampled_package_is_patched_after_the_read_back(package):
    folder, _, _ = package
    out, manifest = _render(folder, "resampled", sample_rate=44_100)
    levels = _levels(out)
    for path, entry in _wavs(out, manifest):
        bext = read_bext(path)
        assert bext is not None
        assert bext.time_reference_samples == 86_400 * 44_100 * 1001 // 24_000  # 158 918 760
        assert bext.loudness.loudness_lufs == pytest.approx(
            levels[entry["path"]]["loudness_lufs"], abs=0.005 + 1e-9
        )
        assert entry["bwf"]["loudness"]["loudness_lufs"] == bext.loudness.loudness_lufs
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["files"] == manifest["files"]


@pytest.mark.parametrize("bits", ["24", "32f"])
def test_mono_rewrite_keeps_bext_and_ixml(tmp_path, bits):
    _session(tmp_path, delivery={"mono_stems": True})
    out, manifest = _render(tmp_path, "mono", bit_depth=bits)
    entry = next(e for e in manifest["files"] if e["name"] == "Dial")
    path = out / entry["path"]
    assert entry["channels"] == 1 and sf.info(str(path)).channels == 1
    bext = read_bext(path)
    assert bext is not None and bext.time_reference_samples == ONE_HOUR_23_976
    assert f"W={24 if bits == '24' else 32},M=mono,T=stemprint" in bext.coding_history
    assert "M=mono,T=libsndfile" in bext.coding_history
    # The rewrite drops the PEAK chunk too (libsndfile stamps it with the wall clock).
    ids = [c.id for c in riff_layout(path).chunks]
    assert b"PEAK" not in ids and ids[-2:] == [b"data", b"iXML"]
    assert bext.loudness.loudness_lufs == pytest.approx(
        _levels(out)[entry["path"]]["loudness_lufs"], abs=0.005 + 1e-9
    )
    root = ElementTree.fromstring(read_chunk(path, b"iXML"))
    assert root.findtext("TRACK_LIST/TRACK_COUNT") == "1"
    assert root.findtext("TRACK_LIST/TRACK/NAME") == "M"


def test_region_files_start_at_the_region_timecode(tmp_path):
    _session(tmp_path, regions=[{"name": "Cue", "start": 1.0, "end": 2.0}])
    out, manifest = _render(tmp_path, "cue", region="Cue", verify=False)
    entry = manifest["files"][0]
    expected = ONE_HOUR_23_976 + RATE
    assert entry["bwf"]["time_reference_samples"] == expected
    assert entry["bwf"]["start_timecode"] == "01:00:00:23"  # 1 s = 23.976 frames: frame 23
    bext = read_bext(out / entry["path"])
    assert bext is not None and bext.time_reference_samples == expected


def test_append_chunk_refuses_to_pass_4_gib(tmp_path, monkeypatch):
    path = tmp_path / "t.wav"
    sf.write(str(path), np.zeros(10), RATE)
    monkeypatch.setattr("stemprint.export.bwf.RIFF_LIMIT", 60)
    with pytest.raises(ValueError, match="4 GiB"):
        append_chunk(path, b"iXML", b"x" * 100)


def test_six_channel_file_names_the_5_1_channels(tmp_path):
    path = tmp_path / "pm.wav"
    writer = AudioWriter(path, RATE, 6, "24", bwf=BroadcastInfo(title="pm"))
    writer.write(np.zeros((6, 4800)))
    writer.close()
    writer.finish_bwf()
    bext = read_bext(path)
    assert bext is not None
    assert (
        "M=5.1,T=stemprint" in bext.coding_history and "M=6chn,T=libsndfile" in bext.coding_history
    )
    root = ElementTree.fromstring(read_chunk(path, b"iXML"))
    tracks = [
        (t.findtext("NAME"), t.findtext("FUNCTION")) for t in root.iterfind("TRACK_LIST/TRACK")
    ]
    assert tracks == [
        ("L", "L-5.1"), ("R", "R-5.1"), ("C", "C-5.1"), ("LFE", "LFE-5.1"), ("Ls", "Ls-5.1"),
        ("Rs", "Rs-5.1"),
    ]  # fmt: skip
    assert sf.info(str(path)).channels == 6

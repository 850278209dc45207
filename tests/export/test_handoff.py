"""Handoff sessions through the CLI: the DAWproject validates against Project.xsd, an
independent RPP parser reads the REAPER project, both re-import with stemprint's importer with
every clip at sample 0, and their renders null against the package's premaster."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.export.handoff import rpp_color, rpp_quote
from stemprint.importers import import_project
from tests.conftest import write_session, write_wav

runner = CliRunner()
SCHEMAS = Path(__file__).parents[2].parent / "shared" / "fixtures" / "daw" / "dawproject"
PROJECT_XSD = SCHEMAS / "bitwig_dawproject__Project.xsd"
METADATA_XSD = SCHEMAS / "bitwig_dawproject__MetaData.xsd"
SESSION_RATE, PACKAGE_RATE = 48000, 44100


def _render_package(folder: Path) -> tuple[Path, dict[str, Any]]:
    """Stereo noise, a stereo tone at 0.25 s, a mono bass at 0.5 s, master −3 dB (so the
    package has a premaster), mono stems, delivered at 44.1 kHz in FLAC."""
    rng = np.random.default_rng(21)
    n = SESSION_RATE * 2
    t = np.arange(n) / SESSION_RATE
    write_wav(folder / "drums.wav", 0.1 * rng.standard_normal((2, n)), subtype="PCM_24")
    tone = np.stack([0.2 * np.sin(2 * np.pi * 300 * t), 0.15 * np.sin(2 * np.pi * 450 * t)])
    write_wav(folder / "keys.wav", tone, subtype="PCM_24")
    write_wav(folder / "bass.wav", 0.2 * rng.standard_normal((1, n)), subtype="PCM_24")
    session = write_session(
        folder,
        {
            "name": "Handoff test",
            "sample_rate": SESSION_RATE,
            "tempo_bpm": 97.5,
            "time_signature": "7/8",
            "tracks": [
                {"name": "Drums", "clips": [{"file": "drums.wav"}]},
                {"name": 'Keys "Rhodes"', "clips": [{"file": "keys.wav", "start_seconds": 0.25}]},
                {"name": "Bass", "clips": [{"file": "bass.wav", "start_seconds": 0.5}]},
            ],
            "master": {"gain_db": -3.0},
            "delivery": {
                "handoff": ["dawproject", "rpp"],
                "mono_stems": True,
                "format": "flac",
                "sample_rate": PACKAGE_RATE,
            },
        },
    )
    out = folder / "out"
    result = runner.invoke(app, ["render", str(session), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _render_package(tmp_path_factory.mktemp("handoff"))


def _handoffs(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["format"]: f for f in manifest["files"] if f["role"] == "handoff"}


EXPECTED_TRACKS = [
    ("Drums", "stems/Drums.flac", False),
    ('Keys "Rhodes"', "stems/Keys _Rhodes_.flac", False),
    ("Bass", "stems/Bass.flac", False),
    ("Premaster (reference)", "premaster.flac", True),
    ("Mix (reference)", "mix.flac", True),
]


def test_manifest_entries(package):
    out, manifest = package
    entries = _handoffs(manifest)
    assert entries["dawproject"]["path"] == "handoff/Handoff test.dawproject"
    assert entries["rpp"]["path"] == "handoff/Handoff test.rpp"
    assert entries["dawproject"]["name"] == "DAWproject" and entries["rpp"]["name"] == "REAPER"
    for entry in entries.values():
        assert entry["media"] == "external" and (out / entry["path"]).is_file()
        tracks = [(t["name"], t["file"], t["muted"]) for t in entry["tracks"]]
        assert tracks == EXPECTED_TRACKS
    assert sf.info(str(out / "stems" / "Bass.flac")).channels == 1


def test_dawproject_validates_and_references_the_package(package):
    out, manifest = package
    path = out / _handoffs(manifest)["dawproject"]["path"]
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["metadata.xml", "project.xml"]
        project_xml = archive.read("project.xml").decode()
        metadata_xml = archive.read("metadata.xml").decode()
    if PROJECT_XSD.exists():
        xmlschema = pytest.importorskip("xmlschema")
        xmlschema.XMLSchema(str(PROJECT_XSD)).validate(project_xml)
        xmlschema.XMLSchema(str(METADATA_XSD)).validate(metadata_xml)
    import defusedxml.ElementTree as SafeET

    root = SafeET.fromstring(project_xml)
    assert root.find("Transport/Tempo").get("value") == "97.5"
    signature = root.find("Transport/TimeSignature")
    assert (signature.get("numerator"), signature.get("denominator")) == ("7", "8")
    length = manifest["length_samples"]
    for audio in root.iter("Audio"):
        reference = audio.find("File")
        assert reference.get("external") == "true"
        target = (path.parent / reference.get("path")).resolve()
        assert target.is_file() and target.is_relative_to(out.resolve())
        assert int(audio.get("sampleRate")) == PACKAGE_RATE
        assert round(float(audio.get("duration")) * PACKAGE_RATE) == length
    clips = list(root.iter("Clip"))
    assert len(clips) == len(EXPECTED_TRACKS)
    assert all(float(c.get("time")) == 0.0 for c in clips)
    volumes = [float(v.get("value")) for v in root.iter("Volume")]
    assert volumes == [1.0] * len(volumes)


def test_rpp_read_by_an_independent_parser(package):
    rpp = pytest.importorskip("rpp")
    out, manifest = package
    path = out / _handoffs(manifest)["rpp"]["path"]
    project = rpp.loads(path.read_text(encoding="utf-8"))
    assert project.find("SAMPLERATE")[1:3] == [str(PACKAGE_RATE), "1"]
    assert project.find("TEMPO")[1:] == ["97.5", "7", "8"]
    tracks = project.findall("TRACK")
    assert [t.find("NAME")[1] for t in tracks] == [name for name, _f, _m in EXPECTED_TRACKS]
    for track, (_name, file, muted) in zip(tracks, EXPECTED_TRACKS, strict=True):
        assert track.find("VOLPAN")[1:3] == ["1", "0"]
        assert track.find("MUTESOLO")[1] == ("1" if muted else "0")
        assert track.find("ITEM/POSITION")[1] == "0"
        length = float(track.find("ITEM/LENGTH")[1])
        assert round(length * PACKAGE_RATE) == manifest["length_samples"]
        assert track.find("ITEM/SOURCE").attrib == ["FLAC"]
        assert (path.parent / track.find("ITEM/SOURCE/FILE")[1]).resolve() == (out / file).resolve()


@pytest.mark.parametrize("kind", ["dawproject", "rpp"])
def test_reimport_places_every_clip_at_zero(package, kind):
    out, manifest = package
    session, _report = import_project(out / _handoffs(manifest)[kind]["path"])
    assert session.sample_rate == PACKAGE_RATE
    assert session.tempo_bpm == 97.5
    signature = session.time_signature
    assert (signature.numerator, signature.denominator) == (7, 8)
    length_seconds = manifest["length_samples"] / PACKAGE_RATE
    by_name = {t.name: t for t in session.tracks}
    assert list(by_name) == [name for name, _f, _m in EXPECTED_TRACKS]
    for name, file, muted in EXPECTED_TRACKS:
        track = by_name[name]
        assert track.mute is muted and track.gain_db == 0.0 and track.pan == 0.0
        (clip,) = track.clips
        assert Path(clip.file).resolve() == (out / file).resolve()
        assert clip.start_seconds == 0.0 and clip.offset_seconds == 0.0 and clip.gain_db == 0.0
        duration = clip.duration_seconds if clip.duration_seconds is not None else length_seconds
        assert round(duration * PACKAGE_RATE) == manifest["length_samples"]


@pytest.mark.parametrize("kind", ["dawproject", "rpp"])
def test_reimported_render_nulls_against_the_premaster(package, tmp_path, kind):
    out, manifest = package
    project = out / _handoffs(manifest)[kind]["path"]
    rendered = tmp_path / f"re-{kind}"
    result = runner.invoke(
        app, ["render", str(project), "-o", str(rendered), "--bit-depth", "32f", "-q"]
    )
    assert result.exit_code == 0, result.output
    premaster, rate = sf.read(str(out / "premaster.flac"), always_2d=True)
    mix, rate_again = sf.read(str(rendered / "mix.wav"), always_2d=True)
    assert rate == rate_again == PACKAGE_RATE
    n = premaster.shape[0]
    assert mix.shape[0] >= n
    residual_dbfs = 20 * np.log10(np.max(np.abs(mix[:n] - premaster)) + 1e-30)
    assert residual_dbfs <= -120.0, residual_dbfs
    assert not np.any(mix[n:])  # the imported session's tail is silence


def test_handoff_bytes_are_deterministic(package, tmp_path):
    out, manifest = package
    again, manifest_again = _render_package(tmp_path)
    for kind, entry in _handoffs(manifest).items():
        assert (out / entry["path"]).read_bytes() == (again / entry["path"]).read_bytes(), kind
        assert entry["sha256"] == _handoffs(manifest_again)[kind]["sha256"]


def test_rpp_tokens_and_colours():
    assert rpp_quote("Kick") == '"Kick"'
    assert rpp_quote('12" remix') == "'12\" remix'"
    assert rpp_quote("""it's a "mix\"""") == """`it's a "mix"`"""
    assert rpp_color("#E69F00") == 0x1000000 | 0x00 << 16 | 0x9F << 8 | 0xE6

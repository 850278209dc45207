"""DAWproject import: the real exports beside the repository, and synthetic projects (no render)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from stemprint.importers import validate_imported
from stemprint.importers.common import gain_to_db
from stemprint.importers.dawproject import TempoClock, read_dawproject, semitones_to_hz
from stemprint.importers.report import ImportReport
from tests.importers.dawproject_synth import Project, tone, wrap_xml

XSD = "dawproject/bitwig_dawproject__Project.xsd"


def _import(path: Path, tmp_path: Path, **kwargs) -> tuple[dict, ImportReport]:
    report = ImportReport(project=str(path), format="dawproject")
    data = read_dawproject(path, report, extract_dir=tmp_path / "extract", **kwargs)
    validate_imported(data, path)
    return data, report


def _codes(report: ImportReport, where: str | None = None) -> set[str]:
    return {f.code for f in report.findings if where is None or f.where.startswith(where)}


def _fixture_projects(folder: Path) -> list[Path]:
    found = sorted(folder.glob("*.dawproject"))
    found += sorted(p for p in folder.glob("*.xml") if "__Project" not in p.name)
    return found


# -- real exports ---------------------------------------------------------------------------------


def _check_structure(entry: dict, data: dict, report: ImportReport, master_id: str) -> None:
    name, channel = entry["name"], entry["channel"]
    tracks = {t["name"]: t for t in data["tracks"]}
    buses = {b["name"]: b for b in data["buses"]}
    gain_db = gain_to_db(float(channel["volume"]["value"]))
    if channel["role"] == "master" and channel["destination"] is None:
        assert data["master"].get("gain_db", 0.0) == pytest.approx(gain_db)
        return
    if "notes" in entry["contentType"].split():
        assert "MIDI_TRACK" in _codes(report, name)
        assert name not in tracks
        for device in channel["devices"]:
            if device["kind"] in ("Vst2Plugin", "ClapPlugin"):
                unavailable = [f for f in report.findings if f.code == "PLUGIN_UNAVAILABLE"]
                assert any(device["id"] in f.message for f in unavailable)
        return
    route = buses[name] if channel["role"] == "effect" else tracks[name]
    assert route.get("gain_db", 0.0) == pytest.approx(gain_db)
    assert route.get("pan", 0.0) == pytest.approx(2 * float(channel["pan"]["value"]) - 1)
    assert route["output"] == ("master" if channel["destination"] == master_id else "?")
    for send in channel["sends"]:
        if send["enable"] == "false":
            assert "sends" not in route
            assert any(
                f.code == "SEND_UNSUPPORTED" and f.effect == "none"
                for f in report.findings
                if f.where.startswith(name)
            )


def _check_arrangement(facts: dict, report: ImportReport) -> None:
    for clip in facts["arrangement"]:
        if "audio" in clip:
            assert "MISSING_MEDIA" in _codes(report)
            warps = clip["warps"]["points"]
            beats, seconds = float(warps[-1][0]), float(warps[-1][1])
            tempo = float(facts["tempo"]["value"])
            if not math.isclose(beats * 60 / tempo, seconds, rel_tol=1e-5):
                stretch = [f for f in report.findings if f.code == "TIME_STRETCH"]
                assert stretch and stretch[0].effect == "dropped"
    if facts["scenes"]:
        assert "CLIP_LAUNCHER" in _codes(report)


def test_every_fixture_imports_with_its_facts(daw_fixtures, tmp_path):
    projects = _fixture_projects(daw_fixtures / "dawproject")
    assert len(projects) == 5
    for source in projects:
        facts = json.loads(Path(f"{source}.facts.json").read_text())
        path = source
        if source.suffix == ".xml":
            path = wrap_xml(source, tmp_path / f"{source.stem}.dawproject")
        data, report = _import(path, tmp_path / source.stem)
        app = facts["application"]
        assert report.application == f"{app['name']} {app['version']}"
        assert data["tempo_bpm"] == float(facts["tempo"]["value"])
        signature = facts["timeSignature"]
        assert data["time_signature"] == f"{signature['numerator']}/{signature['denominator']}"
        master_id = next(
            e["channel"]["id"] for e in facts["structure"] if e["channel"]["role"] == "master"
        )
        for entry in facts["structure"]:
            _check_structure(entry, data, report, master_id)
        _check_arrangement(facts, report)
        assert set(report.facts) == {"tracks", "buses", "clips", "sends", "inserts"}


def test_bitwig_eq_plus_maps_to_builtins(daw_fixtures, tmp_path):
    data, report = _import(daw_fixtures / "dawproject" / "opendaw__eq.dawproject", tmp_path)
    bus = next(b for b in data["buses"] if b["name"] == "EQ+")
    types = [i["type"] for i in bus["inserts"]]
    assert types == [
        "highpass_filter",
        "peak_filter",
        "high_shelf_filter",
        "peak_filter",
        "peak_filter",
        "peak_filter",
    ]
    assert bus["inserts"][0]["cutoff_frequency_hz"] == pytest.approx(240.0, abs=0.5)
    assert bus["inserts"][1]["cutoff_frequency_hz"] == pytest.approx(900.0, abs=1.0)
    assert bus["inserts"][1]["gain_db"] == -9.0
    found = [f for f in report.findings if f.code == "BUILTIN_DEVICE_APPROXIMATED"]
    assert found[0].where == "EQ+ › insert 1" and found[0].effect == "approximate"
    assert "order 8" in found[0].message


def test_readme_example_stretch_ratio(daw_fixtures, tmp_path):
    source = daw_fixtures / "dawproject" / "bitwig_dawproject__README_example_project.xml"
    data, report = _import(wrap_xml(source, tmp_path / "readme.dawproject"), tmp_path)
    stretch = next(f for f in report.findings if f.code == "TIME_STRETCH")
    assert stretch.where == "Drumloop › clip 1"
    assert f"{149 / 170:.5g}" in stretch.message
    assert data["tracks"][0]["clips"] == []


def test_frequency_and_tempo_formulas():
    assert semitones_to_hz(69.0) == 440.0
    assert semitones_to_hz(135.076232) == pytest.approx(20000.0, rel=1e-3)
    clock = TempoClock([(0.0, 100.0, True), (8.0, 140.0, False)])
    expected = 60 * 8 / (140 - 100) * math.log(140 / 100)
    assert clock.seconds(8.0) == pytest.approx(expected, rel=1e-12)
    assert clock.seconds(12.0) == pytest.approx(expected + 4 * 60 / 140, rel=1e-12)
    for beat in (0.5, 3.0, 7.9, 10.0):
        assert clock.beats(clock.seconds(beat)) == pytest.approx(beat, rel=1e-12)


# -- synthetic projects: schema and structure ------------------------------------------------------


def _feature_project() -> Project:
    project = Project(tempo=110.0, title="Everything")
    group = project.track("Drums", content="tracks", role="master", volume=0.5)
    kick = project.track("Kick", parent=group, destination=group, pan=0.25)
    folder = project.track("Keys", content="tracks", channel=False)
    keys_bus = project.track("Keys", parent=folder, role="master")
    piano = project.track("Piano", parent=folder, destination=keys_bus, mute=True)
    fx = project.track("Reverb", role="effect")
    project.send(kick, fx, 0.5, kind="pre", pan=0.75)
    project.send(fx, fx, 0.0, enable=False)
    notes = project.track("Synth", content="notes")
    project.device(notes, "ClapPlugin", "Surge XT", role="instrument", deviceID="org.surge")
    project.track("Old", loaded=False)
    comp = project.device(fx, "Compressor", "Comp")
    for tag, unit, value in (
        ("Attack", "seconds", "0.01"),
        ("Ratio", "linear", "4"),
        ("Release", "seconds", "0.2"),
        ("Threshold", "decibel", "-18"),
    ):
        comp.append(_real(tag, unit, value))
    project.device(fx, "Vst2Plugin", "Valhalla", deviceID="1234")
    audio = tone(0.5)
    path = project.add_media("kick.wav", audio)
    project.bitwig_clip(
        kick, path, audio, time_beats=1.0, duration_beats=0.5 * 110 / 60, tempo=110.0
    )
    project.raw_clip(piano, path, audio, time=2.0, duration=0.25, enable="false")
    project.points(kick, kick.volume, [(0.0, 1.0, "linear"), (0.4, 0.1, "linear")], unit="linear")
    project.tempo_automation([(0.0, 110.0, "hold"), (16.0, 120.0, "hold")])
    return project


def _real(tag: str, unit: str, value: str):
    from xml.etree import ElementTree as ET

    return ET.Element(tag, unit=unit, value=value)


def test_synthetic_project_is_valid_against_the_schema(daw_fixtures, tmp_path):
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(daw_fixtures / XSD))
    project = _feature_project()
    (tmp_path / "project.xml").write_bytes(project.xml())
    schema.validate(str(tmp_path / "project.xml"))


def test_synthetic_structure_routing_and_findings(tmp_path):
    path = _feature_project().write(tmp_path / "all.dawproject")
    data, report = _import(path, tmp_path)
    assert data["name"] == "Everything"
    tracks = {t["name"]: t for t in data["tracks"]}
    buses = {b["name"]: b for b in data["buses"]}
    assert set(tracks) == {"Kick", "Piano"} and set(buses) == {"Drums", "Keys", "Reverb"}
    assert tracks["Kick"]["output"] == "Drums" and tracks["Piano"]["output"] == "Keys"
    assert buses["Drums"]["gain_db"] == pytest.approx(gain_to_db(0.5))
    assert tracks["Kick"]["pan"] == -0.5 and tracks["Piano"]["mute"] is True
    send = tracks["Kick"]["sends"][0]
    assert send == {
        "to": "Reverb",
        "level_db": pytest.approx(gain_to_db(0.5)),
        "pre_fader": True,
        "pan": 0.5,
    }
    assert buses["Reverb"]["inserts"] == [
        {
            "type": "compressor",
            "attack_ms": 10.0,
            "ratio": 4.0,
            "release_ms": 200.0,
            "threshold_db": -18.0,
        }
    ]
    clip = tracks["Kick"]["clips"][0]
    assert clip["start_seconds"] == pytest.approx(60 / 110)
    assert "duration_seconds" not in clip and tracks["Piano"]["clips"] == []
    lane = tracks["Kick"]["automation"][0]
    assert lane["param"] == "gain_db" and lane["interpolation"] == "linear"
    assert len(lane["points"]) > 2
    codes = report.codes()
    for code in (
        "MIDI_TRACK",
        "PLUGIN_UNAVAILABLE",
        "INACTIVE_TRACK",
        "CLIP_MUTED",
        "BUILTIN_DEVICE_APPROXIMATED",
        "AUTOMATION_DENSIFIED",
        "PAN_LAW_ASSUMED",
        "SEND_UNSUPPORTED",
        "TEMPO_CHANGES",
    ):
        assert codes[code] >= 1, code
    assert codes["PLUGIN_UNAVAILABLE"] == 2  # the CLAP instrument and the VST2 effect
    assert report.facts == {"tracks": 2, "buses": 3, "clips": 1, "sends": 1, "inserts": 1}
    assert report.media == [clip["file"]] and Path(clip["file"]).is_file()


def test_vst3_with_state_and_plugin_map(tmp_path):
    project = Project()
    track = project.track("Vox")
    dev = project.device(track, "Vst3Plugin", "Pro-Q 3", deviceID="ABCD-1234")
    from xml.etree import ElementTree as ET

    ET.SubElement(dev, "State", path="plugins/state.vstpreset")
    project.media["plugins/state.vstpreset"] = b"VST3 preset bytes"
    path = project.write(tmp_path / "p.dawproject")
    _data, report = _import(path, tmp_path / "a")
    assert report.codes()["PLUGIN_UNAVAILABLE"] == 1
    data, report = _import(path, tmp_path / "b", plugin_map={"ABCD-1234": "/opt/ProQ3.vst3"})
    insert = data["tracks"][0]["inserts"][0]
    assert insert["type"] == "vst3" and insert["path"] == "/opt/ProQ3.vst3"
    assert Path(insert["preset"]).read_bytes() == b"VST3 preset bytes"
    assert Path(insert["preset"]).parent == (tmp_path / "b" / "extract" / "plugins").resolve()
    assert report.codes()["PLUGIN_MAPPED"] == 1


def test_submix_vca_bare_channels_and_missing_destination(tmp_path):
    project = Project()
    sub = project.track("Sub", role="submix", content="tracks")
    a = project.track("A", parent=sub, destination=sub)
    vca = project.track("V", role="vca", volume=0.5)
    b = project.track("B", destination=vca)
    for strip in (a, b):
        audio = tone(0.25, seed=3)
        project.raw_clip(
            strip, project.add_media(f"{strip.tid}.wav", audio), audio, time=0.0, duration=0.25
        )
    data, report = _import(project.write(tmp_path / "p.dawproject"), tmp_path)
    tracks = {t["name"]: t for t in data["tracks"]}
    assert tracks["A"]["output"] == "Sub" and tracks["B"]["output"] == "master"
    assert [b["name"] for b in data["buses"]] == ["Sub"]
    vca_findings = [f for f in report.findings if f.code == "VCA"]
    assert {f.where for f in vca_findings} == {"V", "B"}

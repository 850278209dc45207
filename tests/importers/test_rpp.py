"""The REAPER reader: real projects (their facts), and one synthetic project per mapping rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.errors import ProjectError
from stemprint.importers import import_project
from stemprint.importers.report import ImportReport
from stemprint.importers.rpp import read_rpp
from tests.importers.rpp_synth import (
    envelope,
    item,
    noise,
    project,
    receive,
    track,
    write_project,
    write_wav,
)

runner = CliRunner()


def read(path: Path, **kwargs) -> tuple[dict, ImportReport]:
    report = ImportReport(project=str(path), format="rpp")
    return read_rpp(path, report, **kwargs), report


def codes(report: ImportReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in report.findings:
        found.setdefault(f.code, set()).add(f.effect)
    return found


# -- the real files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "griffinsauce__empty.rpp",
        "griffinsauce__multiple-media-paths.rpp",
        "perlence_rpp__empty.RPP",
        "perlence_rpp__vst.RPP",
    ],
)
def test_real_project_facts(daw_fixtures, name):
    path = daw_fixtures / "rpp" / name
    facts = json.loads(path.with_name(name + ".facts.json").read_text())
    session, report = import_project(path)
    assert report.application == f"REAPER {facts['header'][1]}"
    assert session.sample_rate == int(facts["SAMPLERATE"][0])
    assert session.tempo_bpm == float(facts["TEMPO"][0])
    assert str(session.time_signature) == f"{facts['TEMPO'][1]}/{facts['TEMPO'][2]}"
    assert session.master.gain_db == 0.0 and not session.master.mute
    # No track is lost silently: each is in the session or named by a finding.
    wheres = " | ".join(f.where for f in report.findings)
    names = [t.name for t in session.tracks] + [b.name for b in session.buses]
    for fact in facts["tracks"]:
        label = " ".join(fact["name"].split()) or f"Track {fact['index'] + 1}"
        assert label in names or label in wheres, label
    assert "PAN_LAW_ASSUMED" in report.codes()


def test_vst_project_findings(daw_fixtures):
    _session, report = import_project(daw_fixtures / "rpp" / "perlence_rpp__vst.RPP")
    found = codes(report)
    assert found["MIDI_TRACK"] == {"dropped"}
    assert found["PLUGIN_UNAVAILABLE"] == {"dropped"}
    assert found["HARDWARE_OUTPUT"] == {"none"}
    plugins = [f.message for f in report.findings if f.code == "PLUGIN_UNAVAILABLE"]
    assert any("VST 'ReaComp' by Cockos, id 1919247213" in m for m in plugins)
    assert any("VSTi 'ReaSynth'" in m and "instrument" in m for m in plugins)
    assert any("JS 'loser/3BandEQ'" in m for m in plugins)
    assert any(f.code == "UNSUPPORTED_ELEMENT" and "CLICK" in f.message for f in report.findings)


def test_vst_project_folder_tree(daw_fixtures):
    from stemprint.importers import rpp as reader
    from stemprint.importers.rpp.tokens import parse_project, read_project_text

    path = daw_fixtures / "rpp" / "perlence_rpp__vst.RPP"
    facts = json.loads(path.with_name(path.name + ".facts.json").read_text())
    root = parse_project(read_project_text(path), str(path))
    ctx = reader._Context(str(path), path.parent, ImportReport(str(path), "rpp"), {})
    routes = [reader._read_track(c, i, ctx) for i, c in enumerate(root.chunks("TRACK"))]
    reader._folders(routes, ctx)
    depth = {r.index: 0 if r.parent is None else 1 for r in routes}
    assert [depth[i] for i in range(len(routes))] == [t["depth"] for t in facts["tracks"]]
    assert routes[3].parent == 2 and routes[2].children == [3]


def test_pre_fx_mono_receive(daw_fixtures):
    _session, report = import_project(daw_fixtures / "rpp" / "perlence_rpp__empty.RPP")
    messages = [f.message for f in report.findings if f.code == "MULTICHANNEL_ROUTING"]
    assert messages == ["the send takes mono channel 2 of its source"]


# -- synthetic projects, one rule each ----------------------------------------------------------


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "a.wav", noise(0, 2, 0.5))


def test_receive_modes_channels_and_mute(tmp_path, wav):
    tracks = [
        track("Src", [item("a.wav", 0, 0.5)]),
        track("Post", lines=[receive(0, mode=0, vol=0.5, pan=0.25)]),
        track("PreFX", lines=[receive(0, mode=1)]),
        track("PreFader", lines=[receive(0, mode=3)]),
        track("Muted", lines=[receive(0, mute=1)]),
        track("Side", lines=[receive(0, dstch=2)]),
        track("Pair34", lines=[receive(0, srcch=2)]),
        track("Flip", lines=[receive(0, phase=1)]),
    ]
    session, report = read(write_project(tmp_path, project(tracks)))
    sends = {s["to"]: s for s in session["tracks"][0]["sends"]}
    assert sends["Post"]["level_db"] == pytest.approx(-6.0206, abs=1e-4)
    assert sends["Post"]["pan"] == 0.25 and not sends["Post"]["pre_fader"]
    assert sends["PreFX"]["pre_inserts"] and sends["PreFX"]["pre_fader"]
    assert sends["PreFader"]["pre_fader"] and "pre_inserts" not in sends["PreFader"]
    assert set(sends) == {"Post", "PreFX", "PreFader", "Flip"}
    assert sends["Flip"]["invert_polarity"] and "invert_polarity" not in sends["Post"]
    found = codes(report)
    assert found["MULTICHANNEL_ROUTING"] == {"dropped"}
    assert found["SEND_UNSUPPORTED"] == {"none"}  # the muted receive


def _vst3(name: str, fuid: str, bypass: int = 0) -> str:
    return "\n".join(
        [
            f"BYPASS {bypass} 0 0",
            f'<VST "VST3: {name} (Acme)" "{name}.vst3" 0 "" 1234{{{fuid}}} ""',
            "ZmFrZSBzdGF0ZQ==",
            ">",
            "FXID {0}",
        ]
    )


def test_fx_chain_inventory_and_plugin_map(tmp_path, wav):
    fxchain = "\n".join(
        [
            "<FXCHAIN",
            "SHOW 0",
            _vst3("Comp", "0123456789ABCDEF0123456789ABCDEF"),
            _vst3("Verb", "FEDCBA9876543210FEDCBA9876543210"),
            _vst3("Off", "00000000000000000000000000000001", bypass=1),
            "BYPASS 0 0 0",
            '<CLAP "CLAP: Thing (Vendor)" com.vendor.thing ""',
            ">",
            "BYPASS 0 0 0",
            '<AU "AU: AUDelay (Apple)" "" ""',
            ">",
            ">",
        ]
    )
    path = write_project(tmp_path, project([track("A", [item("a.wav", 0, 0.5)], chunks=[fxchain])]))
    plugins = {"0123456789ABCDEF0123456789ABCDEF": "/plug/Comp.vst3", "Verb": "/plug/Verb.vst3"}
    session, report = read(path, plugin_map=plugins)
    assert session["tracks"][0]["inserts"] == [
        {"type": "vst3", "path": "/plug/Comp.vst3"},
        {"type": "vst3", "path": "/plug/Verb.vst3"},
    ]
    found = codes(report)
    assert found["PLUGIN_MAPPED"] == {"approximate"}
    assert found["PLUGIN_UNAVAILABLE"] == {"dropped"}
    assert found["DEVICE_BYPASSED"] == {"none"}
    unavailable = [f for f in report.findings if f.code == "PLUGIN_UNAVAILABLE"]
    assert [f.where for f in unavailable] == ["A › insert 4", "A › insert 5"]
    bypassed = [f for f in report.findings if f.code == "DEVICE_BYPASSED"]
    assert [f.where for f in bypassed] == ["A › insert 3"]
    assert "10 bytes, sha256" in bypassed[0].message
    _session, unmapped = read(path)
    assert sum(f.effect == "dropped" for f in unmapped.findings) == 4


def test_frozen_hardware_out_and_solo(tmp_path, wav):
    freeze = "<FREEZE 1\n<ITEM\nPOSITION 0\n>\n>"
    tracks = [
        track(
            "A",
            [item("a.wav", 0, 0.5)],
            solo=1,
            lines=["HWOUT 0 0 1 0 0 0 0 -1:U -1"],
            chunks=[freeze],
        )
    ]
    session, report = read(write_project(tmp_path, project(tracks)))
    assert len(session["tracks"][0]["clips"]) == 1 and session["tracks"][0]["solo"] is False
    assert {"FROZEN_TRACK", "HARDWARE_OUTPUT", "SOLO_IGNORED"} <= set(report.codes())


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"playrate": 2.0}, "TIME_STRETCH"),
        ({"pitch": -4.0}, "PITCH_SHIFT"),
        ({"extra": "SM 0 0 + 0.5 0.25"}, "TIME_STRETCH"),
        ({"source": "MIDI"}, "MIDI_TRACK"),
        ({"source": "WAVPACK"}, "UNSUPPORTED_ELEMENT"),
        ({"fadein": (0.1, 2)}, "FADE_SHAPE_APPROXIMATED"),
    ],
)
def test_item_features_reported(tmp_path, wav, kwargs, code):
    session, report = read(
        write_project(tmp_path, project([track("A", [item("a.wav", 0, 0.5, **kwargs)])]))
    )
    assert code in report.codes()
    if code != "FADE_SHAPE_APPROXIMATED":
        assert not session["tracks"]
        assert "dropped" in codes(report)[code]


def test_missing_media(tmp_path):
    session, report = read(write_project(tmp_path, project([track("A", [item("gone.wav", 0, 1)])])))
    assert codes(report)["MISSING_MEDIA"] == {"dropped"} and not session["tracks"]


def test_active_take_null_take_and_take_envelope(tmp_path, wav):
    write_wav(tmp_path / "b.wav", noise(1, 2, 0.5))
    second = "\n".join(
        [
            "TAKE SEL",
            "TAKEVOLPAN 0 0.5 -1",
            "SOFFS 0.1",
            "<SOURCE WAVE",
            'FILE "b.wav"',
            ">",
            envelope("VOLENV", [(0, 1.0), (0.2, 0.5)]),
        ]
    )
    base = item("a.wav", 0, 0.3)
    with_take = base[: base.rindex(">")] + second + "\n>"
    null = base[: base.rindex(">")] + "TAKE NULL SEL\n>"
    session, report = read(
        write_project(tmp_path, project([track("A", [with_take]), track("B", [null])]))
    )
    (clip,) = session["tracks"][0]["clips"]
    assert clip["file"].endswith("b.wav") and clip["offset_seconds"] == pytest.approx(0.1)
    assert clip["gain_db"] == pytest.approx(-6.0206, abs=1e-4)
    assert clip["gain_envelope"][0] == [0.0, 0.0] and clip["gain_envelope"][-1][0] == 0.3
    assert len(session["tracks"]) == 1  # the NULL take plays nothing


def test_envelope_rules(tmp_path, wav):
    chunks = [
        envelope("VOLENV2", [(-0.5, 1.0), (0.5, 0.5)]),
        envelope("PANENV2", [(0, 0.5)], act=0),
        envelope("VOLENV3", [(0, 1.0), (1, 0.5)]),
        envelope("MUTEENV", [(0, 0, 1), (0.25, 1, 1)]),
    ]
    session, report = read(
        write_project(tmp_path, project([track("A", [item("a.wav", 0, 0.5)], chunks=chunks)]))
    )
    lanes = {lane["param"]: lane for lane in session["tracks"][0]["automation"]}
    assert set(lanes) == {"gain_db", "mute"}  # ACT 0 skipped, trim volume reported
    assert lanes["gain_db"]["points"][0][0] == 0.0  # the point before 0 s is cut at 0 s
    assert lanes["gain_db"]["points"][0][1] == pytest.approx(-2.4988, abs=1e-3)  # gain 0.75
    assert lanes["mute"] == {
        "param": "mute",
        "interpolation": "hold",
        "points": [[0, 0.0], [0.25, 1.0]],
    }
    assert codes(report)["AUTOMATION_UNSUPPORTED"] == {"approximate"}
    faded = [envelope("VOLENV2", [(0, 1.0), (1, 0.5)], voltype=1)]
    pooled = [envelope("VOLENV2", [(0, 1.0)]).replace(">", "POOLEDENVINST 1 0 1\n>")]
    for chunks in (faded, pooled):
        session, report = read(
            write_project(tmp_path, project([track("A", [item("a.wav", 0, 0.5)], chunks=chunks)]))
        )
        assert codes(report)["AUTOMATION_UNSUPPORTED"] == {"approximate"}


def test_mainsend_off_variants(tmp_path, wav):
    tracks = [
        track("Nowhere", [item("a.wav", 0, 0.5)], mainsend=0),
        track("PreOnly", [item("a.wav", 0, 0.5)], mainsend=0),
        track("Panned", [item("a.wav", 0, 0.5)], mainsend=0, vol=0.5),
        track("Ret", lines=[receive(1, mode=3), receive(2, pan=0.5)]),
    ]
    session, report = read(write_project(tmp_path, project(tracks)))
    by_name = {t["name"]: t for t in session["tracks"]}
    assert "Nowhere" not in by_name
    assert codes(report)["EMPTY_TRACK"] == {"none"}
    # No main output: the tracks feed only their sends, exactly as REAPER plays them.
    assert by_name["PreOnly"]["output"] is None and by_name["PreOnly"]["gain_db"] == 0.0
    assert by_name["PreOnly"]["sends"][0]["pre_fader"]
    assert by_name["Panned"]["output"] is None
    assert by_name["Panned"]["sends"][0]["pan"] == 0.5
    assert "SEND_UNSUPPORTED" not in codes(report)


def test_names_empty_tracks_and_facts(tmp_path, wav):
    tracks = [
        track("", [item("a.wav", 0, 0.5)]),
        track("Dup", [item("a.wav", 0, 0.5)]),
        track("Dup", [item("a.wav", 0, 0.5)]),
        track("Master", [item("a.wav", 0, 0.5)]),
        track("Empty"),
    ]
    session, report = read(write_project(tmp_path, project(tracks)))
    assert [t["name"] for t in session["tracks"]] == ["Track 1", "Dup", "Dup (2)", "Master (DAW)"]
    assert report.facts == {"tracks": 4, "buses": 0, "clips": 4, "sends": 0, "inserts": 0}
    assert any(f.where == "Empty" and f.effect == "none" for f in report.findings)
    assert report.media == [str(wav.resolve())]


def test_mixed_clip_polarity_is_reported(tmp_path, wav):
    items = [item("a.wav", 0, 0.2, takevol=-1.0), item("a.wav", 0.3, 0.2)]
    session, report = read(write_project(tmp_path, project([track("A", items)])))
    assert session["tracks"][0]["invert_polarity"] is False
    assert codes(report)["POLARITY_PER_CLIP"] == {"approximate"}


def test_clip_past_the_end_of_its_file_is_shortened(tmp_path, wav):
    session, _report = read(
        write_project(tmp_path, project([track("A", [item("a.wav", 0, 2.0, soffs=0.1)])]))
    )
    assert session["tracks"][0]["clips"][0]["duration_seconds"] == pytest.approx(0.4)


# -- hostile or damaged files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (project([track("A")])[:-40], None),
        ("MZ\x90\x00 binary garbage", 1),
        (project([]).replace("SAMPLERATE 48000", "SAMPLERATE abc"), 8),
    ],
    ids=["truncated", "garbage", "bad-number"],
)
def test_damaged_project_is_exit_2_naming_the_file(tmp_path, text, line):
    path = write_project(tmp_path, text)
    with pytest.raises(ProjectError) as caught:
        read(path)
    assert caught.value.file == str(path)
    if line is not None:
        assert caught.value.line == line
    else:
        assert caught.value.line is not None
    result = runner.invoke(app, ["import", str(path), "-o", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    assert "song.rpp" in result.output

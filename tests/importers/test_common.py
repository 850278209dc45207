"""What both importers share: gain-linear ramps in dB, unique names, media lookup, the report,
and publishing an import without touching what the user owns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stemprint.errors import InputError, ProjectError
from stemprint.importers import PluginMap, check_strict, load_plugin_map
from stemprint.importers.common import (
    SILENT_DB,
    MediaResolver,
    RouteNames,
    gain_points_to_db,
    gain_to_db,
)
from stemprint.importers.report import CODES, Finding, ImportReport
from stemprint.importers.session_file import HEADER, MEDIA_MARKER, check_targets, media_dir_for


def _report() -> ImportReport:
    return ImportReport(project="p.rpp", format="rpp")


def _db_lane(points, t):
    times = np.array([p[0] for p in points])
    return np.interp(t, times, np.array([p[1] for p in points]))


@pytest.mark.parametrize(("g0", "g1"), [(1.0, 0.0), (0.0, 2.0), (1.0, 0.5), (0.3, 1.7)])
def test_gain_ramp_in_db_stays_within_0_05_db(g0, g1):
    points, added = gain_points_to_db([(0.0, g0), (2.0, g1)])
    assert added
    t = np.linspace(0.0, 2.0, 20001)
    exact = g0 + (g1 - g0) * t / 2.0
    approx = 10 ** (_db_lane(points, t) / 20)
    audible = np.maximum(exact, approx) > 1e-6
    err = np.abs(20 * np.log10(np.maximum(exact[audible], 1e-12) / approx[audible]))
    near_floor = np.abs(exact - approx) <= 2e-6
    assert np.all((err <= 0.051) | near_floor[audible])
    assert points[0] == (0.0, gain_to_db(g0)) and points[-1] == (2.0, gain_to_db(g1))


def test_hold_points_and_flat_ramps_are_not_densified():
    points, added = gain_points_to_db([(0.0, 0.5), (1.0, 0.25)], interpolation="hold")
    assert not added and points == [(0.0, gain_to_db(0.5)), (1.0, gain_to_db(0.25))]
    points, added = gain_points_to_db([(0.0, 0.5), (1.0, 0.5)])
    assert not added and len(points) == 2


def test_gain_to_db():
    assert gain_to_db(1.0) == 0.0
    assert gain_to_db(0.0) == SILENT_DB
    assert gain_to_db(10 ** (-6 / 20)) == pytest.approx(-6.0, abs=1e-12)
    assert math.isfinite(gain_to_db(1e-30))


def test_route_names_are_unique_valid_and_reported():
    report = _report()
    names = RouteNames(report, "track")
    assert [
        names.take(n, f"Track {i + 1}")
        for i, n in enumerate(["Kick", "Kick", "", " Pad  ", "master"])
    ] == ["Kick", "Kick (2)", "Track 3", "Pad", "master (DAW)"]
    assert [f.code for f in report.findings] == ["NAME_CHANGED"] * 4
    assert all(f.effect == "none" for f in report.findings)


def test_media_lookup_order(tmp_path):
    project = tmp_path / "project"
    record = project / "Audio"
    root = tmp_path / "library" / "deep"
    for folder in (project, record, root):
        folder.mkdir(parents=True)
    (record / "take.wav").write_bytes(b"x")
    (root / "Other.WAV").write_bytes(b"x")
    report = _report()
    media = MediaResolver(project, report, folders=[record], media_root=tmp_path / "library")
    assert media.resolve("take.wav", "A › clip 0") == (record / "take.wav").resolve()
    assert media.resolve("Audio\\take.wav", "A › clip 1") == (record / "take.wav").resolve()
    assert report.findings == []
    assert media.resolve("D:\\Sessions\\other.wav", "B › clip 0") == (root / "Other.WAV").resolve()
    assert report.findings[-1].code == "MEDIA_FOUND_BY_NAME"
    assert media.resolve("/nowhere/gone.wav", "C › clip 0") is None
    missing = report.findings[-1]
    assert (missing.code, missing.effect, missing.where) == (
        "MISSING_MEDIA",
        "dropped",
        "C › clip 0",
    )


def test_report_codes_are_checked_and_strict_refuses_audio_changes():
    with pytest.raises(ValueError):
        Finding("NOT_A_CODE", "x", "none", "m", "a")
    assert all(code == code.upper() for code in CODES)
    report = _report()
    report.add("SOLO_IGNORED", "Vox", "none", "soloed", "rendered unsoloed")
    check_strict(report)  # nothing changes the audio
    report.add("MIDI_TRACK", "Synth", "dropped", "a MIDI track", "freeze it")
    with pytest.raises(ProjectError) as caught:
        check_strict(report)
    assert "MIDI_TRACK" in caught.value.message and caught.value.field == "Synth"
    data = report.to_dict()
    assert data["changes_audio"] is True and data["codes"] == {"MIDI_TRACK": 1, "SOLO_IGNORED": 1}


def test_plugin_map_is_case_insensitive_and_relative_to_its_file(tmp_path):
    (tmp_path / "map.yaml").write_text('"Pro-Q 3": plugins/ProQ3.vst3\n', "utf-8")
    plugins = load_plugin_map(tmp_path / "map.yaml")
    assert isinstance(plugins, PluginMap)
    assert plugins["pro-q 3"] == str(tmp_path / "plugins" / "ProQ3.vst3")
    (tmp_path / "bad.yaml").write_text("- a\n- b\n", "utf-8")
    with pytest.raises(InputError):
        load_plugin_map(tmp_path / "bad.yaml")


def test_import_never_overwrites_what_the_user_owns(tmp_path):
    session = tmp_path / "song.yaml"
    check_targets(session, force=False)  # nothing there yet
    session.write_text("stemprint: 1\n", "utf-8")
    with pytest.raises(InputError, match="exists"):
        check_targets(session, force=False)
    with pytest.raises(InputError, match="not written by `stemprint import`"):
        check_targets(session, force=True)
    session.write_text(HEADER.format(project="song.rpp", version="0") + "stemprint: 1\n", "utf-8")
    check_targets(session, force=True)
    media = media_dir_for(session)
    media.mkdir()
    (media / "mine.wav").write_bytes(b"x")
    with pytest.raises(InputError, match="media"):
        check_targets(session, force=True)
    (media / MEDIA_MARKER).write_text("", "utf-8")
    check_targets(session, force=True)

"""`stemprint import` and `render`/`validate` of a DAW project, through the command line: the
written session and report, what is refused, and the rendered samples."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import yaml
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.conftest import write_wav

runner = CliRunner()
RATE = 48000

PROJECT = """<REAPER_PROJECT 0.1 "6.80/linux-x86_64" 1700000000
  SAMPLERATE 48000 0 0
  TEMPO 120 4 4
  MASTER_VOLUME 1 0 -1 -1 1
  <TRACK {00000000-0000-0000-0000-00000000000A}
    NAME Drums
    VOLPAN 0.5 0 -1 -1 1
    ISBUS 1 1
  >
  <TRACK {00000000-0000-0000-0000-00000000000B}
    NAME Kick
    VOLPAN 1 0 -1 -1 1
    ISBUS 2 -1
    MAINSEND 1 0
    <ITEM
      POSITION 0.5
      LENGTH 0.25
      <SOURCE WAVE
        FILE "kick.wav"
      >
    >
  >
{extra}>
"""

MIDI_TRACK = """  <TRACK {00000000-0000-0000-0000-00000000000C}
    NAME Synth
    <ITEM
      POSITION 0
      LENGTH 1
      <SOURCE MIDI
        HASDATA 1 960 QN
        E 0 90 3c 60
        E 960 80 3c 00
      >
    >
  >
"""


def _project(tmp_path, extra=""):
    kick = 0.5 * np.random.default_rng(5).uniform(-1, 1, (2, RATE // 2))
    write_wav(tmp_path / "kick.wav", kick)
    path = tmp_path / "song.rpp"
    path.write_text(PROJECT.replace("{extra}", extra), "utf-8")
    return path, kick


def test_import_writes_a_session_and_a_report(tmp_path):
    project, _kick = _project(tmp_path)
    out = tmp_path / "out" / "song.yaml"
    report = tmp_path / "out" / "report.json"
    result = runner.invoke(app, ["import", str(project), "-o", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    text = out.read_text("utf-8")
    assert text.startswith("# stemprint session imported from song.rpp")
    session = yaml.safe_load(text)
    assert session["stemprint"] == 1
    assert [t["name"] for t in session["tracks"]] == ["Kick"]
    assert [b["name"] for b in session["buses"]] == ["Drums"]
    assert session["tracks"][0]["output"] == "Drums"
    assert abs(session["buses"][0]["gain_db"] - 20 * np.log10(0.5)) < 1e-9
    clip = session["tracks"][0]["clips"][0]
    assert (clip["start_seconds"], clip["duration_seconds"]) == (0.5, 0.25)
    assert clip["file"] == str((tmp_path / "kick.wav").resolve())  # outside the session folder
    data = json.loads(report.read_text("utf-8"))
    assert data["format"] == "rpp" and data["application"].startswith("REAPER")
    assert data["media"] == [str((tmp_path / "kick.wav").resolve())]
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0


def test_import_refuses_to_overwrite_and_force_replaces_only_an_import(tmp_path):
    project, _kick = _project(tmp_path)
    out = tmp_path / "song.yaml"
    assert runner.invoke(app, ["import", str(project), "-o", str(out)]).exit_code == 0
    again = runner.invoke(app, ["import", str(project), "-o", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    assert runner.invoke(app, ["import", str(project), "-o", str(out), "--force"]).exit_code == 0
    mine = tmp_path / "mine.yaml"
    mine.write_text("stemprint: 1\n", "utf-8")
    refused = runner.invoke(app, ["import", str(project), "-o", str(mine), "--force"])
    assert refused.exit_code == 2
    assert mine.read_text("utf-8") == "stemprint: 1\n"


def test_strict_refuses_an_import_that_changes_the_audio(tmp_path):
    project, _kick = _project(tmp_path, MIDI_TRACK)
    out = tmp_path / "song.yaml"
    report = tmp_path / "report.json"
    result = runner.invoke(
        app, ["import", str(project), "-o", str(out), "--strict", "--report", str(report)]
    )
    assert result.exit_code == 2
    assert "MIDI_TRACK" in result.output and "song.rpp" in result.output
    assert not out.exists()
    assert json.loads(report.read_text("utf-8"))["changes_audio"] is True
    lenient = runner.invoke(app, ["import", str(project), "-o", str(out)])
    assert lenient.exit_code == 0 and "MIDI_TRACK" in lenient.output
    rendered = runner.invoke(app, ["render", str(project), "-o", str(tmp_path / "p"), "--strict"])
    assert rendered.exit_code == 2 and not (tmp_path / "p").exists()


def test_render_a_project_directly(tmp_path):
    project, kick = _project(tmp_path, MIDI_TRACK)
    out = tmp_path / "package"
    result = runner.invoke(app, ["render", str(project), "-o", str(out), "--bit-depth", "32f"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    mix, rate = sf.read(str(out / "mix.wav"), always_2d=True)
    assert rate == RATE
    start, length = RATE // 2, RATE // 4
    expected = np.zeros((2, mix.shape[0]))
    expected[:, start : start + length] = 0.5 * kick[:, :length]
    assert np.max(np.abs(mix.T - expected)) < 1e-7  # float32 files
    assert manifest["import"]["format"] == "rpp"
    assert any(item.startswith("MIDI_TRACK") for item in manifest["import"]["changed"])
    report = json.loads((out / "import-report.json").read_text("utf-8"))
    assert report["codes"]["MIDI_TRACK"] >= 1
    readme = (out / "README.md").read_text("utf-8")
    assert "## Imported from a DAW project" in readme and "MIDI_TRACK" in readme
    assert project.read_text("utf-8").startswith("<REAPER_PROJECT")  # the project untouched
    valid = runner.invoke(app, ["validate", str(project)])
    assert valid.exit_code == 0 and "valid" in valid.output


def test_a_broken_project_is_exit_2_naming_the_file(tmp_path):
    project, _kick = _project(tmp_path)
    text = project.read_text("utf-8")
    project.write_text(text[: len(text) // 2], "utf-8")  # truncated: chunks left open
    for command in (
        ["import", str(project), "-o", str(tmp_path / "s.yaml")],
        ["render", str(project), "-o", str(tmp_path / "p")],
        ["validate", str(project)],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert "song.rpp" in result.output
    assert not (tmp_path / "s.yaml").exists() and not (tmp_path / "p").exists()
    missing = runner.invoke(app, ["validate", str(tmp_path / "nope.dawproject")])
    assert missing.exit_code == 2 and "nope.dawproject" in missing.output

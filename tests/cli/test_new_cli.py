"""``stemprint new``: sessions started from the bundled templates, audio assigned by name."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.model.load import load_session
from stemprint.templates import load_template, template_names
from tests.conftest import write_wav

runner = CliRunner()
ROOT = Path(__file__).parents[2]

FILES = {
    "band": ["Kick In", "snare_top", "OH L", "Bass DI", "Gtr Rhythm", "Piano", "Lead Vox"],
    "electronic": ["Kick", "Clap", "Sub Bass", "Lead Synth", "Pad", "Vox Chop", "Riser FX"],
    "film-dme": ["DX line 01", "ADR 02", "Score cue 1", "Foley steps", "AMB rain"],
    "podcast": ["Host mic", "Guest mic", "Intro music", "Applause sfx"],
}


def audio(folder: Path, names: list[str], seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    for i, name in enumerate(names):
        write_wav(folder / f"{name}.wav", 0.05 * rng.uniform(-1, 1, (1 + i % 2, 24000)))
    return folder


def test_the_bundled_templates():
    assert template_names() == ["band", "electronic", "film-dme", "podcast"]
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["setuptools"]["package-data"]["stemprint.templates"] == ["*.yaml"]
    film = load_template("film-dme").session
    assert [(b["name"], b["layout"]) for b in film["buses"]] == [
        ("DX", "5.1"),
        ("MX", "5.1"),
        ("FX", "5.1"),
    ]
    assert film["master"] == {"layout": "5.1"} and film["delivery"] == {"preset": "dme"}


@pytest.mark.parametrize("template", sorted(FILES))
def test_new_session_validates_with_every_file_assigned(tmp_path, template):
    folder = audio(tmp_path / "audio", [*FILES[template], "mystery take"])
    session = tmp_path / "song" / "session.yaml"
    result = runner.invoke(
        app, ["new", "--template", template, "-o", str(session), "--audio", str(folder)]
    )
    assert result.exit_code == 0, result.output
    assert "not assigned" in result.output and "mystery take.wav" in result.output
    assert f"{len(FILES[template])} tracks, 1 file not assigned" in result.output
    loaded = load_session(session)
    assert sorted(t.name for t in loaded.session.tracks) == sorted(FILES[template])
    assert all(t.clips[0].file.startswith("../audio/") for t in loaded.session.tracks)
    assert loaded.session.name == "session"
    valid = runner.invoke(app, ["validate", str(session)])
    assert valid.exit_code == 0, valid.output


def test_assignment_by_name_pattern(tmp_path):
    folder = audio(tmp_path / "audio", FILES["band"])
    session = tmp_path / "song.yaml"
    assert runner.invoke(
        app, ["new", "-t", "band", "-o", str(session), "--audio", str(folder)]
    ).exit_code == 0  # fmt: skip
    data = yaml.safe_load(session.read_text())
    assert [(t["name"], t["output"]) for t in data["tracks"]] == [
        ("Kick In", "Drums"),  # rules in order (kick first), then paths
        ("OH L", "Drums"),
        ("snare_top", "Drums"),
        ("Bass DI", "Bass"),
        ("Gtr Rhythm", "Guitars"),
        ("Piano", "Keys"),
        ("Lead Vox", "Vocals"),
    ]


def test_film_dme_renders_the_dme_package(tmp_path):
    folder = audio(tmp_path / "audio", FILES["film-dme"])
    session = tmp_path / "reel1.yaml"
    made = runner.invoke(app, ["new", "-t", "film-dme", "-o", str(session), "--audio", str(folder)])
    assert made.exit_code == 0, made.output
    out = tmp_path / "package"
    result = runner.invoke(app, ["render", str(session), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    stems = [(f["role"], f["name"], f["channels"]) for f in manifest["files"]]
    assert (
        ("stem", "DX", 6) in stems and ("alt_mix", "ME", 6) in stems and ("mix", "Mix", 6) in stems
    )


def test_refuses_to_overwrite(tmp_path):
    session = tmp_path / "s.yaml"
    session.write_text("mine\n")
    result = runner.invoke(app, ["new", "-t", "podcast", "-o", str(session)])
    assert result.exit_code == 2 and "never overwrites" in result.output
    assert session.read_text() == "mine\n"


def test_bad_template_or_folder(tmp_path):
    unknown = runner.invoke(app, ["new", "-t", "bnad", "-o", str(tmp_path / "s.yaml")])
    assert unknown.exit_code == 2 and "did you mean 'band'" in unknown.output
    missing = runner.invoke(
        app, ["new", "-t", "band", "-o", str(tmp_path / "s.yaml"), "--audio", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2 and "audio folder not found" in missing.output
    assert not (tmp_path / "s.yaml").exists()


def test_surround_files_are_reported_not_assigned(tmp_path):
    write_wav(tmp_path / "audio" / "Kick.wav", np.zeros((6, 4800)))
    session = tmp_path / "s.yaml"
    result = runner.invoke(
        app, ["new", "-t", "band", "-o", str(session), "--audio", str(tmp_path / "audio")]
    )
    assert result.exit_code == 0 and "6 channels" in result.output
    assert "tracks" not in yaml.safe_load(session.read_text())


def test_an_album_from_one_template_has_the_same_stems_for_every_song(tmp_path):
    layouts = []
    for index, names in enumerate([FILES["band"], ["Kick", "Bass", "Vox double", "Acoustic"]]):
        folder = audio(tmp_path / f"song{index}" / "audio", names, seed=index)
        session = tmp_path / f"song{index}" / "session.yaml"
        args = ["new", "-t", "band", "-o", str(session), "--audio", str(folder)]
        assert runner.invoke(app, args).exit_code == 0
        out = tmp_path / f"song{index}" / "package"
        assert runner.invoke(app, ["render", str(session), "-o", str(out), "-q"]).exit_code == 0
        manifest = json.loads((out / "manifest.json").read_text())
        layouts.append([(f["role"], f["name"], f["path"]) for f in manifest["files"]])
    assert layouts[0] == layouts[1]
    assert [n for r, n, _ in layouts[0] if r == "stem"] == [
        "Drums",
        "Bass",
        "Guitars",
        "Keys",
        "Vocals",
    ]

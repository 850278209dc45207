"""Session templates through ``include:``: the merge rules, nesting, cycles, and errors that name
the included file and its line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.errors import SessionError
from stemprint.model.load import load_session
from tests.conftest import write_wav

runner = CliRunner()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


STEMS = """\
buses:
  - {name: Drums, gain_db: -2}
  - {name: Bass}
  - name: Music
    inserts: [{type: highpass_filter, cutoff_frequency_hz: 40}]
  - {name: Vocals}
stems:
  - {name: Drums, routes: [Drums]}
  - {name: Bass, routes: [Bass]}
  - {name: Music, routes: [Music]}
  - {name: Vocals, routes: [Vocals]}
delivery:
  bit_depth: "24"
  tail: {mode: fixed, seconds: 1.0}
"""


def test_merge_rules(tmp_path):
    write(tmp_path / "tpl" / "stems.yaml", STEMS)
    session = write(
        tmp_path / "song.yaml",
        """\
stemprint: 1
name: Song
include: tpl/stems.yaml
tracks:
  - {name: Kick, output: Drums}
buses:
  - {name: Music, pan: 0.5, inserts: []}
  - {name: FX}
delivery:
  tail: {seconds: 2.0}
""",
    )
    loaded = load_session(session)
    s = loaded.session
    # named lists: the template's order, an entry of the same name extended, new names after
    assert [b.name for b in s.buses] == ["Drums", "Bass", "Music", "Vocals", "FX"]
    assert s.buses[0].gain_db == -2  # kept from the template
    assert s.buses[2].pan == 0.5 and s.buses[2].inserts == []  # the song's fields win
    assert [st.name for st in s.stems or []] == ["Drums", "Bass", "Music", "Vocals"]
    # mappings merge recursively
    assert s.delivery.bit_depth == "24" and s.delivery.tail is not None
    assert s.delivery.tail.mode == "fixed" and s.delivery.tail.seconds == 2.0
    assert loaded.includes == ((tmp_path / "tpl" / "stems.yaml").resolve(),)
    # where each value comes from
    assert loaded.file_of(("buses", 0, "gain_db")) == tmp_path / "tpl" / "stems.yaml"
    assert loaded.line_of(("buses", 0, "gain_db")) == 2
    assert loaded.file_of(("buses", 2, "pan")) == session
    assert loaded.line_of(("buses", 4)) == 8
    assert loaded.where(("delivery", "tail", "mode")) == f"{tmp_path / 'tpl' / 'stems.yaml'}:14"


def test_other_lists_are_replaced_and_null_resets(tmp_path):
    write(tmp_path / "base.yaml", STEMS + "mixes:\n  - {name: Instrumental, mute: [Vocals]}\n")
    session = write(
        tmp_path / "song.yaml",
        """\
stemprint: 1
include: [base.yaml]
stems: null
mixes:
  - {name: Instrumental, solo: [Music]}
""",
    )
    s = load_session(session).session
    assert s.stems is None  # the default stems
    (mix,) = s.mixes
    assert mix.mute == ["Vocals"] and mix.solo == ["Music"]  # extended by name


def test_nested_includes_in_order_and_relative_to_each_file(tmp_path):
    write(tmp_path / "a" / "deep" / "delivery.yaml", "delivery: {bit_depth: '16', format: flac}\n")
    write(tmp_path / "a" / "layout.yaml", "include: deep/delivery.yaml\nbuses: [{name: Bus}]\n")
    write(tmp_path / "b.yaml", "delivery: {format: aiff}\nbuses: [{name: Bus, gain_db: -6}]\n")
    session = write(tmp_path / "s.yaml", "stemprint: 1\ninclude: [a/layout.yaml, b.yaml]\n")
    loaded = load_session(session)
    assert loaded.session.delivery.bit_depth == "16"
    assert loaded.session.delivery.format == "aiff"  # a later include wins over an earlier one
    assert loaded.session.buses[0].gain_db == -6
    assert len(loaded.includes) == 3


def test_a_diamond_is_fine_and_a_cycle_is_refused(tmp_path):
    write(tmp_path / "common.yaml", "tail_seconds: 1.5\n")
    write(tmp_path / "x.yaml", "include: common.yaml\n")
    write(tmp_path / "y.yaml", "include: common.yaml\n")
    ok = write(tmp_path / "ok.yaml", "stemprint: 1\ninclude: [x.yaml, y.yaml]\n")
    assert load_session(ok).session.tail_seconds == 1.5

    write(tmp_path / "p.yaml", "include: q.yaml\n")
    write(tmp_path / "q.yaml", "tail_seconds: 1\ninclude:\n  - p.yaml\n")
    cyclic = write(tmp_path / "cyclic.yaml", "stemprint: 1\ninclude: p.yaml\n")
    with pytest.raises(SessionError) as caught:
        load_session(cyclic)
    error = caught.value
    assert "include cycle: cyclic.yaml → p.yaml → q.yaml → p.yaml" in error.message
    assert error.file == str(tmp_path / "q.yaml") and error.line == 3
    assert error.field == "include[0]"

    me = write(tmp_path / "me.yaml", "stemprint: 1\ninclude: me.yaml\n")
    with pytest.raises(SessionError, match="include cycle: me.yaml → me.yaml"):
        load_session(me)


@pytest.mark.parametrize(
    ("template", "line", "text"),
    [
        ("buses:\n  - name: Drums\n    gain_db: loud\n", 3, "valid number"),
        ("buses:\n  - name: Drums\n    output: Nowhere\n", 3, "unknown bus 'Nowhere'"),
        ("buses:\n  - name: Drums\n    gian_db: 1\n", 3, "did you mean 'gain_db'"),
        ("buses:\n  - name: Drums\n    gain_db: [1\n", 4, "YAML syntax error"),
        ("delivery:\n  tail: !!python/object:os.system {}\n", 2, "YAML"),
        ("- just\n- a list\n", 1, "must be a YAML mapping"),
    ],
    ids=["type", "reference", "unknown-field", "syntax", "unsafe-tag", "not-a-mapping"],
)
def test_errors_name_the_included_file_and_line(tmp_path, template, line, text):
    included = write(tmp_path / "templates" / "band.yaml", template)
    session = write(tmp_path / "song.yaml", "stemprint: 1\ninclude: templates/band.yaml\n")
    with pytest.raises(SessionError) as caught:
        load_session(session)
    assert caught.value.file == str(included)
    assert caught.value.line == line
    assert text in caught.value.message


def test_an_error_in_the_including_file_still_names_it(tmp_path):
    write(tmp_path / "t.yaml", "buses: [{name: Drums}]\n")
    session = write(
        tmp_path / "song.yaml", "stemprint: 1\ninclude: t.yaml\nbuses:\n  - {name: Drums, pan: 7}\n"
    )
    with pytest.raises(SessionError) as caught:
        load_session(session)
    assert caught.value.file == str(session) and caught.value.line == 4


def test_a_missing_include_names_the_including_line(tmp_path):
    session = write(tmp_path / "s.yaml", "stemprint: 1\ninclude:\n  - ok.yaml\n  - gone.yaml\n")
    write(tmp_path / "ok.yaml", "tail_seconds: 1\n")
    with pytest.raises(SessionError) as caught:
        load_session(session)
    assert "included file not found" in caught.value.message
    assert caught.value.file == str(session) and caught.value.line == 4
    bad = write(tmp_path / "bad.yaml", "stemprint: 1\ninclude: [{path: x}]\n")
    with pytest.raises(SessionError, match="must be the path of a YAML file"):
        load_session(bad)


def test_validate_names_the_included_file_and_line(tmp_path):
    write_wav(tmp_path / "kick.wav", 0.1 * np.ones((1, 4800)))
    write(tmp_path / "layout" / "buses.yaml", "buses:\n  - name: Drums\n    output: Mastr\n")
    session = write(
        tmp_path / "song.yaml",
        "stemprint: 1\ninclude: layout/buses.yaml\n"
        "tracks:\n  - {name: Kick, clips: [{file: kick.wav}], output: Drums}\n",
    )
    result = runner.invoke(app, ["validate", str(session)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'layout' / 'buses.yaml'}:3: buses[0].output" in result.output
    assert "unknown bus 'Mastr'" in result.output


def song(folder: Path, seed: int, parts: list[str]) -> Path:
    """A song of the album: its own audio and tracks, the album's template for the rest."""
    rng = np.random.default_rng(seed)
    tracks = []
    for part in parts:
        write_wav(folder / f"{part}.wav", 0.1 * rng.uniform(-1, 1, (1, 48000)))
        bus = {"kick": "Drums", "snare": "Drums", "bass": "Bass", "keys": "Music"}.get(
            part, "Vocals"
        )
        tracks.append(f"  - {{name: {part}, clips: [{{file: {part}.wav}}], output: {bus}}}\n")
    return write(
        folder / "session.yaml",
        f"stemprint: 1\nname: Song {seed}\ninclude: ../template.yaml\ntracks:\n{''.join(tracks)}",
    )


def test_an_album_from_one_template_has_the_same_stems_for_every_song(tmp_path):
    write(tmp_path / "album" / "template.yaml", STEMS)
    one = song(tmp_path / "album" / "one", 1, ["kick", "snare", "bass", "keys", "vox"])
    two = song(tmp_path / "album" / "two", 2, ["kick", "bass", "lead", "harmony"])  # no keys
    layouts = []
    for session in (one, two):
        out = session.parent / "package"
        result = runner.invoke(app, ["render", str(session), "-o", str(out), "-q"])
        assert result.exit_code == 0, result.output
        manifest = json.loads((out / "manifest.json").read_text())
        layouts.append(
            [(f["role"], f["name"], f["path"], f["channels"]) for f in manifest["files"]]
        )
    assert layouts[0] == layouts[1]
    stems = [name for role, name, _, _ in layouts[0] if role == "stem"]
    assert stems == ["Drums", "Bass", "Music", "Vocals"]

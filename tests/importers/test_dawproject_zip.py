"""Hostile and damaged DAWproject containers: every one is a ProjectError (exit 2), none writes."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.errors import ProjectError
from stemprint.importers.dawproject import archive as dawproject_zip
from stemprint.importers.dawproject import read_dawproject
from stemprint.importers.dawproject.archive import ProjectArchive
from stemprint.importers.report import ImportReport
from tests.importers.dawproject_synth import Project, tone

runner = CliRunner()

MINIMAL = (
    b'<?xml version="1.0"?><Project version="1.0"><Application name="x" version="1"/></Project>'
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Project version="1.0"><Application name="&lol4;" version="1"/></Project>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE p [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Project version="1.0"><Application name="&secret;" version="1"/></Project>"""


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _read(path: Path, tmp_path: Path) -> dict:
    report = ImportReport(project=str(path), format="dawproject")
    return read_dawproject(path, report, extract_dir=tmp_path / "extract")


def _assert_rejected(path: Path, tmp_path: Path, words: str) -> ProjectError:
    with pytest.raises(ProjectError) as caught:
        _read(path, tmp_path)
    error = caught.value
    assert error.file == str(path)
    assert error.fix
    assert words in error.message, error.message
    assert not (tmp_path / "extract").exists() or not any((tmp_path / "extract").rglob("*"))
    return error


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../evil.wav", "'..'"),
        ("audio/../../evil.wav", "'..'"),
        ("/etc/evil.wav", "absolute"),
        ("C:/Windows/evil.wav", "drive letter"),
        ("audio\\..\\..\\evil.wav", "backslash"),
    ],
)
def test_zip_slip_member_names_are_refused(tmp_path, name, words):
    path = _zip(tmp_path / "slip.dawproject", {"project.xml": MINIMAL, name: b"RIFF"})
    _assert_rejected(path, tmp_path, words)
    assert not (tmp_path / "evil.wav").exists()


def test_symlink_member_is_refused(tmp_path):
    path = tmp_path / "link.dawproject"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("project.xml", MINIMAL)
        info = zipfile.ZipInfo("audio/link.wav")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    _assert_rejected(path, tmp_path, "symbolic link")


def test_zip_bomb_ratio_is_refused(tmp_path):
    members = {"project.xml": MINIMAL, "audio/bomb.wav": bytes(8 * 1024 * 1024)}
    path = _zip(tmp_path / "bomb.dawproject", members, zipfile.ZIP_BZIP2)
    _assert_rejected(path, tmp_path, "zip bomb")


def test_total_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(dawproject_zip, "MAX_TOTAL_BYTES", 4096)
    path = _zip(tmp_path / "big.dawproject", {"project.xml": MINIMAL, "a.bin": bytes(8192)})
    _assert_rejected(path, tmp_path, "more than 4096 bytes")


def test_streaming_cap_stops_a_member_while_copying(tmp_path):
    path = _zip(tmp_path / "p.dawproject", {"project.xml": MINIMAL, "audio/a.wav": bytes(5000)})
    with ProjectArchive(path, max_total_bytes=10_000) as archive:
        archive._cap = 1000  # as if the header had lied about the size
        with pytest.raises(ProjectError, match="more than 1000 bytes"):
            archive.extract("audio/a.wav", tmp_path / "x")
    assert not any((tmp_path / "x").rglob("*.wav"))


@pytest.mark.parametrize(
    ("xml", "words"), [(BILLION_LAUGHS, "DTD"), (EXTERNAL_ENTITY, "DTD")], ids=["laughs", "xxe"]
)
def test_entities_are_refused(tmp_path, xml, words):
    path = _zip(tmp_path / "ent.dawproject", {"project.xml": xml})
    error = _assert_rejected(path, tmp_path, words)
    assert error.field == "project.xml"


def test_truncated_archive(tmp_path):
    project = Project()
    track = project.track("A")
    path = project.add_media("a.wav", tone(0.5))
    project.raw_clip(track, path, tone(0.5), time=0.0, duration=0.5)
    full = project.write(tmp_path / "full.dawproject").read_bytes()
    cut = tmp_path / "cut.dawproject"
    cut.write_bytes(full[: len(full) // 2])
    _assert_rejected(cut, tmp_path, "not a readable DAWproject ZIP")


def test_garbage_is_not_a_zip(tmp_path):
    path = tmp_path / "garbage.dawproject"
    path.write_bytes(b"this is not a zip file at all" * 10)
    _assert_rejected(path, tmp_path, "not a readable DAWproject ZIP")


def test_missing_project_xml(tmp_path):
    path = _zip(tmp_path / "empty.dawproject", {"metadata.xml": b"<MetaData/>"})
    error = _assert_rejected(path, tmp_path, "no project.xml")
    assert error.field == "project.xml"


def test_malformed_xml_names_the_line(tmp_path):
    xml = b'<?xml version="1.0"?>\n<Project version="1.0">\n<Structure>\n</Project>'
    path = _zip(tmp_path / "bad.dawproject", {"project.xml": xml})
    error = _assert_rejected(path, tmp_path, "not well-formed")
    assert error.line == 4


def test_wrong_root_and_bad_numbers(tmp_path):
    path = _zip(tmp_path / "root.dawproject", {"project.xml": b"<Session/>"})
    _assert_rejected(path, tmp_path, "<Session>")
    bad = MINIMAL.replace(
        b"</Project>",
        b'<Transport><Tempo unit="bpm" value="fast" id="t"/></Transport></Project>',
    )
    path = _zip(tmp_path / "num.dawproject", {"project.xml": bad})
    error = _assert_rejected(path, tmp_path, "not a number")
    assert error.field == "Tempo[t]@value"


def test_extracted_names_are_made_here(tmp_path):
    weird = "audio/we ird$na:me.wav"
    path = _zip(tmp_path / "p.dawproject", {"project.xml": MINIMAL, weird: b"RIFF0000"})
    with ProjectArchive(path) as archive:
        member = archive.member(weird)
        assert member == weird
        target = archive.extract(member, tmp_path / "x")
        assert target.parent == (tmp_path / "x" / "media").resolve()
        assert target.name == "1-we ird_na_me.wav"
        assert archive.extract(member, tmp_path / "x") == target  # once per member
        assert archive.member("../project.xml") is None


@pytest.mark.parametrize("command", ["import", "render"])
def test_cli_exit_2_names_the_file(tmp_path, command):
    path = _zip(tmp_path / "evil.dawproject", {"project.xml": BILLION_LAUGHS})
    out = tmp_path / ("s.yaml" if command == "import" else "out")
    result = runner.invoke(app, [command, str(path), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "evil.dawproject" in result.output
    assert "DTD" in result.output
    assert not out.exists()

"""The RPP tokenizer: quoting, line ends, raw lines, errors with line numbers; `rpp` as oracle."""

from __future__ import annotations

import pytest

from stemprint.errors import ProjectError
from stemprint.importers.rpp.tokens import (
    Chunk,
    Line,
    parse_chunks,
    parse_project,
    read_project_text,
    split_tokens,
)

FIXTURES = [
    "griffinsauce__empty.rpp",
    "griffinsauce__multiple-media-paths.rpp",
    "perlence_rpp__empty.RPP",
    "perlence_rpp__vst.RPP",
]


def _as_rpp(chunk: Chunk) -> tuple:
    """Our tree in the `rpp` package's shape: one-token lines are strings."""
    children: list = []
    for child in chunk.children:
        if isinstance(child, Chunk):
            children.append(_as_rpp(child))
        else:
            children.append(child.tokens[0] if len(child.tokens) == 1 else child.tokens)
    return (chunk.tag, chunk.args, children)


def _oracle(element) -> tuple:
    import rpp

    return (
        element.tag,
        list(element.attrib),
        [_oracle(c) if isinstance(c, rpp.Element) else c for c in element.children],
    )


@pytest.mark.parametrize("name", FIXTURES)
def test_tree_matches_the_rpp_package(daw_fixtures, name):
    import rpp

    path = daw_fixtures / "rpp" / name
    text = read_project_text(path)
    assert _as_rpp(parse_project(text, str(path))) == _oracle(rpp.loads(text))


def test_quoting_rules():
    assert split_tokens('NAME "two words" x', 1, "f") == ["NAME", "two words", "x"]
    assert split_tokens("NAME '\"hey'", 1, "f") == ["NAME", '"hey']
    assert split_tokens('NAME hey"', 1, "f") == ["NAME", 'hey"']
    assert split_tokens("NAME `a \"b\" 'c'`", 1, "f") == ["NAME", "a \"b\" 'c'"]
    assert split_tokens("AUXRECV 0 0 1 0 0 0 0 0 0 -1:U 0 -1 ''", 1, "f")[-1] == ""
    assert split_tokens("|raw  text | kept", 1, "f") == ["|raw  text | kept"]


def test_lf_crlf_and_cr_give_the_same_tree():
    text = '<REAPER_PROJECT 0.1 "7.0"\n  <TRACK\n    NAME "A b"\n  >\n>\n'
    trees = [_as_rpp(parse_project(text.replace("\n", end))) for end in ("\n", "\r\n", "\r")]
    assert trees[0] == trees[1] == trees[2]


def test_raw_lines_and_lookups():
    text = "\n".join(
        [
            "<REAPER_PROJECT 0.1 x",
            "<TRACK",
            "<NOTES",
            '|hello <world> "x',
            ">",
            '<VST "VST3: A (B)" a.vst3 0 "" 1{0123456789ABCDEF0123456789ABCDEF}',
            "ZmFrZSBzdGF0ZQ==",
            ">",
            "PT 1 2",
            "PT 3 4",
            ">",
            ">",
        ]
    )
    root = parse_project(text)
    track = root.chunk("TRACK")
    assert track is not None and track.line == 2
    notes = track.chunk("NOTES")
    assert notes is not None and notes.children[0].tokens == ['|hello <world> "x']
    assert [p.args for p in track.lines("PT")] == [["1", "2"], ["3", "4"]]
    vst = track.chunk("VST")
    assert vst is not None and vst.args[0] == "VST3: A (B)"
    assert isinstance(vst.children[0], Line) and vst.children[0].tokens == ["ZmFrZSBzdGF0ZQ=="]
    assert [c.tag for c in root.walk()] == ["REAPER_PROJECT", "TRACK", "NOTES", "VST"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("<REAPER_PROJECT 0.1\n  <TRACK\n    NAME x\n", 2, "truncated"),
        ("<REAPER_PROJECT 0.1\n>\n>\n", 3, "never opened"),
        ('<REAPER_PROJECT 0.1\n  NAME "open\n>\n', 2, "never closed"),
        ("<REAPER_PROJECT 0.1\n>\nstray text\n", 3, "outside any chunk"),
        ("<REAPER_PROJECT 0.1\n  A \x00\n>\n", 2, "NUL"),
        ("\n\nhello, I am not a project\n", 3, "not a REAPER project"),
        ("<REAPER_PROJECT\n" + "<A\n" * 70 + ">\n" * 71, 65, "deeper"),
    ],
)
def test_damaged_text_names_file_and_line(text, line, words):
    with pytest.raises(ProjectError) as caught:
        parse_project(text, "song.rpp")
    assert caught.value.line == line
    assert caught.value.file == "song.rpp"
    assert words in caught.value.message
    assert f"song.rpp:{line}" in str(caught.value)


def test_several_projects_in_a_backup():
    roots = parse_chunks("<REAPER_PROJECT 1\n>\n<REAPER_PROJECT 2\n>\n")
    assert [r.args for r in roots] == [["1"], ["2"]]


def test_latin1_file_is_read(tmp_path):
    path = tmp_path / "old.rpp"
    path.write_bytes('<REAPER_PROJECT 0.1\n  <TRACK\n    NAME "Café"\n  >\n>\n'.encode("latin-1"))
    track = parse_project(read_project_text(path)).chunk("TRACK")
    assert track is not None and track.first("NAME").args == ["Café"]  # type: ignore[union-attr]

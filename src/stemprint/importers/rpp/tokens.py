"""A small, fast tokenizer and chunk-tree parser of REAPER project (``.rpp``) text.

Syntax read
-----------
- Lines end with LF or CRLF (a lone CR too). Leading and trailing blanks are not part of a line.
- A line whose text starts with ``<`` opens a chunk: ``<TAG arg arg …``; a line that is exactly
  ``>`` closes the innermost open chunk. Every other line is ``KEY arg arg …``.
- Tokens are separated by blanks. A token that starts with ``"``, ``'`` or a backtick runs to the
  next occurrence of the same character (REAPER picks the quote the text does not contain); a
  quote inside a token (``hey"``) is an ordinary character.
- A line starting with ``|`` (notes, lyrics) is one raw token: its whole text. Base64 lines of
  plug-in state have no blanks and no leading quote, so they come out as one raw token as well.

Invariants
----------
- The parser never evaluates anything; unknown tags and keys are kept, not interpreted.
- Every :class:`Line` and :class:`Chunk` carries its 1-based line number in the file.
- Malformed text (no ``<REAPER_PROJECT`` root, a stray ``>``, an unclosed quote, a chunk not
  closed at the end of the file, a NUL byte, nesting deeper than :data:`MAX_DEPTH`) raises
  :class:`~stemprint.errors.ProjectError` naming the file and the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from stemprint.errors import ProjectError

MAX_DEPTH = 64
"""Deepest chunk nesting accepted (real projects nest about 6 deep)."""

_QUOTES = "\"'`"


class Line:
    """One ``KEY arg …`` line: ``tokens[0]`` is the key."""

    __slots__ = ("line", "tokens")

    def __init__(self, tokens: list[str], line: int) -> None:
        self.tokens = tokens
        self.line = line

    @property
    def key(self) -> str:
        """The first token."""
        return self.tokens[0]

    @property
    def args(self) -> list[str]:
        """Every token after the key."""
        return self.tokens[1:]

    def __repr__(self) -> str:
        return f"Line({self.tokens!r}, line={self.line})"


class Chunk:
    """A ``<TAG args`` … ``>`` chunk: its lines and sub-chunks in file order."""

    __slots__ = ("_index", "args", "children", "line", "tag")

    def __init__(self, tag: str, args: list[str], line: int) -> None:
        self.tag = tag
        self.args = args
        self.line = line
        self.children: list[Line | Chunk] = []
        self._index: dict[str, list[Line | Chunk]] | None = None

    def _by_key(self) -> dict[str, list[Line | Chunk]]:
        if self._index is None:
            index: dict[str, list[Line | Chunk]] = {}
            for child in self.children:
                key = child.tag if isinstance(child, Chunk) else child.tokens[0]
                index.setdefault(key, []).append(child)
            self._index = index
        return self._index

    def first(self, key: str) -> Line | None:
        """The first line with this key, or ``None``."""
        for found in self._by_key().get(key, ()):
            if isinstance(found, Line):
                return found
        return None

    def lines(self, key: str) -> list[Line]:
        """Every line with this key, in order."""
        return [c for c in self._by_key().get(key, ()) if isinstance(c, Line)]

    def chunk(self, tag: str) -> Chunk | None:
        """The first sub-chunk with this tag, or ``None``."""
        for found in self._by_key().get(tag, ()):
            if isinstance(found, Chunk):
                return found
        return None

    def chunks(self, tag: str) -> list[Chunk]:
        """Every sub-chunk with this tag, in order."""
        return [c for c in self._by_key().get(tag, ()) if isinstance(c, Chunk)]

    def walk(self) -> Iterator[Chunk]:
        """This chunk and every chunk inside it, depth first."""
        stack: list[Chunk] = [self]
        while stack:
            chunk = stack.pop()
            yield chunk
            stack.extend(reversed([c for c in chunk.children if isinstance(c, Chunk)]))

    def __repr__(self) -> str:
        return f"Chunk({self.tag!r}, {self.args!r}, line={self.line}, {len(self.children)} kids)"


def split_tokens(text: str, line: int, file: str) -> list[str]:
    """Tokens of one stripped, non-empty line (quoting as in the module header)."""
    if text[0] == "|":
        return [text]
    if '"' not in text and "'" not in text and "`" not in text:
        return text.split()
    tokens: list[str] = []
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos]
        if char in " \t":
            pos += 1
            continue
        if char in _QUOTES:
            close = text.find(char, pos + 1)
            if close < 0:
                raise ProjectError(
                    f"a token opened with {char} is never closed",
                    file=file,
                    field=f"line {line}",
                    line=line,
                    fix="the project is damaged: open it in REAPER and save it again",
                )
            tokens.append(text[pos + 1 : close])
            pos = close + 1
            continue
        stop = pos
        while stop < end and text[stop] not in " \t":
            stop += 1
        tokens.append(text[pos:stop])
        pos = stop
    return tokens


def _error(message: str, file: str, line: int, field: str | None = None) -> ProjectError:
    return ProjectError(
        message,
        file=file,
        field=field or f"line {line}",
        line=line,
        fix="the project is damaged or truncated: open it in REAPER and save it again, or use "
        "its .rpp-bak backup",
    )


def parse_chunks(text: str, file: str = "<text>") -> list[Chunk]:
    """Every top-level chunk of RPP ``text`` (a ``.rpp-bak`` may hold several projects).

    Raises
    ------
    ProjectError
        Malformed text (see the module header); ``line`` is where the problem is.
    """
    if "\x00" in text:
        at = text.index("\x00")
        raise _error(
            "the file holds a NUL byte: it is not project text", file, text.count("\n", 0, at) + 1
        )
    roots: list[Chunk] = []
    stack: list[Chunk] = []
    number = 0
    # Split on LF only (CRLF's CR is stripped with the blanks) so line numbers are an editor's.
    separator = "\n" if "\n" in text or "\r" not in text else "\r"
    for number, raw in enumerate(text.split(separator), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        first = stripped[0]
        if first == ">" and len(stripped) == 1:
            if not stack:
                raise _error("a '>' closes a chunk that was never opened", file, number)
            stack.pop()
            continue
        if first == "<":
            tokens = split_tokens(stripped[1:].lstrip() or "?", number, file)
            chunk = Chunk(tokens[0], tokens[1:], number)
            if stack:
                if len(stack) >= MAX_DEPTH:
                    raise _error(f"chunks nest deeper than {MAX_DEPTH} levels", file, number)
                stack[-1].children.append(chunk)
            else:
                roots.append(chunk)
            stack.append(chunk)
            continue
        if not stack:
            raise _error(f"text outside any chunk: {stripped[:40]!r}", file, number)
        stack[-1].children.append(Line(split_tokens(stripped, number, file), number))
    if stack:
        open_chunk = stack[-1]
        raise _error(
            f"the file ends at line {number} inside <{open_chunk.tag} (opened at line "
            f"{open_chunk.line}): it is truncated",
            file,
            open_chunk.line,
            field=f"<{open_chunk.tag}",
        )
    return roots


def parse_project(text: str, file: str = "<text>") -> Chunk:
    """The ``<REAPER_PROJECT`` root chunk of RPP ``text`` (the first one, for ``.rpp-bak``)."""
    lead = text.lstrip("\ufeff \t\r\n")
    if not lead.startswith("<REAPER_PROJECT"):
        line = text[: len(text) - len(lead)].count("\n") + 1
        raise ProjectError(
            "not a REAPER project: the text does not start with <REAPER_PROJECT",
            file=file,
            field=f"line {line}",
            line=line,
            fix="give a REAPER .rpp file (saved by REAPER, not a template or a track chunk)",
        )
    return parse_chunks(text, file)[0]


def read_project_text(path: Path) -> str:
    """The text of a project file: UTF-8 (a BOM is dropped), else Latin-1 (old REAPER)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProjectError(
            f"cannot read the project: {exc.strerror or exc}",
            file=str(path),
            fix="check the path and the file's permissions",
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")

"""Load a session file: safe YAML → validated :class:`Session`, with errors that name the line.

YAML is parsed with ``yaml.SafeLoader`` only: a session file is data and can never construct
Python objects or run code. Errors name the file, the line, the field and the fix.

A session may ``include:`` other YAML files (``model.include``: merge rules, cycles refused); every
value then keeps the file it was written in as well as its line, so an error about a value from
an included file names that file and its line.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from stemprint.errors import SessionError
from stemprint.model.include import has_includes, resolve_includes
from stemprint.model.session import MASTER, Session

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedSession:
    """A validated session and where it came from.

    Attributes
    ----------
    session
        The validated model.
    path
        The session file; clip paths are relative to its folder.
    lines
        1-based line of each field's value, by location path, for error messages.
    files
        The file each value was written in, by location path, where it is not ``path`` (a
        value from an included file).
    includes
        Every file the session includes, directly or not (resolved paths).
    """

    session: Session
    path: Path
    lines: dict[Location, int]
    files: dict[Location, Path] = field(default_factory=dict)
    includes: tuple[Path, ...] = ()

    @classmethod
    def from_session(cls, session: Session, path: str | Path) -> LoadedSession:
        """A session built in code or imported (``import_project``), checked as a file is.

        ``path`` stands for the session file in messages; relative clip paths start in its
        folder.
        """
        loaded = cls(session=session, path=Path(path), lines={})
        check_references(loaded)
        return loaded

    @property
    def base_dir(self) -> Path:
        """The folder that clip paths are relative to."""
        return self.path.parent

    def line_of(self, location: Location) -> int | None:
        """Line of the deepest known ancestor of ``location``."""
        known = _known_ancestor(self.lines, location)
        return None if known is None else self.lines[known]

    def file_of(self, location: Location) -> Path:
        """The file that defines ``location`` (its deepest known ancestor): the session file,
        or the included file the value comes from."""
        known = _known_ancestor(self.lines, location)
        return self.path if known is None else self.files.get(known, self.path)

    def where(self, location: Location) -> str:
        """``file:line`` of ``location`` for messages (``file:?`` when the line is unknown)."""
        return f"{self.file_of(location)}:{self.line_of(location) or '?'}"

    def error(self, message: str, location: Location, fix: str | None = None) -> SessionError:
        """A :class:`SessionError` pointing at ``location``, in the file that defines it."""
        return SessionError(
            message,
            file=str(self.file_of(location)),
            field=format_location(location),
            line=self.line_of(location),
            fix=fix,
        )


def _known_ancestor(lines: dict[Location, int], location: Location) -> Location | None:
    """The deepest ancestor of ``location`` (itself included) that ``lines`` knows."""
    loc = tuple(location)
    while loc:
        if loc in lines:
            return loc
        loc = loc[:-1]
    return None


def format_location(location: Location) -> str:
    """``('tracks', 1, 'clips', 0, 'file')`` → ``tracks[1].clips[0].file``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


_SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""Safe loading only (a session file is data): libyaml's C parser, or the pure-Python one."""


def _line_map(node: yaml.Node, location: Location, out: dict[Location, int]) -> None:
    out[location] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            _line_map(value_node, (*location, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*location, index), out)


def _compose(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    """Parse YAML ``text`` (of the file ``path``) into its root node and its data."""
    try:
        # Compose once (the nodes carry line numbers for messages), construct the data from
        # them with the safe constructor only; libyaml's parser when present (10x faster).
        loader = _SAFE_LOADER(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SessionError(
            f"YAML syntax error: {exc.problem or exc}"
            + (f" ({exc.context})" if exc.context else ""),
            file=str(path),
            line=mark.line + 1 if mark else None,
            fix="fix the YAML syntax at that line (indentation, a missing colon or quote)",
        ) from None
    except yaml.YAMLError as exc:
        raise SessionError(f"YAML error: {exc}", file=str(path)) from None
    return root, data


def parse_session_text(text: str, path: Path) -> LoadedSession:
    """Parse and validate session YAML ``text``; ``path`` is used for messages and clip paths
    (and ``include:`` paths start in its folder)."""
    root, data = _compose(text, path)
    if not isinstance(data, dict):
        raise SessionError(
            "a session file must be a YAML mapping with `stemprint: 1`, `tracks:` and so on",
            file=str(path),
            fix="start from the session `stemprint demo` writes, or see `stemprint schema`",
        )
    lines: dict[Location, int] = {}
    files: dict[Location, Path] = {}
    includes: tuple[Path, ...] = ()
    if root is not None and has_includes(data):
        resolved = resolve_includes(root, data, path, _compose)
        data, lines, includes = resolved.data, resolved.lines, tuple(resolved.includes)
        files = {loc: file for loc, file in resolved.files.items() if file != path}
    elif root is not None:
        _line_map(root, (), lines)
    try:
        session = Session.model_validate(data)
    except ValidationError as exc:
        raise _from_validation_error(exc, path, lines, files) from None
    loaded = LoadedSession(session=session, path=path, lines=lines, files=files, includes=includes)
    check_references(loaded)
    return loaded


def load_session(path: str | Path) -> LoadedSession:
    """Read, parse and validate a session file.

    Raises
    ------
    SessionError
        The file is missing, unreadable, not YAML, or not a valid session; the message names the
        file, the line and the field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SessionError("session file not found", file=str(path), fix="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read session file: {exc}", file=str(path)) from None
    return parse_session_text(text, path)


def _from_validation_error(
    exc: ValidationError,
    path: Path,
    lines: dict[Location, int],
    files: dict[Location, Path] | None = None,
) -> SessionError:
    files = files or {}
    messages = []
    first_line = None
    first_field = None
    first_file = path
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = format_location(loc)
        known = _known_ancestor(lines, loc)
        line = lines[known] if known is not None else None
        file = files.get(known, path) if known is not None else path
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            key = str(loc[-1]) if loc else ""
            msg = f"unknown field {key!r}"
            model_fields = _fields_at(loc[:-1])
            close = difflib.get_close_matches(key, model_fields, n=1)
            if close:
                msg += f"; did you mean {close[0]!r}?"
            elif model_fields:
                msg += f"; valid fields: {', '.join(sorted(model_fields))}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        if first_line is None:
            first_line, first_field, first_file = line, where, file
        prefix = f"line {line}: " if line else ""
        if file != path:
            prefix = f"{file}:{line}: " if line else f"{file}: "
        messages.append(f"{prefix}{where}: {msg}" if where else f"{prefix}{msg}")
    if len(messages) == 1:
        text = messages[0].split(": ", 2)[-1] if first_field else messages[0]
        return SessionError(
            text,
            file=str(first_file),
            field=first_field or None,
            line=first_line,
            fix="see `stemprint schema` for every field and its type",
        )
    return SessionError(
        f"{len(messages)} problems:\n    " + "\n    ".join(messages),
        file=str(path),
        fix="see `stemprint schema` for every field and its type",
    )


def _fields_at(location: Location) -> list[str]:
    """Field names of the model at a location, for 'did you mean' hints."""
    from stemprint.model.session import Bus, Clip, Master, Send, Track

    names = [p for p in location if isinstance(p, str)]
    model: Any = Session
    mapping = {
        "tracks": Track,
        "buses": Bus,
        "clips": Clip,
        "sends": Send,
        "master": Master,
    }
    for name in names:
        model = mapping.get(name, model)
    return list(model.model_fields)


def check_references(loaded: LoadedSession) -> None:
    """Check that every ``output`` and send target names an existing bus.

    Routing cycles are found when the render graph is compiled (``graph.compile``), which prints
    the cycle.
    """
    session = loaded.session
    buses = [b.name for b in session.buses]
    for kind, routes in (("tracks", session.tracks), ("buses", session.buses)):
        for index, route in enumerate(routes):
            if route.output is not None and route.output != MASTER and route.output not in buses:
                raise loaded.error(
                    f"{route.name!r} outputs to unknown bus {route.output!r}",
                    (kind, index, "output"),
                    fix=_bus_fix(route.output, buses),
                )
            if kind == "buses" and route.output == route.name:
                raise loaded.error(
                    f"bus {route.name!r} outputs to itself (routing cycle "
                    f"{route.name} → {route.name})",
                    (kind, index, "output"),
                    fix='route it to another bus or to "master"',
                )
            for send_index, send in enumerate(route.sends):
                if send.to not in buses:
                    raise loaded.error(
                        f"{route.name!r} sends to unknown bus {send.to!r}",
                        (kind, index, "sends", send_index, "to"),
                        fix=_bus_fix(send.to, buses, master_ok=False),
                    )
                if send.to == route.name:
                    raise loaded.error(
                        f"bus {route.name!r} sends to itself (routing cycle "
                        f"{route.name} → {route.name})",
                        (kind, index, "sends", send_index, "to"),
                        fix="send to another bus",
                    )


def _bus_fix(name: str, buses: list[str], master_ok: bool = True) -> str:
    close = difflib.get_close_matches(name, buses, n=1)
    if close:
        return f"did you mean {close[0]!r}? Bus names are case-sensitive"
    choices = ", ".join(repr(b) for b in buses) or "none defined"
    tail = ' or "master"' if master_ok else ""
    return f"add a bus named {name!r} under `buses:`, or use one of: {choices}{tail}"

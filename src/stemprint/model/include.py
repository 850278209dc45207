"""Session templates: ``include:`` other YAML files, merged by fixed rules.

A session (or an included file) may start with ``include:``, one path or a list of paths to YAML
files holding parts of a session: a bus layout, a delivery block, a stem template shared by every
song of an album. The result is validated as one session.

Rules
-----
- Paths are relative to the folder of the file that names them. Includes nest; a file that
  includes itself, directly or through others, is refused with the chain
  (``a.yaml → b.yaml → a.yaml``). The same file may be included twice along different branches.
- Merging a file B over what it includes, A (includes first, in their order, each over the ones
  before it; the including file last, over all of them):

  - mappings merge key by key, recursively; B's value wins; A's keys keep their order, B's new
    keys follow;
  - the session's lists of named things, ``tracks``, ``buses``, ``stems``, ``mixes`` and
    ``regions``, merge by ``name``: an entry of B whose name an entry of A has *extends* that
    entry (merged as a mapping: B's fields win, a list inside it, ``clips``, ``inserts``,
    ``sends``, is B's whole); an entry with a new name is appended after A's entries;
  - every other list, every scalar, and a value of another type, is replaced by B's;
    ``null`` in B replaces too (``stems: null`` falls back to the default stems).

- Paths inside included files (clip ``file``, ``impulse_response_filename``…) stay relative to
  the session being loaded: a template shared by several songs finds each song's own audio.
- Every value keeps the file and the line it was written at, so an error about it names that
  file and line.
- Files are parsed with the same safe loader as sessions: data only, never code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stemprint.errors import SessionError

Location = tuple[str | int, ...]

INCLUDE_KEY = "include"
NAMED_LISTS = frozenset({"tracks", "buses", "stems", "mixes", "regions"})
"""Top-level lists whose entries merge by ``name``."""

Composer = Callable[[str, Path], tuple[yaml.Node | None, Any]]
"""Parses YAML text into its root node and its data (``load._compose``)."""


@dataclass
class Sourced:
    """A YAML value and where it was written.

    Attributes
    ----------
    value
        ``dict[key, Sourced]``, ``list[Sourced]`` or a scalar.
    file
        The file it was read from.
    line
        Its 1-based line there.
    """

    value: Any
    file: Path
    line: int


@dataclass
class Resolved:
    """A session with its includes merged.

    Attributes
    ----------
    data
        The merged session data, without ``include``.
    lines
        1-based line of each value, by location.
    files
        File of each value, by location.
    includes
        Every file included, directly or not, in the order first read.
    """

    data: Any
    lines: dict[Location, int] = field(default_factory=dict)
    files: dict[Location, Path] = field(default_factory=dict)
    includes: list[Path] = field(default_factory=list)


def has_includes(data: Any) -> bool:
    """True when session data names files to include."""
    return isinstance(data, dict) and INCLUDE_KEY in data


def resolve_includes(
    root: yaml.Node, data: dict[str, Any], path: Path, compose: Composer
) -> Resolved:
    """Merge every file ``data`` includes (see the module rules) into one session.

    Parameters
    ----------
    root
        The composed YAML root node of the session file (for its lines).
    data
        The session file's data, constructed from ``root``.
    path
        The session file.
    compose
        Parses the text of an included file into its root node and its data.

    Raises
    ------
    SessionError
        An include that is not a path, is missing, unreadable, not a YAML mapping, or closes a
        cycle; the message names the file and the line of the ``include`` entry.
    """
    resolved = Resolved(data=None)
    tree = sourced(root, data, path)
    merged = _expand(tree, path, (path.resolve(),), compose, resolved.includes)
    resolved.data = _flatten(merged, (), resolved.lines, resolved.files)
    return resolved


def sourced(node: yaml.Node, data: Any, file: Path) -> Sourced:
    """The ``Sourced`` tree of ``data``, with the lines of ``node`` (composed from ``file``)."""
    return _sourced(node, data, file, ())


def _sourced(node: yaml.Node, data: Any, file: Path, ancestors: tuple[int, ...]) -> Sourced:
    if id(node) in ancestors:
        raise SessionError(
            "a YAML alias refers to a value that contains it (a recursive value)",
            file=str(file),
            line=node.start_mark.line + 1,
            fix="write the value out instead of the alias",
        )
    line = node.start_mark.line + 1
    inner = (*ancestors, id(node))
    if isinstance(node, yaml.MappingNode) and isinstance(data, dict):
        by_key = {_key_text(k): v for k, v in node.value}
        value = {
            key: _sourced(by_key[str(key)], item, file, inner) if str(key) in by_key
            else Sourced(item, file, line)
            for key, item in data.items()
        }  # fmt: skip
        return Sourced(value, file, line)
    if isinstance(node, yaml.SequenceNode) and isinstance(data, list):
        items = [_sourced(n, d, file, inner) for n, d in zip(node.value, data, strict=False)]
        return Sourced(items, file, line)
    return Sourced(data, file, line)


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else str(node)


def _expand(
    tree: Sourced,
    file: Path,
    stack: tuple[Path, ...],
    compose: Composer,
    seen: list[Path],
) -> Sourced:
    """``tree`` (read from ``file``) merged over everything it includes, recursively."""
    if not isinstance(tree.value, dict) or INCLUDE_KEY not in tree.value:
        return tree
    entry = tree.value.pop(INCLUDE_KEY)
    base: Sourced | None = None
    for index, (name, item) in enumerate(_include_paths(entry, file)):
        target = file.parent / name
        where = _Where(file, item.line, f"{INCLUDE_KEY}[{index}]")
        key = target.resolve()
        if key in stack:
            chain = " → ".join(p.name for p in (*stack, key))
            raise where.error(
                f"include cycle: {chain}", "remove the include that leads back to this file"
            )
        if key not in seen:
            seen.append(key)
        included = _expand(_read(target, where, compose), target, (*stack, key), compose, seen)
        base = included if base is None else merge(base, included)
    return tree if base is None else merge(base, tree)


@dataclass(frozen=True)
class _Where:
    """An ``include`` entry: where errors about the file it names point."""

    file: Path
    line: int
    field: str

    def error(self, message: str, fix: str) -> SessionError:
        return SessionError(message, file=str(self.file), field=self.field, line=self.line, fix=fix)


def _include_paths(entry: Sourced, file: Path) -> list[tuple[str, Sourced]]:
    """The paths an ``include`` value names: a string, or a list of strings."""
    items = entry.value if isinstance(entry.value, list) else [entry]
    for index, item in enumerate(items):
        if not isinstance(item.value, str) or not item.value.strip():
            raise SessionError(
                "an include must be the path of a YAML file",
                file=str(file),
                field=f"{INCLUDE_KEY}[{index}]",
                line=item.line,
                fix="write `include: [templates/band.yaml]` (paths relative to this file)",
            )
    return [(str(item.value), item) for item in items]


def _read(target: Path, where: _Where, compose: Composer) -> Sourced:
    """Parse an included file into its ``Sourced`` tree (a mapping)."""
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise where.error(
            f"included file not found: {target}",
            "check the path: it is relative to the folder of the file that includes it",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise where.error(f"cannot read included file {target}: {exc}", "check the file") from None
    node, data = compose(text, target)
    if node is None or not isinstance(data, dict):
        raise SessionError(
            "an included file must be a YAML mapping of session fields (`buses:`, `delivery:`…)",
            file=str(target),
            line=node.start_mark.line + 1 if node is not None else None,
            fix="write the fields at the top level of the file, as in a session",
        )
    return sourced(node, data, target)


def merge(base: Sourced, over: Sourced, location: Location = ()) -> Sourced:
    """``over`` merged over ``base`` by the module rules (neither is changed)."""
    if isinstance(base.value, dict) and isinstance(over.value, dict):
        out = dict(base.value)
        for key, value in over.value.items():
            out[key] = merge(out[key], value, (*location, key)) if key in out else value
        return Sourced(out, over.file, over.line)
    if (
        len(location) == 1
        and location[0] in NAMED_LISTS
        and isinstance(base.value, list)
        and isinstance(over.value, list)
    ):
        return Sourced(_merge_named(base.value, over.value, location), over.file, over.line)
    return over


def _merge_named(base: list[Sourced], over: list[Sourced], location: Location) -> list[Sourced]:
    """Entries of ``over`` extend ``base``'s entries of the same name; new names follow."""
    out = list(base)
    index: dict[str, int] = {}
    for i, item in enumerate(base):
        name = _name(item)
        if name is not None:
            index.setdefault(name, i)
    extended: set[str] = set()
    for item in over:
        name = _name(item)
        if name is not None and name in index and name not in extended:
            extended.add(name)  # a second entry of that name is appended: validation reports it
            out[index[name]] = merge(out[index[name]], item, (*location, index[name]))
        else:
            out.append(item)
    return out


def _name(item: Sourced) -> str | None:
    if not isinstance(item.value, dict):
        return None
    name = item.value.get("name")
    return name.value if isinstance(name, Sourced) and isinstance(name.value, str) else None


def _flatten(
    node: Sourced, location: Location, lines: dict[Location, int], files: dict[Location, Path]
) -> Any:
    """Plain data of ``node``; fills the line and the file of every location."""
    lines[location] = node.line
    files[location] = node.file
    if isinstance(node.value, dict):
        return {k: _flatten(v, (*location, k), lines, files) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [_flatten(v, (*location, i), lines, files) for i, v in enumerate(node.value)]
    return node.value


__all__ = ["NAMED_LISTS", "Resolved", "Sourced", "has_includes", "merge", "resolve_includes"]

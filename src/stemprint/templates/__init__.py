"""Bundled session templates and ``stemprint new``: a session started from a template.

A template (``<name>.yaml`` in this package, shipped as package data) holds ``description``,
``session`` (the session without its tracks: buses, master, delivery, metadata; ``{name}`` in
its ``name`` and ``metadata.title`` becomes the new session's file name) and ``assign``: rules,
in order, of shell-style ``patterns`` and the ``track`` fields (``output``, ``pan``…) a file
matching one gets.

Rules
-----
- The audio files of the folder (``.wav``, ``.aif``/``.aiff``, ``.flac``, in subfolders too,
  hidden ones skipped) are taken in path order; each file's name without its extension, in
  lower case, is matched against the rules' patterns and the first rule that matches wins.
- A matched file becomes one track named after the file (``Kick In.wav`` → ``Kick In``; a
  repeated name gets `` 2``, `` 3``…) with one clip of the whole file, its path relative to the
  new session. Tracks are in the order of the rules (drums before bass…), then of the paths.
- A file no rule matches, or that is not mono or stereo audio, is reported and left out:
  stemprint never guesses where a file belongs.
- The session file is new: an existing file is never overwritten. What is written is parsed
  and validated before it is written.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stemprint.errors import InputError

AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".aif", ".aiff", ".flac"})
"""File suffixes (lower case) ``new --audio`` assigns to tracks."""


@dataclass(frozen=True)
class Template:
    """A bundled template.

    Attributes
    ----------
    name
        Its name (``band``, ``film-dme``…).
    description
        One line on what it is for.
    session
        The session data without tracks.
    assign
        ``(patterns, track fields)`` rules in order.
    """

    name: str
    description: str
    session: dict[str, Any]
    assign: tuple[tuple[tuple[str, ...], dict[str, Any]], ...]

    def rule_for(self, file_stem: str) -> tuple[int, dict[str, Any]] | None:
        """``(index, track fields)`` of the first rule matching a file name (without its
        extension), or ``None``."""
        key = file_stem.lower()
        for index, (patterns, fields) in enumerate(self.assign):
            if any(fnmatch.fnmatchcase(key, p.lower()) for p in patterns):
                return index, fields
        return None


@dataclass(frozen=True)
class Assignment:
    """One audio file assigned to a new track."""

    file: Path
    track: str
    output: str


@dataclass(frozen=True)
class Unassigned:
    """An audio file left out of the new session, and why."""

    file: Path
    reason: str


@dataclass(frozen=True)
class NewSession:
    """What ``new_session`` wrote.

    Attributes
    ----------
    path
        The session file.
    template
        The template's name.
    assigned
        Every file that became a track.
    unassigned
        Every audio file left out, with the reason.
    """

    path: Path
    template: str
    assigned: list[Assignment]
    unassigned: list[Unassigned]


def template_names() -> list[str]:
    """The bundled templates' names, sorted."""
    folder = resources.files(__name__)
    return sorted(
        entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml")
    )


def load_template(name: str) -> Template:
    """The bundled template ``name``.

    Raises
    ------
    InputError
        No template of that name (the message lists them).
    """
    names = template_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(
            f"no bundled template named {name!r}",
            field="--template",
            fix=f"{hint}choose one of: {', '.join(names)}",
        )
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    rules = tuple(
        (tuple(str(p) for p in rule["patterns"]), dict(rule.get("track", {})))
        for rule in data.get("assign", [])
    )
    return Template(name, str(data.get("description", "")), dict(data["session"]), rules)


def new_session(
    template: str, output: str | Path, audio_dir: str | Path | None = None
) -> NewSession:
    """Write a new session file from a bundled template, with the audio of a folder assigned.

    Parameters
    ----------
    template
        The template's name (``template_names()``).
    output
        The session file to create; it must not exist.
    audio_dir
        A folder of audio files to assign to tracks by name (none: a session without tracks).

    Returns
    -------
    NewSession
        The file written, the assignments and the files left out.

    Raises
    ------
    InputError
        An unknown template, an existing ``output``, a missing audio folder.
    """
    chosen = load_template(template)
    path = Path(output)
    _check_new(path)
    assigned: list[Assignment] = []
    unassigned: list[Unassigned] = []
    tracks: list[dict[str, Any]] = []
    if audio_dir is not None:
        tracks = _assign(chosen, Path(audio_dir), path, assigned, unassigned)
    data = _session_data(chosen, path.stem, tracks)
    text = _session_text(chosen, data)
    _check_valid(text, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        _check_new(path)  # someone else wrote it meanwhile: the same refusal
        raise
    return NewSession(path, chosen.name, assigned, unassigned)


def _check_new(path: Path) -> None:
    if path.exists() or path.is_symlink():
        raise InputError(
            f"{path} already exists; `stemprint new` never overwrites a file",
            field="-o/--output",
            fix="choose a new file name, or delete that file first",
        )


def _assign(
    template: Template,
    audio_dir: Path,
    session_path: Path,
    assigned: list[Assignment],
    unassigned: list[Unassigned],
) -> list[dict[str, Any]]:
    """Tracks for the audio files of ``audio_dir`` (fills ``assigned`` and ``unassigned``)."""
    if not audio_dir.is_dir():
        raise InputError(
            f"audio folder not found: {audio_dir}",
            field="--audio",
            fix="give the folder that holds the session's audio files",
        )
    matched: list[tuple[int, Path, dict[str, Any]]] = []
    for file in audio_files(audio_dir):
        rule = template.rule_for(file.stem)
        reason = "no name pattern matched" if rule is None else _unusable(file)
        if rule is None or reason:
            unassigned.append(Unassigned(file, reason))
        else:
            matched.append((rule[0], file, rule[1]))
    tracks: list[dict[str, Any]] = []
    names: set[str] = set()
    for _, file, fields in sorted(matched, key=lambda m: m[0]):  # stable: path order inside
        name = _unique(file.stem.strip() or "Track", names)
        clip = {"file": _relative(file, session_path)}
        tracks.append({"name": name, "clips": [clip], **fields})
        assigned.append(Assignment(file, name, str(fields.get("output", "master"))))
    return tracks


def audio_files(folder: Path) -> list[Path]:
    """The audio files under ``folder`` (subfolders too, hidden ones skipped), in path order
    (case-insensitive)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=str.casefold)
        for name in sorted(files, key=str.casefold):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                found.append(Path(root) / name)
    return found


def _unusable(file: Path) -> str:
    """Why a file cannot be a track's clip ('' when it can)."""
    import soundfile as sf

    try:
        channels = sf.info(str(file)).channels
    except (RuntimeError, OSError) as exc:
        return f"not readable audio ({exc})"
    if channels > 2:
        return f"{channels} channels (a track's clips are mono or stereo)"
    return ""


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name} {number}", number + 1
    taken.add(candidate)
    return candidate


def _relative(file: Path, session_path: Path) -> str:
    """``file`` relative to the session's folder (absolute when there is no relative path)."""
    try:
        return Path(os.path.relpath(file.resolve(), session_path.parent.resolve())).as_posix()
    except ValueError:  # another drive
        return file.resolve().as_posix()


def _session_data(template: Template, name: str, tracks: list[dict[str, Any]]) -> dict[str, Any]:
    data = {k: v for k, v in template.session.items() if k not in ("tracks",)}
    data["name"] = str(data.get("name", "{name}")).replace("{name}", name)
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("title"), str):
        data["metadata"] = {**metadata, "title": metadata["title"].replace("{name}", name)}
    ordered: dict[str, Any] = {}
    for key, value in data.items():
        if key == "buses" and tracks:
            ordered["tracks"] = tracks
        ordered[key] = value
    if tracks and "tracks" not in ordered:
        ordered["tracks"] = tracks
    return ordered


def _session_text(template: Template, data: dict[str, Any]) -> str:
    header = (
        f"# Started by `stemprint new --template {template.name}`:\n"
        f"# {template.description}.\n"
        "# Paths are relative to this file. See `stemprint schema` for every field.\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def _check_valid(text: str, path: Path) -> None:
    """The text parses as a valid session (a template that does not is a bug)."""
    from stemprint.model.load import parse_session_text

    parse_session_text(text, path)


__all__ = [
    "AUDIO_SUFFIXES",
    "Assignment",
    "NewSession",
    "Template",
    "Unassigned",
    "audio_files",
    "load_template",
    "new_session",
    "template_names",
]

"""Handoff sessions: a DAWproject and a REAPER project that open the package's stems aligned.

``delivery.handoff: [dawproject, rpp]`` writes ``handoff/<session>.dawproject`` and
``handoff/<session>.rpp`` beside the package's audio. The recipient opens one file: every
printed stem sits on its own track at position 0 with its full length, unity gain, centre pan,
named and coloured, and the mix comes along muted as ``Mix (reference)``, at the package's
sample rate, tempo and time signature from the session.

Invariants
----------
- The media are **referenced, never copied**: paths relative to the project file
  (``../stems/Drums.wav``), so the projects stay a few kilobytes whatever the package's size
  and keep working wherever the package folder is moved.
- The unmuted tracks are exactly the files of the package's exact sum relation (the stems that
  sum to the premaster, or to the mix): played together at unity they reproduce it. Every
  other printed stem (dry, pre-fader, via master) and multitrack file is present but muted; so
  are the references (``Premaster (reference)`` when the package has one, ``Mix (reference)``).
- Every track is a stereo channel (``audioChannels`` 2, ``NCHAN 2``); a mono file plays on
  both sides at unity (REAPER ``PANLAW 1``, pan mode 3), as the mono stem stands for a stereo
  stem with two identical channels. Files of more channels get channels of their own count.
- Deterministic bytes: no dates (REAPER's timestamp 0), GUIDs derived from the session name and
  the track's file (UUID version 5), ZIP members in a fixed order dated 1980-01-01.

Formats
-------
- DAWproject 1.0 (``Project.xsd`` of the format's reference implementation): a ZIP with
  ``project.xml`` and ``metadata.xml``. Each track is ``Track`` (``contentType="audio"``) with a
  ``Channel`` (children in the schema's order ``Mute``, ``Pan``, ``Volume``; Volume
  ``unit="linear"`` 1.0, Pan ``unit="normalized"`` 0.5) whose ``destination`` is the master
  channel (``role="master"``). The arrangement's ``Lanes`` use ``timeUnit="seconds"``; one
  ``Clip time="0" duration=L/fs`` per track holds ``Audio`` (``sampleRate``, ``channels``,
  ``duration`` = the whole file) and ``File path=… external="true"``.
- REAPER ``.rpp``: ``SAMPLERATE fs 1 0`` (the project-rate checkbox on), ``TEMPO bpm num den``,
  one ``<TRACK`` per file (``NAME``, ``PEAKCOL``, ``VOLPAN 1 0 -1 -1 1``, ``MUTESOLO m 0 0``,
  ``NCHAN``, ``MAINSEND 1 0``) with one ``<ITEM`` (``POSITION 0``, ``LENGTH L/fs`` written
  with every digit of the double, ``<SOURCE WAVE`` or ``FLAC`` with ``FILE``). REAPER colours
  are ``0x01000000 | B<<16 | G<<8 | R`` (the custom-colour flag and the Windows byte order).
  Tokens are quoted as REAPER does: ``"…"``, else ``'…'``, else backticks.
"""

from __future__ import annotations

import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

from stemprint._version import __version__
from stemprint.export.manifest import sha256_file
from stemprint.export.paths import safe_file_name

if TYPE_CHECKING:
    from stemprint.export.deliverables import DeliverableContext

HANDOFF_FOLDER = "handoff"
"""Folder of the handoff sessions inside the package."""

PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
"""Track colours in order (Okabe–Ito, distinguishable with colour-vision deficiencies)."""

REFERENCE_COLOR = "#808080"
"""Colour of the muted reference tracks."""

MIX_REFERENCE_NAME = "Mix (reference)"
PREMASTER_REFERENCE_NAME = "Premaster (reference)"

_REFERENCE_ROLES = ("mix", "premaster")
_OTHER_ROLES = ("track",)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_GUID_NAMESPACE = uuid.UUID("6f1c3a52-2d0e-5b8e-9a47-5d1f0c2b7e11")


@dataclass(frozen=True)
class HandoffTrack:
    """One track of a handoff session: a package file placed at 0.

    Attributes
    ----------
    name
        Track name (unique in the session).
    path
        The file, relative to the package folder (POSIX).
    channels, length_samples
        The file's channels and length.
    muted
        Muted in the DAW (references and stems outside the summing set).
    color
        ``#RRGGBB``.
    """

    name: str
    path: str
    channels: int
    length_samples: int
    muted: bool
    color: str


# -- which files, in which order -----------------------------------------------------------------


def _summing_parts(manifest: dict[str, Any]) -> list[str]:
    """The files of the first exact sum onto the premaster or the mix (else every ``stem``)."""
    roles = {f["path"]: f["role"] for f in manifest["files"]}
    for relation in manifest.get("sums", []):
        if relation.get("exact") and roles.get(relation["reference"]) in _REFERENCE_ROLES:
            return list(relation["parts"])
    return [f["path"] for f in manifest["files"] if f["role"] == "stem"]


def handoff_tracks(manifest: dict[str, Any]) -> list[HandoffTrack]:
    """The tracks of the handoff sessions: summing stems, other prints (muted), references."""
    by_path = {f["path"]: f for f in manifest["files"]}
    parts = [p for p in _summing_parts(manifest) if p in by_path]
    others = [
        f["path"]
        for f in manifest["files"]
        if f["path"] not in parts
        and (str(f["role"]).startswith("stem") or f["role"] in _OTHER_ROLES)
    ]
    references = [f for f in manifest["files"] if f["role"] in ("premaster", "mix")]
    references.sort(key=lambda f: f["role"] != "premaster")
    used: set[str] = set()
    tracks: list[HandoffTrack] = []

    def add(entry: dict[str, Any], name: str, muted: bool, color: str) -> None:
        unique = name if name.lower() not in used else PurePosixPath(entry["path"]).stem
        n = 2
        while unique.lower() in used:
            unique, n = f"{name} ({n})", n + 1
        used.add(unique.lower())
        tracks.append(
            HandoffTrack(unique, entry["path"], int(entry["channels"]),
                         int(entry["length_samples"]), muted, color)
        )  # fmt: skip

    for index, path in enumerate([*parts, *others]):
        add(by_path[path], by_path[path]["name"], path not in parts, PALETTE[index % len(PALETTE)])
    for entry in references:
        if not parts:  # nothing sums: the mix is all there is, so it plays
            add(entry, entry["name"], entry["role"] == "premaster", REFERENCE_COLOR)
            continue
        label = MIX_REFERENCE_NAME if entry["role"] == "mix" else PREMASTER_REFERENCE_NAME
        add(entry, label, True, REFERENCE_COLOR)
    return tracks


# -- common --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Project:
    name: str
    title: str
    sample_rate: int
    tempo_bpm: float
    numerator: int
    denominator: int
    tracks: list[HandoffTrack]

    def seconds(self, samples: int) -> float:
        return samples / self.sample_rate


def _number(value: float) -> str:
    """Every digit of a double (``repr``), so ``round(text × fs)`` gives the samples back."""
    return repr(float(value))


def _media_path(track: HandoffTrack) -> str:
    """The file relative to the handoff folder."""
    return (PurePosixPath("..") / track.path).as_posix()


def _project(ctx: DeliverableContext) -> _Project:
    session = ctx.loaded.session
    signature = session.time_signature
    return _Project(
        name=str(ctx.manifest.get("session") or session.name),
        title=session.metadata.title or session.name,
        sample_rate=int(ctx.manifest["sample_rate"]),
        tempo_bpm=float(session.tempo_bpm),
        numerator=int(signature.numerator),
        denominator=int(signature.denominator),
        tracks=handoff_tracks(ctx.manifest),
    )


# -- DAWproject ----------------------------------------------------------------------------------


class _Ids:
    """``id0``, ``id1`` … in document order (``xs:ID`` values)."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self) -> str:
        value = f"id{self.next}"
        self.next += 1
        return value


def _channel(parent: ET.Element, ids: _Ids, *, role: str, channels: int, muted: bool,
             destination: str | None) -> ET.Element:  # fmt: skip
    channel = ET.SubElement(parent, "Channel", audioChannels=str(max(channels, 2)))
    if destination is not None:
        channel.set("destination", destination)
    channel.set("role", role)
    channel.set("solo", "false")
    channel.set("id", ids())
    ET.SubElement(channel, "Mute", value="true" if muted else "false", id=ids(), name="Mute")
    ET.SubElement(
        channel, "Pan", max="1.0", min="0.0", unit="normalized", value="0.5", id=ids(), name="Pan"
    )
    ET.SubElement(
        channel, "Volume", max="2.0", min="0.0", unit="linear", value="1.0", id=ids(),
        name="Volume",
    )  # fmt: skip
    return channel


def dawproject_xml(project: _Project) -> bytes:
    """``project.xml`` of the handoff DAWproject."""
    ids = _Ids()
    root = ET.Element("Project", version="1.0")
    ET.SubElement(root, "Application", name="stemprint", version=__version__)
    transport = ET.SubElement(root, "Transport")
    ET.SubElement(
        transport, "Tempo", max="999.0", min="1.0", unit="bpm",
        value=_number(project.tempo_bpm), id=ids(), name="Tempo",
    )  # fmt: skip
    ET.SubElement(
        transport, "TimeSignature", denominator=str(project.denominator),
        numerator=str(project.numerator), id=ids(),
    )  # fmt: skip
    structure = ET.SubElement(root, "Structure")
    track_ids: list[str] = []
    pending: list[tuple[ET.Element, HandoffTrack]] = []
    for track in project.tracks:
        elem = ET.SubElement(
            structure, "Track", contentType="audio", loaded="true", id=ids(), name=track.name,
            color=track.color,
        )  # fmt: skip
        track_ids.append(elem.get("id", ""))
        pending.append((elem, track))
    master = ET.SubElement(
        structure, "Track", contentType="audio", loaded="true", id=ids(), name="Master"
    )
    master_channel = _channel(master, ids, role="master", channels=2, muted=False, destination=None)
    for elem, track in pending:
        _channel(elem, ids, role="regular", channels=track.channels, muted=track.muted,
                 destination=master_channel.get("id"))  # fmt: skip
    arrangement = ET.SubElement(root, "Arrangement", id=ids())
    lanes = ET.SubElement(arrangement, "Lanes", timeUnit="seconds", id=ids())
    for track_id, track in zip(track_ids, project.tracks, strict=True):
        seconds = _number(project.seconds(track.length_samples))
        lane = ET.SubElement(lanes, "Lanes", track=track_id, id=ids())
        clips = ET.SubElement(lane, "Clips", id=ids())
        clip = ET.SubElement(
            clips, "Clip", time="0.0", duration=seconds, contentTimeUnit="seconds",
            playStart="0.0", name=track.name,
        )  # fmt: skip
        audio = ET.SubElement(
            clip, "Audio", channels=str(track.channels), duration=seconds,
            sampleRate=str(project.sample_rate), id=ids(), name=track.name,
        )  # fmt: skip
        ET.SubElement(audio, "File", path=_media_path(track), external="true")
    ET.SubElement(root, "Scenes")
    return _xml_bytes(root)


def metadata_xml(project: _Project) -> bytes:
    """``metadata.xml``: the title and a comment saying how the session is built."""
    root = ET.Element("MetaData")
    ET.SubElement(root, "Title").text = project.title
    ET.SubElement(root, "Comment").text = (
        "Stems printed by stemprint, each at position 0 and unity gain; played together they "
        "equal the premaster (or the mix). The reference tracks are muted."
    )
    return _xml_bytes(root)


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + body + "\n").encode()


def write_dawproject(path: Path, project: _Project) -> None:
    """The ``.dawproject`` ZIP: ``project.xml`` then ``metadata.xml``, fixed dates."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in (
            ("project.xml", dawproject_xml(project)),
            ("metadata.xml", metadata_xml(project)),
        ):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compresslevel=9)


# -- REAPER --------------------------------------------------------------------------------------


def rpp_quote(text: str) -> str:
    """A REAPER token: ``"…"``, else ``'…'``, else backticks (a backtick inside becomes ')."""
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return "`" + text.replace("`", "'") + "`"


def rpp_color(color: str) -> int:
    """``#RRGGBB`` → REAPER's custom colour value ``0x01000000 | B<<16 | G<<8 | R``."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0x1000000 | blue << 16 | green << 8 | red


def _guid(project: _Project, *parts: str) -> str:
    value = uuid.uuid5(_GUID_NAMESPACE, "\x1f".join([project.name, *parts]))
    return "{" + str(value).upper() + "}"


def _source_kind(path: str) -> str:
    return {".flac": "FLAC", ".aif": "WAVE", ".aiff": "WAVE"}.get(
        PurePosixPath(path).suffix.lower(), "WAVE"
    )


def rpp_text(project: _Project) -> str:
    """The handoff ``.rpp`` (LF line ends, two-space indents as REAPER writes)."""
    lines = [
        '<REAPER_PROJECT 0.1 "7.0/stemprint" 0',
        f"  SAMPLERATE {project.sample_rate} 1 0",
        f"  TEMPO {project.tempo_bpm:g} {project.numerator} {project.denominator}",
        "  PANLAW 1",
        "  PANMODE 3",
        "  MASTER_NCH 2 2",
        "  MASTER_VOLUME 1 0 -1 -1 1",
        "  MASTERMUTESOLO 0",
    ]
    for track in project.tracks:
        guid = _guid(project, "track", track.path)
        lines += [
            f"  <TRACK {guid}",
            f"    NAME {rpp_quote(track.name)}",
            f"    PEAKCOL {rpp_color(track.color)}",
            "    VOLPAN 1 0 -1 -1 1",
            f"    MUTESOLO {int(track.muted)} 0 0",
            "    IPHASE 0",
            "    ISBUS 0 0",
            f"    NCHAN {max(track.channels, 2)}",
            f"    TRACKID {guid}",
            "    MAINSEND 1 0",
            "    <ITEM",
            "      POSITION 0",
            f"      LENGTH {_number(project.seconds(track.length_samples))}",
            "      LOOP 0",
            f"      NAME {rpp_quote(track.name)}",
            "      VOLPAN 1 0 1 -1",
            "      SOFFS 0",
            f"      IGUID {_guid(project, 'item', track.path)}",
            f"      GUID {_guid(project, 'take', track.path)}",
            f"      <SOURCE {_source_kind(track.path)}",
            f"        FILE {rpp_quote(_media_path(track))}",
            "      >",
            "    >",
            "  >",
        ]
    lines.append(">")
    return "\n".join(lines) + "\n"


# -- the deliverable -----------------------------------------------------------------------------

_FORMATS = {"dawproject": ("DAWproject", "dawproject"), "rpp": ("REAPER", "rpp")}


def write_handoff(ctx: DeliverableContext) -> list[dict[str, Any]]:
    """Write the handoff sessions the delivery asks for; their manifest entries, in order.

    Parameters
    ----------
    ctx
        The package being written, its manifest and the resolved delivery.

    Returns
    -------
    list of dict
        One entry per session file (role ``handoff``).
    """
    project = _project(ctx)
    folder = ctx.package / HANDOFF_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for kind in dict.fromkeys(ctx.delivery.handoff):
        label, extension = _FORMATS[kind]
        relative = f"{HANDOFF_FOLDER}/{safe_file_name(project.name)}.{extension}"
        target = ctx.package / relative
        if kind == "dawproject":
            write_dawproject(target, project)
        else:
            target.write_text(rpp_text(project), encoding="utf-8", newline="\n")
        entries.append(
            {
                "path": relative,
                "role": "handoff",
                "name": label,
                "format": kind,
                "media": "external",
                "sample_rate": project.sample_rate,
                "tracks": [
                    {"name": t.name, "file": t.path, "muted": t.muted, "color": t.color}
                    for t in project.tracks
                ],
                "sha256": sha256_file(target),
            }
        )
    return entries

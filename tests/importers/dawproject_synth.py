"""Synthetic DAWproject files for the importer tests: project.xml built in code, WAVs synthesized.

The builder writes elements in the order ``Project.xsd`` prescribes, so every synthetic
``project.xml`` validates against the schema (checked in the tests).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import soundfile as sf

RATE = 48000


def tone(seconds: float, channels: int = 1, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Seeded noise ``(channels, n)`` at −12 dBFS-ish peak (float64)."""
    rng = np.random.default_rng(seed)
    return 0.25 * rng.uniform(-1.0, 1.0, (channels, round(seconds * rate)))


def wav_bytes(signal: np.ndarray, rate: int = RATE) -> bytes:
    """A float64 WAV of ``(channels, n)`` ``signal`` (exact for null tests)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(signal).T, rate, format="WAV", subtype="DOUBLE")
    return buffer.getvalue()


def _fmt(value: float) -> str:
    return repr(float(value))


@dataclass
class Strip:
    """Ids of one channel (and its track) in a synthetic project."""

    tid: str
    cid: str
    volume: str
    pan: str
    mute: str
    element: ET.Element
    channel: ET.Element
    lane: ET.Element | None = None
    sends: list[str] = field(default_factory=list)  # send Volume ids


class Project:
    """A DAWproject under construction.

    Parameters
    ----------
    tempo
        Transport tempo in bpm.
    title
        metadata.xml Title.
    """

    def __init__(self, tempo: float = 120.0, title: str = "Synthetic") -> None:
        self._n = 0
        self.title = title
        self.root = ET.Element("Project", version="1.0")
        ET.SubElement(self.root, "Application", name="stemprint tests", version="1")
        transport = ET.SubElement(self.root, "Transport")
        ET.SubElement(transport, "Tempo", unit="bpm", value=_fmt(tempo), id=self.id(), name="T")
        ET.SubElement(transport, "TimeSignature", numerator="4", denominator="4", id=self.id())
        self.structure = ET.SubElement(self.root, "Structure")
        self.arrangement = ET.SubElement(self.root, "Arrangement", id=self.id())
        self.lanes = ET.SubElement(self.arrangement, "Lanes", timeUnit="beats", id=self.id())
        self.media: dict[str, bytes] = {}
        self.master = self.track("Master", role="master", content="audio notes")

    def id(self) -> str:
        """A fresh id."""
        self._n += 1
        return f"id{self._n}"

    # structure -------------------------------------------------------------------------------

    def track(
        self,
        name: str,
        *,
        role: str = "regular",
        destination: Strip | None = None,
        volume: float = 1.0,
        pan: float = 0.5,
        mute: bool = False,
        content: str = "audio",
        parent: Strip | ET.Element | None = None,
        loaded: bool = True,
        channel: bool = True,
        audio_channels: int = 2,
    ) -> Strip:
        """Add a Track (with a Channel unless ``channel`` is false); returns its ids."""
        host = parent.element if isinstance(parent, Strip) else parent
        host = self.structure if host is None else host
        track = ET.SubElement(
            host,
            "Track",
            contentType=content,
            loaded="true" if loaded else "false",
            id=self.id(),
            name=name,
        )
        strip = Strip(track.get("id", ""), "", "", "", "", track, track)
        if not channel:
            return strip
        ch = ET.SubElement(
            track,
            "Channel",
            audioChannels=str(audio_channels),
            role=role,
            solo="false",
            id=self.id(),
        )
        if destination is not None:
            ch.set("destination", destination.cid)
        elif getattr(self, "master", None) is not None:
            ch.set("destination", self.master.cid)
        strip.cid, strip.channel = ch.get("id", ""), ch
        ET.SubElement(ch, "Devices")
        strip.mute = self._param(ch, "Mute", value="true" if mute else "false")
        strip.pan = self._param(ch, "Pan", unit="normalized", value=_fmt(pan), min="0", max="1")
        ET.SubElement(ch, "Sends")
        strip.volume = self._param(
            ch, "Volume", unit="linear", value=_fmt(volume), min="0", max="2"
        )
        # the project master sits last in Bitwig files; keep it last here too
        if getattr(self, "master", None) is not None and host is self.structure:
            host.remove(self.master.element)
            host.append(self.master.element)
        return strip

    def _param(self, parent: ET.Element, tag: str, **attrs: str) -> str:
        ident = self.id()
        ET.SubElement(parent, tag, id=ident, **attrs)
        return ident

    def send(
        self,
        source: Strip,
        target: Strip,
        volume: float,
        *,
        kind: str = "post",
        pan: float | None = None,
        enable: bool = True,
    ) -> str:
        """An aux send; returns the id of its Volume."""
        sends = source.channel.find("Sends")
        assert sends is not None
        send = ET.SubElement(sends, "Send", destination=target.cid, type=kind, id=self.id())
        ET.SubElement(send, "Enable", value="true" if enable else "false", id=self.id())
        if pan is not None:
            ET.SubElement(send, "Pan", unit="normalized", value=_fmt(pan), id=self.id())
        ident = self.id()
        ET.SubElement(send, "Volume", unit="linear", value=_fmt(volume), id=ident)
        source.sends.append(ident)
        return ident

    def device(
        self,
        strip: Strip,
        tag: str,
        name: str,
        role: str = "audioFX",
        enabled: bool = True,
        **attrs: str,
    ) -> ET.Element:
        """Add a device to a channel's chain; returns the element (add parameters to it)."""
        devices = strip.channel.find("Devices")
        assert devices is not None
        dev = ET.SubElement(devices, tag, deviceName=name, deviceRole=role, id=self.id(), **attrs)
        ET.SubElement(dev, "Parameters")
        ET.SubElement(dev, "Enabled", value="true" if enabled else "false", id=self.id())
        return dev

    # arrangement -----------------------------------------------------------------------------

    def lane(self, strip: Strip) -> ET.Element:
        """The track's arrangement lane (Clips)."""
        if strip.lane is None:
            lanes = ET.SubElement(self.lanes, "Lanes", track=strip.tid, id=self.id())
            strip.lane = ET.SubElement(lanes, "Clips", id=self.id())
        return strip.lane

    def add_media(self, name: str, signal: np.ndarray, rate: int = RATE) -> str:
        """Embed a WAV under ``audio/<name>``; returns its path in the archive."""
        path = f"audio/{name}"
        self.media[path] = wav_bytes(signal, rate)
        return path

    def audio(
        self,
        parent: ET.Element,
        path: str,
        signal: np.ndarray,
        rate: int = RATE,
        external: bool = False,
    ) -> ET.Element:
        """An Audio element with its File."""
        audio = ET.SubElement(
            parent,
            "Audio",
            channels=str(signal.shape[0]),
            sampleRate=str(rate),
            duration=_fmt(signal.shape[1] / rate),
            id=self.id(),
        )
        file = ET.SubElement(audio, "File", path=path)
        if external:
            file.set("external", "true")
        return audio

    def raw_clip(
        self,
        strip: Strip,
        path: str,
        signal: np.ndarray,
        *,
        time: float,
        duration: float,
        rate: int = RATE,
        external: bool = False,
        parent: ET.Element | None = None,
        **attrs: str,
    ) -> ET.Element:
        """A clip whose content is the Audio itself (content in seconds)."""
        host = self.lane(strip) if parent is None else parent
        clip = ET.SubElement(
            host,
            "Clip",
            time=_fmt(time),
            duration=_fmt(duration),
            contentTimeUnit="seconds",
            **attrs,
        )
        self.audio(clip, path, signal, rate, external)
        return clip

    def bitwig_clip(
        self,
        strip: Strip,
        path: str,
        signal: np.ndarray,
        *,
        time_beats: float,
        duration_beats: float,
        tempo: float,
        rate: int = RATE,
        stretch: float = 1.0,
        **attrs: str,
    ) -> ET.Element:
        """Bitwig's double wrap: Clip → Clips → Clip → Warps (beats → seconds) → Audio."""
        outer = ET.SubElement(
            self.lane(strip),
            "Clip",
            time=_fmt(time_beats),
            duration=_fmt(duration_beats),
            playStart="0.0",
            **attrs,
        )
        clips = ET.SubElement(outer, "Clips", id=self.id())
        inner = ET.SubElement(
            clips,
            "Clip",
            time="0.0",
            duration=_fmt(duration_beats),
            contentTimeUnit="beats",
            playStart="0.0",
        )
        warps = ET.SubElement(
            inner, "Warps", contentTimeUnit="seconds", timeUnit="beats", id=self.id()
        )
        self.audio(warps, path, signal, rate)
        seconds = signal.shape[1] / rate
        ET.SubElement(warps, "Warp", time="0.0", contentTime="0.0")
        ET.SubElement(
            warps, "Warp", time=_fmt(seconds * tempo / 60.0 / stretch), contentTime=_fmt(seconds)
        )
        return outer

    def points(
        self,
        strip: Strip,
        target: str,
        points: list[tuple[float, float | bool, str]],
        unit: str | None = None,
        time_unit: str = "seconds",
    ) -> None:
        """Automation of parameter ``target`` on the track's lanes: (time, value, interp)."""
        self.lane(strip)
        lanes = self.lanes.find(f"Lanes[@track='{strip.tid}']")
        assert lanes is not None
        elem = ET.SubElement(lanes, "Points", id=self.id(), timeUnit=time_unit)
        if unit:
            elem.set("unit", unit)
        ET.SubElement(elem, "Target", parameter=target)
        for time, value, interpolation in points:
            if isinstance(value, bool):
                ET.SubElement(elem, "BoolPoint", time=_fmt(time), value=str(value).lower())
            else:
                ET.SubElement(
                    elem,
                    "RealPoint",
                    time=_fmt(time),
                    value=_fmt(value),
                    interpolation=interpolation,
                )

    def tempo_automation(self, points: list[tuple[float, float, str]]) -> None:
        """Arrangement TempoAutomation: (beat, bpm, interpolation)."""
        tempo = self.root.find("Transport/Tempo")
        assert tempo is not None
        elem = ET.SubElement(self.arrangement, "TempoAutomation", id=self.id(), unit="bpm")
        ET.SubElement(elem, "Target", parameter=tempo.get("id", ""))
        for beat, bpm, interpolation in points:
            ET.SubElement(
                elem, "RealPoint", time=_fmt(beat), value=_fmt(bpm), interpolation=interpolation
            )

    # output ----------------------------------------------------------------------------------

    def xml(self) -> bytes:
        """project.xml bytes."""
        return ET.tostring(self.root, encoding="utf-8", xml_declaration=True)

    def metadata(self) -> bytes:
        """metadata.xml bytes."""
        meta = ET.Element("MetaData")
        ET.SubElement(meta, "Title").text = self.title
        return ET.tostring(meta, encoding="utf-8", xml_declaration=True)

    def write(self, path: Path) -> Path:
        """The .dawproject ZIP with project.xml, metadata.xml and the embedded media."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("project.xml", self.xml())
            archive.writestr("metadata.xml", self.metadata())
            for name, data in self.media.items():
                archive.writestr(name, data)
        return path


def wrap_xml(xml_path: Path, target: Path) -> Path:
    """A bare project.xml (a fixture) wrapped into a .dawproject ZIP."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(xml_path, "project.xml")
    return target

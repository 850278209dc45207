"""The player's audio: embedded (FLAC, else Opus in Ogg), linked to the package, or none.

Invariants
----------
* Lossless first: integer PCM of up to 24 bits is embedded as FLAC at its own bit depth,
  from the int32 samples the analysis pass reads, so the decoded samples equal the file's
  (float and 32-bit files are rounded to 24 bits, and the page says so); a FLAC file of the
  package is embedded as it is.
* Caps: the embedded audio, as base64 text, stays under ``cap_bytes``
  (:data:`EMBED_CAP_BYTES` by default) and the decoded float32 audio the browser must hold
  under :data:`DECODED_CAP_BYTES`. Over the first cap the player falls back to Opus in Ogg
  (libopus, :data:`OPUS_KBPS` kb/s per stereo file; 48 kHz mono and stereo packages only;
  Chromium decodes it sample-aligned), over either cap to ``link``, with the reason shown on
  the page.
* ``link`` names the package's own files by URL relative to the report; a ``file://`` page
  cannot read them into Web Audio, so the linked player uses ``<audio>`` elements and has no
  null check.
* The same inputs give the same bytes (libFLAC and libopus are deterministic; nothing here
  reads the clock).
"""

from __future__ import annotations

import base64
import io
import os
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from stemprint.analysis.discovery import is_stem_role

from .inputs import ReportFile, ReportInputs

EMBED_CAP_BYTES = 150 * 1024**2
"""Largest base64 text of embedded audio in one page (bytes)."""
DECODED_CAP_BYTES = 3 * 1024**3 // 2
"""Largest float32 audio the page asks the browser to decode (bytes; 1.5 GiB, about 68 min
of 48 kHz stereo in all)."""
OPUS_KBPS = 128
"""Opus bit rate of a stereo file (64 kb/s per channel)."""
OPUS_COMPLEXITY = 5
"""libopus complexity (0 … 10): about 300× real time here, at 128 kb/s still a fair copy."""
FLAC_RATIO_GUESS = 0.7
"""FLAC size over the raw PCM, a cautious guess: above the cap by it, Opus is chosen before
the pass (no FLAC encoded in vain); FLAC that passes the cap anyway falls back after it."""
AUDIO_MODES = ("embed", "lossless", "link", "none")
"""What ``--audio`` accepts: ``lossless`` is ``embed`` without the Opus fallback (linked files
instead): what a render's own report uses, since Opus encoding costs about as much CPU as
the render of a long session."""


@dataclass(frozen=True)
class PlayerTrack:
    """One file the player loads.

    Attributes
    ----------
    file
        The report file.
    src
        Id of the element holding its base64 audio (embedded), or its relative URL (link).
    """

    file: ReportFile
    src: str


@dataclass
class PlayerAudio:
    """What the player plays and how.

    Attributes
    ----------
    mode
        ``embed``, ``link`` or ``none``.
    codec
        ``flac`` or ``opus`` when embedded.
    stems
        The stems, in the relation's order.
    mix
        The A/B reference (the mix), if any.
    reference
        What the null check compares the stems with (the relation's reference), if any.
    blobs
        Element id → encoded audio (embedded).
    notes
        Sentences for the page (fallbacks, rounding).
    """

    mode: str
    codec: str | None = None
    stems: list[PlayerTrack] = field(default_factory=list)
    mix: PlayerTrack | None = None
    reference: PlayerTrack | None = None
    blobs: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def tracks(self) -> list[PlayerTrack]:
        """Every distinct track (stems, mix, reference)."""
        seen: dict[str, PlayerTrack] = {}
        for t in [*self.stems, self.mix, self.reference]:
            if t is not None:
                seen.setdefault(t.file.label, t)
        return list(seen.values())


def player_files(
    inputs: ReportInputs,
) -> tuple[list[ReportFile], ReportFile | None, ReportFile | None]:
    """The stems (the verdict relation's parts), the mix, and the null check's reference."""
    present = [f for f in inputs.files if f.path.is_file()]
    relation = inputs.verdict_relation
    if relation is not None:
        stems = [f for label in relation.parts if (f := inputs.file(label)) in present]
        reference = inputs.file(relation.reference)
    else:
        stems = [f for f in present if is_stem_role(f.role)]
        reference = None
    mix = next((f for f in present if f.role == "mix"), reference)
    return [f for f in stems if f is not None], mix, reference


class _Budget:
    """Base64 bytes of the encoders so far, against the cap; the one thread that encodes.

    FLAC encoding runs in a background thread (libsndfile releases the GIL), in the order the
    blocks were given, at most :data:`_PENDING` blocks behind the analysis pass: the bytes do
    not depend on the timing.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.fixed = 0
        self.sinks: list[FlacSink] = []
        self.spent = False
        self._serial = _Serial("stemprint-report-flac")

    @property
    def over(self) -> bool:
        """Whether the encoded audio passed the cap (it stays passed once it has: the sizes
        only grow, so the answer is the final size's, whatever the order of the encoders)."""
        if not self.spent:
            used = self.fixed + sum(s.size for s in self.sinks)
            self.spent = _b64_size(used) > self.cap
        return self.spent

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` after everything submitted before it."""
        self._serial.submit(work)

    def drain(self) -> None:
        """Wait for every submitted block (errors are raised here)."""
        self._serial.drain()


_PENDING = 16


class _Serial:
    """One background thread running work in submission order, at most :data:`_PENDING`
    items behind the caller (memory stays bounded; the result does not depend on timing)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._worker: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()
        self._lock = threading.Lock()  # the analysis feeds several files from its threads

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` after everything submitted before it."""
        with self._lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix=self.name)
            self._pending.append(self._worker.submit(work))
            wait = self._pending.popleft() if len(self._pending) > _PENDING else None
        if wait is not None:
            wait.result()

    def drain(self) -> None:
        """Wait for every submitted item (errors are raised here) and stop the thread."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            if self._worker is not None:
                self._worker.shutdown(cancel_futures=True)
                self._worker = None


def _b64_size(n: int) -> int:
    return 4 * ((n + 2) // 3)


class FlacSink:
    """Encodes one file's blocks to FLAC in memory; gives up once the budget is spent."""

    def __init__(self, f: ReportFile, budget: _Budget) -> None:
        bits = f.facts.get("bit_depth")
        self.subtype = "PCM_16" if bits in (8, 16) and not f.facts.get("is_float") else "PCM_24"
        self.rounded = self.subtype == "PCM_24" and (
            bits not in (8, 16, 24) or f.facts.get("is_float")
        )
        self.buf: io.BytesIO | None = io.BytesIO()
        self.out: sf.SoundFile | None = sf.SoundFile(
            self.buf, "w", f.sample_rate, f.channels, format="FLAC", subtype=self.subtype
        )
        self.budget = budget
        self.data = b""

    @property
    def size(self) -> int:
        """Bytes encoded so far."""
        return self.buf.tell() if self.buf is not None else len(self.data)

    def feed(self, frames: np.ndarray, is_int: bool) -> None:
        """Queue the next block (int32 PCM or float64) for the encoding thread."""
        self.budget.submit(partial(self._encode, frames, is_int))

    def _encode(self, frames: np.ndarray, is_int: bool) -> None:
        if self.out is None:
            return
        if not is_int:
            scaled = np.clip(np.round(frames * 2.0**23), -(2**23), 2**23 - 1)
            frames = scaled.astype(np.int32) << 8
        self.out.write(frames)
        if self.budget.over:
            self.abandon()

    def abandon(self) -> None:
        """Stop encoding and free the buffer."""
        if self.out is not None:
            self.out.close()
        self.out, self.buf, self.data = None, None, b""

    def finish(self) -> None:
        """Close the encoder; :attr:`data` holds the FLAC file."""
        self.budget.drain()
        if self.out is None or self.buf is None:
            return
        self.out.close()
        self.data = self.buf.getvalue()
        self.out, self.buf = None, None


@dataclass
class AudioPlan:
    """The embedding being prepared: the sinks the analysis pass feeds, and what is decided.

    Attributes
    ----------
    audio
        The player, completed by :func:`finish_audio`.
    sinks
        Label → FLAC encoder fed by the analysis pass.
    budget
        The shared size budget of the encoders.
    opus
        The Opus encoders running beside the analysis pass (when FLAC cannot fit).
    lossy
        Whether Opus may stand in for FLAC that passes the cap (else: linked files).
    """

    audio: PlayerAudio
    sinks: dict[str, FlacSink] = field(default_factory=dict)
    budget: _Budget | None = None
    opus: OpusJobs | None = None
    lossy: bool = True

    def cancel(self) -> None:
        """Stop the encoders (the report failed)."""
        if self.opus is not None:
            self.opus.cancel()


def plan_audio(inputs: ReportInputs, mode: str, out: Path, cap_bytes: int) -> AudioPlan:
    """Decide what the player loads; for ``embed``, the encoders the analysis pass feeds.

    Parameters
    ----------
    inputs
        The report's inputs.
    mode
        ``embed``, ``lossless``, ``link`` or ``none``.
    out
        The report file (link URLs are relative to its folder).
    cap_bytes
        Largest base64 text of embedded audio.
    """
    if mode not in AUDIO_MODES:
        raise ValueError(f"audio must be one of {', '.join(AUDIO_MODES)}, not {mode!r}")
    stems, mix, reference = player_files(inputs)
    if mode == "none" or not (stems or mix):
        return AudioPlan(PlayerAudio("none"))
    files = _distinct([*stems, mix, reference])
    decoded = sum(f.length * f.channels * 4 for f in files)
    if mode == "link":
        return AudioPlan(_linked(stems, mix, reference, out))
    lossy = mode == "embed"
    if decoded > DECODED_CAP_BYTES:
        audio = _linked(stems, mix, reference, out)
        audio.notes.append(
            f"The audio is linked, not embedded: decoded it would take "
            f"{decoded / 1024**3:.1f} GiB of browser memory (more than "
            f"{DECODED_CAP_BYTES / 1024**3:.0f} GiB)."
        )
        return AudioPlan(audio)
    raw = sum(f.length * f.channels * _bytes_per_sample(f) for f in files)
    over = _b64_size(int(raw * FLAC_RATIO_GUESS)) > cap_bytes
    if over and not lossy:
        audio = _linked(stems, mix, reference, out)
        audio.notes.append(f"The audio is linked, not embedded: {_lossless_why(cap_bytes)}.")
        return AudioPlan(audio)
    if over and _opus_fits(files, cap_bytes):
        plan = AudioPlan(PlayerAudio("embed", "opus"), opus=OpusJobs(files))
    else:
        plan = _flac_plan(files, cap_bytes)
    plan.lossy = lossy
    plan.audio.stems = [PlayerTrack(f, _element_id(f)) for f in stems]
    plan.audio.mix = PlayerTrack(mix, _element_id(mix)) if mix else None
    plan.audio.reference = PlayerTrack(reference, _element_id(reference)) if reference else None
    return plan


def _flac_plan(files: list[ReportFile], cap_bytes: int) -> AudioPlan:
    budget = _Budget(cap_bytes)
    plan = AudioPlan(PlayerAudio("embed", "flac"), budget=budget)
    for f in files:
        if str(f.facts.get("format")) == "FLAC":
            budget.fixed += f.path.stat().st_size
        else:
            sink = FlacSink(f, budget)
            budget.sinks.append(sink)
            plan.sinks[f.label] = sink
    return plan


def _bytes_per_sample(f: ReportFile) -> int:
    bits = f.facts.get("bit_depth")
    return min(int(bits), 24) // 8 if isinstance(bits, int) and bits >= 8 else 3


def _opus_fits(files: list[ReportFile], cap_bytes: int) -> bool:
    """48 kHz mono or stereo files whose Opus copies (by the bit rate) fit the cap."""
    if not files or any(f.sample_rate != 48000 or f.channels > 2 for f in files):
        return False
    size = sum(f.length / f.sample_rate * OPUS_KBPS * 62.5 * 2 for f in files)
    return _b64_size(int(size)) <= cap_bytes


def _distinct(files: list[ReportFile | None]) -> list[ReportFile]:
    seen: dict[str, ReportFile] = {}
    for f in files:
        if f is not None:
            seen.setdefault(f.label, f)
    return list(seen.values())


def _element_id(f: ReportFile) -> str:
    return f"audio-{f.index}"


def _linked(
    stems: list[ReportFile], mix: ReportFile | None, reference: ReportFile | None, out: Path
) -> PlayerAudio:
    def track(f: ReportFile) -> PlayerTrack:
        rel = Path(os.path.relpath(f.path.resolve(), out.resolve().parent)).as_posix()
        return PlayerTrack(f, urllib.parse.quote(rel))

    return PlayerAudio(
        "link",
        None,
        [track(f) for f in stems],
        track(mix) if mix else None,
        track(reference) if reference else None,
    )


def finish_audio(plan: AudioPlan, out: Path, cap_bytes: int) -> PlayerAudio:
    """After the analysis pass: the FLAC files, or the fallback when they passed the cap."""
    audio = plan.audio
    if audio.mode != "embed":
        return audio
    if audio.codec == "opus" and plan.opus is not None:
        encoded = plan.opus.result()
        blobs = {t.src: encoded[t.file.label] for t in audio.tracks}
        return _with_opus(audio, blobs, out, cap_bytes)
    flac = plan.budget.sinks if plan.budget is not None else []
    if plan.budget is not None and not plan.budget.over:
        for track in audio.tracks:
            sink = plan.sinks.get(track.file.label)
            audio.blobs[track.src] = sink.data if sink else track.file.path.read_bytes()
        if any(s.rounded for s in flac):
            audio.notes.append(
                "Float and 32-bit files are rounded to 24 bits for the player (FLAC holds at "
                "most 24)."
            )
        return audio
    for sink in flac:
        sink.abandon()
    if not plan.lossy:
        return _link_instead(audio, out, _lossless_why(cap_bytes))
    return _fallback(audio, out, cap_bytes)


def _fallback(audio: PlayerAudio, out: Path, cap_bytes: int) -> PlayerAudio:
    """Opus in Ogg when it fits (48 kHz mono or stereo), else linked files."""
    files = [t.file for t in audio.tracks]
    if not _opus_fits(files, cap_bytes):
        return _link_instead(audio, out, _why(cap_bytes))
    jobs = OpusJobs([t.file for t in audio.tracks])
    blobs = jobs.result()
    return _with_opus(audio, {t.src: blobs[t.file.label] for t in audio.tracks}, out, cap_bytes)


def _lossless_why(cap_bytes: int) -> str:
    return f"{_why(cap_bytes)} (`stemprint report PACKAGE` embeds Opus copies instead)"


def _why(cap_bytes: int) -> str:
    return f"lossless FLAC would pass the {cap_bytes / 1024**2:.3g} MB cap"


def _with_opus(
    audio: PlayerAudio, blobs: dict[str, bytes], out: Path, cap_bytes: int
) -> PlayerAudio:
    if _b64_size(sum(len(b) for b in blobs.values())) > cap_bytes:
        return _link_instead(audio, out, _why(cap_bytes) + ", and so would Opus")
    audio.codec, audio.blobs = "opus", blobs
    audio.notes.append(
        f"Embedded as Opus in Ogg ({OPUS_KBPS} kb/s per stereo file, lossy: {_why(cap_bytes)}): "
        "the null check shows the codec's residual, and the lag proves the alignment."
    )
    return audio


def _link_instead(audio: PlayerAudio, out: Path, why: str) -> PlayerAudio:
    linked = _linked(
        [t.file for t in audio.stems],
        audio.mix.file if audio.mix else None,
        audio.reference.file if audio.reference else None,
        out,
    )
    linked.notes.append(f"The audio is linked, not embedded: {why}.")
    return linked


class OpusSink:
    """Encodes one file's blocks to Opus in Ogg in memory (libopus through PyAV, bit-exact
    muxing: the same bytes each time; the Ogg pre-skip and the last granule position declare
    the priming and the length)."""

    def __init__(self, f: ReportFile) -> None:
        import av

        self.layout = "mono" if f.channels == 1 else "stereo"
        self.rate = f.sample_rate
        self.buf = io.BytesIO()
        self.container: Any = av.open(
            self.buf, "w", format="ogg", container_options={"fflags": "+bitexact"}
        )
        self.stream: Any = self.container.add_stream("libopus", rate=f.sample_rate,
                                                     layout=self.layout)  # fmt: skip
        self.stream.bit_rate = OPUS_KBPS * 500 * f.channels
        context = self.stream.codec_context
        context.format = "flt"
        context.flags |= av.codec.context.Flags.bitexact
        context.options = {"compression_level": str(OPUS_COMPLEXITY)}
        self.position = 0
        self.data = b""
        self._serial = _Serial(f"stemprint-report-opus-{f.index}")

    def feed(self, frames: np.ndarray, is_int: bool) -> None:
        """Queue the next block (int32 PCM or float64, ``(frames, channels)``) for this
        file's encoding thread (libopus runs without the GIL, so the files are encoded in
        parallel with each other and with the analysis; each file's blocks stay in order)."""
        self._serial.submit(partial(self._encode, frames, is_int))

    def _encode(self, frames: np.ndarray, is_int: bool) -> None:
        import av

        scaled = frames * 2.0**-31 if is_int else frames
        samples = np.ascontiguousarray(scaled, dtype=np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, "flt", self.layout)
        frame.sample_rate = self.rate
        frame.pts = self.position
        frame.time_base = Fraction(1, self.rate)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.position += frames.shape[0]

    def finish(self) -> None:
        """Flush the encoder; :attr:`data` holds the Ogg file."""
        self._serial.drain()
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        self.data = self.buf.getvalue()


def opus_bytes(f: ReportFile) -> bytes:
    """``f`` read again and encoded by :class:`OpusSink`."""
    sink = OpusSink(f)
    with sf.SoundFile(str(f.path)) as src:
        for block in src.blocks(65536, dtype="float64", always_2d=True):
            sink.feed(block, False)
    sink.finish()
    return sink.data


class OpusJobs:
    """Opus copies of ``files`` encoded in helper processes (one per CPU, at most one per
    file; ``stemprint.report._opus_worker``) while this process does other work: libopus at
    ~300x real time is the report's largest cost, and a process per core is not held back by
    the GIL. Files are dealt by length, longest first, to the least loaded helper."""

    def __init__(self, files: list[ReportFile]) -> None:
        from stemprint import subprocess_worker

        count = max(1, min(os.cpu_count() or 1, len(files)))
        shares: list[list[ReportFile]] = [[] for _ in range(count)]
        loads = [0] * count
        for f in sorted(files, key=lambda f: (-f.length * f.channels, f.label)):
            least = loads.index(min(loads))
            shares[least].append(f)
            loads[least] += f.length * f.channels
        self._procs = [
            (share, subprocess_worker.start("stemprint.report._opus_worker", share))
            for share in shares
            if share
        ]

    def result(self) -> dict[str, bytes]:
        """Label → Ogg file, once every helper is done."""
        from stemprint import subprocess_worker

        out: dict[str, bytes] = {}
        try:
            for share, proc in self._procs:
                blobs = subprocess_worker.collect(proc, "Opus", "use --audio link or none")
                out.update(zip((f.label for f in share), blobs, strict=True))
        finally:
            self.cancel()
        return out

    def cancel(self) -> None:
        """Stop every helper still running."""
        from stemprint import subprocess_worker

        for _, proc in self._procs:
            subprocess_worker.kill(proc)


def base64_text(data: bytes) -> str:
    """Base64 on one line, for an element's text."""
    return base64.b64encode(data).decode("ascii")

"""Discrete channel files: every multichannel file of a package also as one mono file per channel.

Film and TV deliveries often ask for a 5.1 stem as six mono files named ``<name>.L.wav``,
``<name>.R.wav``, ``<name>.C.wav``, ``<name>.LFE.wav``, ``<name>.Ls.wav``, ``<name>.Rs.wav``
(``delivery.channel_files: true``).

Invariants
----------
- Each channel file holds exactly the samples of its channel in the interleaved file (the
  decoded values are written back at the same bit depth without dither: quantizing an already
  quantized value is the identity), the same length, rate, format and Broadcast WAV timecode.
- Files are written under ``channels/`` (the interleaved file's folder below it), listed in the
  manifest's ``channel_files`` with the file they come from, the channel name and SHA-256; they
  are not parts of any sum (the interleaved files are what the verification checks).
- Streaming: read and written block by block, memory does not grow with the file.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from stemprint.dsp.layouts import LAYOUT_CHANNELS, layout_of
from stemprint.export.audio import AudioWriter
from stemprint.export.bwf import BroadcastInfo

BLOCK_FRAMES = 65536


def channel_file_path(path: str, channel: str) -> str:
    """``stems/DX.wav`` → ``channels/stems/DX.C.wav``."""
    pure = PurePosixPath(path)
    return str(PurePosixPath("channels") / pure.parent / f"{pure.stem}.{channel}{pure.suffix}")


def write_channel_files(
    package: Path,
    files: list[dict[str, Any]],
    bit_depth: str,
    container: str,
    bwf: BroadcastInfo | None,
) -> list[dict[str, Any]]:
    """Split every file of more than two channels; return the manifest's ``channel_files``."""
    import soundfile as sf

    from stemprint.export.manifest import sha256_file

    written: list[dict[str, Any]] = []
    for entry in files:
        if entry["channels"] <= 2:
            continue
        names = LAYOUT_CHANNELS[layout_of(entry["channels"])]
        source = package / entry["path"]
        info = sf.info(str(source))
        targets = {}
        for index, name in enumerate(names):
            relative = channel_file_path(entry["path"], name)
            (package / relative).parent.mkdir(parents=True, exist_ok=True)
            file_bwf = bwf.for_file(f"{entry['name']} {name}") if bwf is not None else None
            targets[index] = (relative, AudioWriter(
                package / relative, info.samplerate, 1, bit_depth, "none",  # type: ignore[arg-type]
                seed_name=relative, container=container,
                bwf=file_bwf,
            ))  # fmt: skip
        with sf.SoundFile(str(source)) as reader:
            for block in reader.blocks(BLOCK_FRAMES, dtype="float64", always_2d=True):
                for index, (_relative, writer) in targets.items():
                    writer.write(block[:, index][None])
        for index, (relative, writer) in targets.items():
            writer.close()
            if writer.bwf is not None:
                writer.finish_bwf(None)
            written.append({
                "path": relative, "source": entry["path"], "channel": names[index],
                "sha256": sha256_file(package / relative),
            })  # fmt: skip
    return written

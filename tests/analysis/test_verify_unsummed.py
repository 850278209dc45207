"""Packages with no `stem` role (splits through non-linear buses, dry, pre-fader and via-master
stems, multitrack) used to get exit 2 "the manifest lists no stems". Every file is measured,
lengths, rates and start times are checked, and whatever sums is checked (issue #12).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analysis_synth import synth_stems, tanh_limiter
from test_verify_support import as_float32, cli, cli_json, manifest, with_bext, write

N = 3 * 48000


def _tracks() -> dict[str, np.ndarray]:
    return {k: as_float32(v) for k, v in synth_stems(seconds=N / 48000, seed=31).items()}


def _package(root: Path, sums: list[dict[str, Any]] | None = None, subtype: str = "FLOAT"):
    """Mix, pre-master, a multitrack, two post-fader split stems, one dry stem, no `stem`."""
    tracks = _tracks()
    premaster = sum(tracks.values())
    files: dict[str, tuple[np.ndarray, str]] = {
        "mix.wav": (tanh_limiter(premaster, 0.3), "mix"),
        "premaster.wav": (premaster, "premaster"),
        **{f"multitrack/{k}.wav": (v, "track") for k, v in tracks.items()},
        # Drums and Bass share a bus with a compressor: their splits do not sum exactly
        "stems/Drums.wav": (tanh_limiter(tracks["Drums"], 0.05), "stem_post_fader"),
        "stems/Rest.wav": (
            tanh_limiter(tracks["Bass"], 0.05) + tracks["Keys"] + tracks["Vox"],
            "stem_post_fader",
        ),
        "stems_dry/Vox.wav": (tracks["Vox"] * 2.0, "stem_dry"),
    }
    for rel, (x, _) in files.items():
        write(root / rel, x, subtype)
    extra = {} if sums is None else {"sums": sums}
    entries = [{"path": p, "role": r} for p, (_, r) in files.items()]
    manifest(root, entries, sample_rate=48000, length_samples=N, **extra)
    return root


MULTITRACK_SUMS = [
    {
        "name": "multitrack",
        "parts": [f"multitrack/{k}.wav" for k in ("Drums", "Bass", "Keys", "Vox")],
        "reference": "premaster.wav",
        "exact": True,
        "why": "post-fader tracks sum to the master's input",
    },
    {
        "name": "split stems",
        "parts": ["stems/Drums.wav", "stems/Rest.wav"],
        "reference": "premaster.wav",
        "exact": False,
        "why": "the Drums/Bass bus compressor reacts to both",
    },
]


def test_a_package_without_stem_roles_is_measured(tmp_path: Path) -> None:
    root = _package(tmp_path / "pkg")
    code, output = cli("verify", root)
    assert code == 0, output
    assert "nothing null-tested: the package has no stems (no file has role stem)" in output
    code, report = cli_json(root)
    assert code == 0 and report["nulls"] == []
    assert len(report["files"]) == 9 and len(report["unrelated_files"]) == 9
    assert all(f["length_samples"] == N and f["levels"] is not None for f in report["files"])
    dry = next(f for f in report["files"] if f["label"] == "stems_dry/Vox.wav")
    vox = next(f for f in report["files"] if f["label"] == "multitrack/Vox.wav")
    # twice the amplitude: +6.02 dB on every level
    for key in ("sample_peak_dbfs", "loudness_lufs"):
        assert dry["levels"][key] - vox["levels"][key] == pytest.approx(6.02, abs=0.02)


def test_its_sums_are_checked_and_the_rest_listed(tmp_path: Path) -> None:
    root = _package(tmp_path / "pkg", MULTITRACK_SUMS)
    code, output = cli("verify", root)
    assert code == 0, output
    assert "sum 'multitrack' (4 parts) vs premaster.wav: nulls" in output
    assert "sum 'split stems' (2 parts) vs premaster.wav (for information): does not null" in output
    lines = output.splitlines()
    start = lines.index("  in no sum (measured only):")
    assert [s.strip() for s in lines[start + 1 : start + 3]] == ["mix.wav", "stems_dry/Vox.wav"]
    code, report = cli_json(root)
    multitrack, split = report["nulls"]
    assert multitrack["residual_peak_dbfs"] < -130.0
    assert -60.0 < split["residual_peak_dbfs"] < -3.0
    assert report["unrelated_files"] == ["mix.wav", "stems_dry/Vox.wav"]


def test_a_file_one_sample_short_fails(tmp_path: Path) -> None:
    root = _package(tmp_path / "pkg")
    dry = root / "stems_dry" / "Vox.wav"
    import soundfile as sf

    x, _ = sf.read(str(dry), always_2d=True)
    sf.write(str(dry), x[:-1], 48000, subtype="FLOAT")
    code, output = cli("verify", root)
    assert code == 1, output
    assert f"stems_dry/Vox.wav is {N - 1} samples long, the mix (mix.wav) {N} (-1 samples" in output
    assert f"stems_dry/Vox.wav is {N - 1} samples long, the manifest says {N}" in output


def test_a_file_at_another_rate_fails(tmp_path: Path) -> None:
    root = _package(tmp_path / "pkg")
    write(root / "stems_dry" / "Vox.wav", _tracks()["Vox"], fs=44100)
    code, output = cli("verify", root)
    assert code == 1, output
    assert "stems_dry/Vox.wav is 44100 Hz but the mix (mix.wav) is 48000 Hz" in output


def test_files_that_do_not_start_together_fail(tmp_path: Path) -> None:
    """Broadcast WAVE start times: every file at sample 0 except one, a bar later."""
    root = _package(tmp_path / "pkg", subtype="PCM_24")
    for path in sorted(root.rglob("*.wav")):
        with_bext(path, 96000 if path.name == "Keys.wav" else 0)
    code, output = cli("verify", root)
    assert code == 1, output
    assert "multitrack/Keys.wav starts at sample 96000" in output
    code, report = cli_json(root)
    (error,) = [f for f in report["findings"] if f["severity"] == "error"]
    assert error["code"] == "consistency.start" and error["value"] == 96000
    assert error["message"] == (
        "multitrack/Keys.wav starts at sample 96000 of the session timeline (BWF time reference), "
        "mix.wav at sample 0 (+96000 samples): the files do not start together"
    )
    for path in root.rglob("*.wav"):  # all at the same non-zero start: together, fine
        with_bext(path, 48000 * 3600)
    assert cli("verify", root)[0] == 0


def test_silent_and_odd_files_in_such_a_package(tmp_path: Path) -> None:
    root = _package(tmp_path / "pkg", MULTITRACK_SUMS)
    write(root / "stems_dry" / "Vox.wav", np.zeros((1, N)))  # silent and mono
    code, report = cli_json(root)
    assert code == 0
    warnings = {(f["code"], f["file"]) for f in report["findings"] if f["severity"] == "warning"}
    assert ("levels.silent", "stems_dry/Vox.wav") in warnings

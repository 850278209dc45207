"""What the report says and how it prints (issues #11, #12).

* float overs that were not clipped are not called clipped;
* file names are never cut (the table used to show ``stems/…`` at 80 columns or in a pipe);
* ``to_dict(reproducible=True)`` holds no timing and no absolute path.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from analysis_synth import synth_stems
from rich.console import Console
from test_verify_support import as_float32, cli, cli_json, tone, write

from stemprint.analysis import print_report, verify_package, write_report_json


def _summing(root: Path, stems: dict[str, np.ndarray], subtype: str = "FLOAT") -> Path:
    for name, x in stems.items():
        write(root / f"{name}.wav", x, subtype)
    write(root / "mix.wav", sum(stems.values()), subtype)
    return root


def test_float_overs_are_not_called_clipped(tmp_path: Path) -> None:
    loud = as_float32(tone(+2.0, 2.0, freq=441.0))  # peaks at +2 dBFS: 1.26 full scale
    quiet = as_float32(tone(-30.0, 2.0, freq=882.0))
    root = _summing(tmp_path / "pkg", {"Lead": loud, "Pad": quiet})
    code, output = cli("verify", root)
    assert code == 0, output  # a warning: the float file keeps the waveform
    assert "clipped run" not in output
    assert "Lead.wav is over full scale, not clipped (float)" in output
    code, report = cli_json(root)
    lead = next(f for f in report["files"] if f["label"] == "Lead.wav")["levels"]
    assert lead["clipped_run_count"] == 0
    assert lead["over_full_scale_samples"] == int(np.count_nonzero(np.abs(loud) > 1.0))
    assert lead["sample_peak_dbfs"] == pytest.approx(2.0, abs=0.01)
    assert lead["first_over_full_scale_seconds"] == pytest.approx(
        np.flatnonzero(np.abs(loud[0]) > 1.0)[0] / 48000
    )
    codes = {f["code"] for f in report["findings"] if f["file"] == "Lead.wav"}
    assert "levels.over_full_scale" in codes and "levels.clipping" not in codes


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_24"])
def test_flat_tops_at_full_scale_are_still_clipping(tmp_path: Path, subtype: str) -> None:
    clipped = np.clip(tone(+6.0, 1.0, freq=100.0), -1.0, 1.0)  # cut at full scale
    path = write(tmp_path / f"{subtype}.wav", clipped, subtype)
    code, report = cli_json(path)
    levels = report["files"][0]["levels"]
    assert levels["clipped_run_count"] == 2 * 200  # 2 channels, a flat top per half period
    assert levels["over_full_scale_samples"] == 0
    assert "levels.clipping" in {f["code"] for f in report["findings"]}


LONG = {
    "01 Lead Vocal Double Left (comp, de-essed, printed wet)": 1,
    "02 Lead Vocal Double Right (comp, de-essed, printed wet)": 2,
    "03_Rhythm_Guitar_DI_Reamped_Through_The_Marshall_Stack": 3,
}


def _long_names(root: Path) -> Path:
    stems = {
        f"stems/{name}": as_float32(0.1 * np.random.default_rng(seed).uniform(-1, 1, (2, 48000)))
        for name, seed in LONG.items()
    }
    return _summing(root, stems)


def test_long_names_are_never_cut_in_80_columns(tmp_path: Path) -> None:
    report = verify_package(_long_names(tmp_path / "a rather long package folder name"))
    buffer = io.StringIO()
    print_report(report, Console(width=80, file=buffer))
    text = buffer.getvalue()
    assert "…" not in text
    lines = text.splitlines()
    for name in LONG:
        assert f"stems/{name}.wav" in lines[next(i for i, s in enumerate(lines) if name in s)]
    table = lines[lines.index(next(s for s in lines if s.startswith("Levels"))) + 1 :]
    assert all(len(line) <= 80 for line in table)
    assert str(report.package) in text  # the package path is on one line too


def test_long_names_are_never_cut_through_the_cli(tmp_path: Path) -> None:
    root = _long_names(tmp_path / "pkg")
    code, output = cli("verify", root)
    assert code == 0, output
    assert "…" not in output
    for name in LONG:
        assert any(f"stems/{name}.wav" in line for line in output.splitlines())


def _report_bytes(root: Path, tmp_path: Path, name: str, **kw: object) -> bytes:
    report = verify_package(root, **kw)
    return write_report_json(report, tmp_path / name, reproducible=True).read_bytes()


def test_reproducible_report_is_byte_identical(tmp_path: Path) -> None:
    stems = {k: as_float32(v) for k, v in synth_stems(seconds=3.0, seed=41).items()}
    late = dict(stems, Bass=np.roll(stems["Bass"], 64, axis=1))  # fails: diagnosis runs
    first = _summing(tmp_path / "one", late)
    write(first / "mix.wav", sum(stems.values()))
    second = tmp_path / "elsewhere" / "two"
    shutil.copytree(first, second)
    a = _report_bytes(first, tmp_path, "a.json", workers=1)
    b = _report_bytes(second, tmp_path, "b.json", workers=2)
    assert a == b
    data = json.loads(a)
    assert data["package"] == "." and "elapsed_seconds" not in data
    assert str(tmp_path) not in a.decode()
    assert data["passed"] is False and data["nulls"][0]["stems"]  # the diagnosis is in it
    plain = verify_package(first).to_dict()
    assert plain["package"] == str(first.resolve()) and "elapsed_seconds" in plain


def test_reproducible_report_of_one_file(tmp_path: Path) -> None:
    master = write(tmp_path / "x" / "master.wav", tone(-14.0, 2.0))
    copy = tmp_path / "y" / "master.wav"
    copy.parent.mkdir()
    shutil.copy(master, copy)
    a = verify_package(master).to_dict(reproducible=True)
    b = verify_package(copy).to_dict(reproducible=True)
    assert a == b and a["package"] == "master.wav"
    assert a["files"][0]["path"] == "master.wav"

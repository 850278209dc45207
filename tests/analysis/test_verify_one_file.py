"""`stemprint verify` on one file, or on files without stems: measured, profile-checked, no null.

Issue #11: `stemprint verify master.wav` used to fail with "no mix found" (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_verify_support import cli, cli_json, noise, tone, write


def test_one_master_is_measured_and_passes(tmp_path: Path) -> None:
    master = write(tmp_path / "master.wav", tone(-14.0, 10.0), "PCM_24")
    code, output = cli("verify", master)
    assert code == 0, output
    assert output.lstrip().startswith("PASS")
    assert "nothing null-tested: master.wav is the only file" in output
    code, report = cli_json(master)
    assert code == 0 and report["passed"] is True
    assert report["nulls"] == [] and report["no_sums_reason"] == "master.wav is the only file"
    (entry,) = report["files"]
    assert entry["role"] == "mix" and entry["length_samples"] == 10 * 48000
    levels = entry["levels"]
    assert levels["loudness_lufs"] == pytest.approx(-14.0, abs=0.05)
    assert levels["sample_peak_dbfs"] == pytest.approx(-14.0, abs=0.01)
    assert levels["true_peak_dbtp"] == pytest.approx(-14.0, abs=0.05)


def test_one_master_against_a_profile(tmp_path: Path) -> None:
    ok = write(tmp_path / "ok" / "master.wav", tone(-14.0, 10.0), "PCM_24")
    code, output = cli("verify", ok, "--profile", "streaming")
    assert code == 0, output
    assert "profile streaming" in output
    quiet = write(tmp_path / "quiet" / "master.wav", tone(-20.0, 10.0), "PCM_24")
    code, output = cli("verify", quiet, "--profile", "streaming")
    assert code == 1, output
    assert output.lstrip().startswith("FAIL")
    assert "master.wav integrated loudness -20.0 LUFS is outside -14.0 ± 1.0 LU" in output
    assert "apply +6.0 dB" in output


def test_one_master_true_peak_fails_a_profile(tmp_path: Path) -> None:
    x = tone(-23.0, 10.0)
    x[:, 48000] = 10 ** (-0.5 / 20)  # one click at -0.5 dBFS: true peak ≥ -0.5 dBTP
    master = write(tmp_path / "Song Master.wav", x, "PCM_24")
    code, report = cli_json(master, "--profile", "ebu-r128")
    assert code == 1
    codes = {f["code"] for f in report["findings"] if f["severity"] == "error"}
    assert codes == {"profile.true_peak"}
    levels = report["files"][0]["levels"]
    assert levels["loudness_lufs"] == pytest.approx(-23.0, abs=0.1)
    assert levels["true_peak_dbtp"] >= -0.5 - 1e-6


def test_a_folder_with_only_a_mix_or_only_mixes(tmp_path: Path) -> None:
    write(tmp_path / "a" / "mix.wav", tone(-18.0, 4.0))
    code, output = cli("verify", tmp_path / "a")
    assert code == 0, output
    # a mix and its pre-master, no stems: both measured, nothing null-tested
    write(tmp_path / "b" / "mix.wav", np.tanh(3 * tone(-6.0, 4.0)) / 3)
    write(tmp_path / "b" / "premaster.wav", tone(-6.0, 4.0))
    code, report = cli_json(tmp_path / "b")
    assert code == 0 and report["passed"]
    assert sorted(f["role"] for f in report["files"]) == ["mix", "premaster"]
    assert report["nulls"] == []
    assert report["no_sums_reason"] == "the package has no stems (no file has role stem)"
    premaster = next(f for f in report["files"] if f["role"] == "premaster")
    assert premaster["levels"]["loudness_lufs"] == pytest.approx(-6.0, abs=0.05)


def test_a_list_of_files_without_stems(tmp_path: Path) -> None:
    mix = write(tmp_path / "x" / "Song_Mix.wav", tone(-10.0, 3.0))
    premaster = write(tmp_path / "y" / "Song_premaster.wav", tone(-12.0, 3.0))
    code, report = cli_json(mix, premaster)
    assert code == 0 and report["nulls"] == []
    assert [f["label"] for f in report["files"]] == ["Song_Mix.wav", "Song_premaster.wav"]


def test_stems_without_a_mix_are_measured_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path / "Bass.wav", noise(2.0, 1))
    write(tmp_path / "Keys.wav", noise(2.0, 2))
    code, output = cli("verify", tmp_path)
    assert code == 0, output
    assert "no mix or pre-master: the 2 stem(s) are measured but not null-tested" in output
    code, report = cli_json(tmp_path, "--profile", "streaming")
    assert code == 0
    assert "profile.no_mix" in {f["code"] for f in report["findings"]}


@pytest.mark.parametrize("kind", ["silence", "short noise", "mono tone", "odd length"])
def test_odd_material_alone(tmp_path: Path, kind: str) -> None:
    signals = {
        "silence": np.zeros((2, 48000)),
        "short noise": noise(12345 / 48000, 3),  # 0.26 s: shorter than a 400 ms block
        "mono tone": tone(-20.0, 5.0, channels=1),
        "odd length": tone(-20.0, 100003 / 48000, freq=997.0),
    }
    path = write(tmp_path / "file.wav", signals[kind], "PCM_24")
    code, report = cli_json(path)
    assert code == 0, report["findings"]
    levels = report["files"][0]["levels"]
    assert report["files"][0]["length_samples"] == signals[kind].shape[1]
    if kind == "silence":
        assert levels["sample_peak_dbfs"] is None and levels["loudness_lufs"] is None
        assert "levels.silent" in {f["code"] for f in report["findings"]}
        assert cli("verify", path, "--profile", "streaming")[0] == 1  # silent: no loudness
    elif kind == "short noise":
        assert levels["max_momentary_lufs"] is None  # no 400 ms window
        assert levels["sample_peak_dbfs"] == pytest.approx(-20.0, abs=0.1)
    elif kind == "mono tone":
        assert report["files"][0]["channels"] == 1
        assert levels["loudness_lufs"] == pytest.approx(-23.01, abs=0.05)
    else:
        assert levels["loudness_lufs"] == pytest.approx(-20.0, abs=0.1)


def test_one_file_is_the_mix_whatever_its_name(tmp_path: Path) -> None:
    premaster = write(tmp_path / "Song_premaster.wav", tone(-14.0, 4.0))
    code, report = cli_json(premaster, "--profile", "streaming")
    assert code == 0, report["findings"]
    assert report["files"][0]["role"] == "mix"
    assert "profile.no_mix" not in {f["code"] for f in report["findings"]}

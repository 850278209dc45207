"""The command line: the contract's commands, outputs and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemprint.cli.main import app
from tests.conftest import write_wav

DATA = Path(__file__).parents[1] / "data"
SHARED = Path(__file__).parents[2].parent / "shared" / "contract" / "session-example.yaml"

runner = CliRunner()


def _contract_session(tmp_path: Path, source: Path) -> Path:
    """The contract's example session with synthesized audio at the paths it names."""
    rng = np.random.default_rng(3)
    audio = tmp_path / "audio"
    for name, channels, seconds in (
        ("kick", 1, 8),
        ("snare", 1, 8),
        ("bass", 1, 10),
        ("vox", 2, 24),
        ("shaker", 1, 4),
    ):
        write_wav(
            audio / f"{name}.wav",
            0.1 * rng.uniform(-1, 1, (channels, 48000 * seconds)),
            subtype="PCM_24",
        )
    session = tmp_path / "session.yaml"
    shutil.copy(source, session)
    return session


SOURCES = [DATA / "contract-session-example.yaml"] + ([SHARED] if SHARED.exists() else [])


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.parent.name)
def test_contract_example_renders(tmp_path, source):
    session = _contract_session(tmp_path, source)
    result = runner.invoke(app, ["validate", str(session)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["render", str(session), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["stemprint"] == 1 and manifest["sample_rate"] == 48000
    # Vox: starts at 4 s, 20 s long -> ends at 24 s; plus 3 s of tail.
    assert manifest["length_samples"] == (24 + 3) * 48000
    names = [f["name"] for f in manifest["files"] if f["role"] == "stem"]
    assert names == ["Shaker", "Drums", "Bass", "Vocals", "Room"]
    for entry in manifest["files"]:
        assert set(entry) >= {"path", "role", "name"}
        assert sf.info(str(tmp_path / "out" / entry["path"])).frames == manifest["length_samples"]
    assert (tmp_path / "out" / "README.md").exists()
    shaker = next(f for f in manifest["files"] if f["name"] == "Shaker")
    assert shaker["muted"] is True and shaker["peak_dbfs"] is None


def test_exit_codes(tmp_path):
    missing = runner.invoke(app, ["render", str(tmp_path / "none.yaml"), "-o", str(tmp_path / "o")])
    assert missing.exit_code == 2
    assert "session file not found" in missing.output
    usage = runner.invoke(app, ["render"])
    assert usage.exit_code == 2
    write_wav(tmp_path / "a.wav", 0.1 * np.ones((1, 480)))
    (tmp_path / "s.yaml").write_text(
        "stemprint: 1\ntail_seconds: 0\ntracks:\n  - name: A\n    clips: [{file: a.wav}]\n"
    )
    (tmp_path / "o").mkdir()
    exists = runner.invoke(app, ["render", str(tmp_path / "s.yaml"), "-o", str(tmp_path / "o")])
    assert exists.exit_code == 2 and "--force" in exists.output
    ok = runner.invoke(
        app,
        [
            "render",
            str(tmp_path / "s.yaml"),
            "-o",
            str(tmp_path / "o"),
            "--force",
            "--bit-depth",
            "16",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert sf.info(str(tmp_path / "o" / "mix.wav")).subtype == "PCM_16"
    assert "x real time" in ok.output


def test_schema_is_json_schema_with_insert_types():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"].startswith("stemprint session")
    titles = {v["title"] for v in schema["$defs"]["Insert"]["oneOf"]}
    assert {"compressor", "highpass_filter", "reverb", "vst3", "sample_delay"} <= titles
    compressor = next(v for v in schema["$defs"]["Insert"]["oneOf"] if v["title"] == "compressor")
    assert "threshold_db" in compressor["properties"]


def test_demo_renders_and_sums(tmp_path):
    result = runner.invoke(app, ["demo", "-o", str(tmp_path / "demo"), "-q"])
    assert result.exit_code == 0, result.output
    package = tmp_path / "demo" / "package"
    manifest = json.loads((package / "manifest.json").read_text())
    premaster = sf.read(str(package / "premaster.wav"))[0]
    stems = sum(
        sf.read(str(package / f["path"]))[0] for f in manifest["files"] if f["role"] == "stem"
    )
    assert 20 * np.log10(np.max(np.abs(stems - premaster))) < -120
    assert len([f for f in manifest["files"] if f["role"] == "stem"]) == 5
    again = runner.invoke(app, ["demo", "-o", str(tmp_path / "demo"), "-q"])
    assert again.exit_code == 0  # re-running replaces its own demo folder


def test_render_verifies_and_verify_diagnoses_a_late_stem(tmp_path):
    session = _contract_session(tmp_path, DATA / "contract-session-example.yaml")
    out = tmp_path / "out"
    assert runner.invoke(app, ["render", str(session), "-o", str(out), "-q"]).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["passed"] is True
    assert manifest["verification"]["null_reference"] == "premaster.wav"
    assert manifest["verification"]["null_residual_peak_dbfs"] < -120
    stored = json.loads((out / "verification.json").read_text())
    assert stored["passed"] is True and stored["package"] == "."

    good = runner.invoke(app, ["verify", str(out)])
    assert good.exit_code == 0, good.output
    assert good.output.lstrip().startswith("PASS")

    # Plant a fault: the Bass stem printed 128 samples late.
    bass = out / "stems" / "Bass.wav"
    data, rate = sf.read(str(bass), always_2d=True)
    late = np.zeros_like(data)
    late[128:] = data[:-128]
    sf.write(str(bass), late, rate, subtype="PCM_24")
    bad = runner.invoke(app, ["verify", str(out), "--json"])
    assert bad.exit_code == 1
    report = json.loads(bad.output[: bad.output.rindex("}") + 1])
    assert report["passed"] is False
    text = json.dumps(report["findings"])
    assert "Bass.wav" in text and "128 samples" in text

    fixed = runner.invoke(app, ["verify", str(out), "--fix", str(tmp_path / "fixed")])
    assert fixed.exit_code == 1  # the original still fails; the copy is corrected
    assert runner.invoke(app, ["verify", str(tmp_path / "fixed")]).exit_code == 0

    unusable = runner.invoke(app, ["verify", str(tmp_path / "nothing-here")])
    assert unusable.exit_code == 2

"""The public Python API: complete, sorted, typed results, and the README example runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import stemprint

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_complete_and_importable():
    assert stemprint.__all__ == sorted(stemprint.__all__)
    for name in stemprint.__all__:
        assert hasattr(stemprint, name), name
    required = {
        "load_session", "compile_session", "render_package", "render_regions",
        "verify_package", "repair_package", "PackageResult", "VerificationReport",
        "StemprintError", "InputError", "VerificationFailed", "RenderOptions", "RenderGraph",
    }  # fmt: skip
    assert required <= set(stemprint.__all__)
    public = {n for n in vars(stemprint) if not n.startswith("_")}
    # Every public name the package binds is exported (submodules aside).
    modules = {n for n in public if type(getattr(stemprint, n)).__name__ == "module"}
    assert public - modules <= set(stemprint.__all__)


def test_importing_changes_no_process_setting_and_prints_nothing():
    code = "import stemprint, stemprint.render.allocator as a; print(a._done)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False" and done.stderr == ""


def test_readme_python_example_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Python API", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    done = subprocess.run(
        [sys.executable, "-c", example.group(1)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "passed: True" in done.stdout


def test_help_shows_the_api():
    done = subprocess.run(
        [sys.executable, "-c", "import stemprint; help(stemprint)"],
        capture_output=True,
        text=True,
        env={"PAGER": "cat", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0
    for name in ("render_package", "verify_package", "load_session"):
        assert name in done.stdout

"""``import stemprint`` is cheap: the API is imported on first use, and resolves to the same
objects as its modules'."""

from __future__ import annotations

import subprocess
import sys

import pytest

import stemprint
import stemprint.analysis


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("code", ["import stemprint", "import stemprint.cli.main"])
def test_importing_the_package_or_the_command_line_loads_no_api(code):
    loaded = _loaded_after(code)
    heavy = {"numpy", "pydantic", "pedalboard", "soundfile", "stemprint.analysis"}
    assert not heavy & loaded


def test_importing_one_analysis_module_loads_no_other():
    loaded = _loaded_after("import stemprint.analysis.live")
    assert "stemprint.analysis.live" in loaded
    assert not {"stemprint.analysis.verify", "stemprint.analysis.repair", "rich"} & loaded


def test_lazy_names_are_the_modules_objects():
    from stemprint.analysis import verify_package
    from stemprint.analysis.meters import LevelMeter
    from stemprint.export.package import render_package

    assert stemprint.verify_package is verify_package
    assert stemprint.render_package is render_package
    assert stemprint.analysis.LevelMeter is LevelMeter
    assert set(stemprint.__all__) <= set(dir(stemprint))
    assert set(stemprint.analysis.__all__) <= set(dir(stemprint.analysis))


@pytest.mark.parametrize("module", [stemprint, stemprint.analysis])
def test_an_unknown_name_is_an_attribute_error(module):
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018

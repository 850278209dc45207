"""Shared fixtures of the importer tests: the real DAW files beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

DAW_FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "daw"


@pytest.fixture
def daw_fixtures() -> Path:
    """``../shared/fixtures/daw`` (skips the test when it is absent)."""
    if not DAW_FIXTURES.is_dir():
        pytest.skip(f"real DAW project fixtures not found at {DAW_FIXTURES}")
    return DAW_FIXTURES

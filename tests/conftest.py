"""Shared fixtures: the ../shared folder and an isolated cache for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LONDON = SHARED / "datasets" / "london-frl"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache folder, so no test sees another's cached results."""
    monkeypatch.setenv("FACEDIALECT_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def london() -> Path:
    """The London face set in ../shared (skips with a reason when absent)."""
    if not (LONDON / "neutral").is_dir():
        pytest.skip(f"{LONDON} not found: the shared London face set sits beside the "
                    "project checkout in CI (../shared)")
    return LONDON

"""Fixtures shared by every test tier."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they set, never the developer's SUKVERSE_* variables."""
    for name in list(os.environ):
        if name.startswith("SUKVERSE_"):
            monkeypatch.delenv(name)

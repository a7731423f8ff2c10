"""Fixtures for scorer tests: a registry that each test may change without leaking."""

from __future__ import annotations

import pytest

from assay.scorers import registry


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshot the registry (built-ins loaded) and restore it after the test."""
    registry.available()
    monkeypatch.setattr(registry, "_factories", dict(registry._factories))
    monkeypatch.setattr(registry, "_descriptions", dict(registry._descriptions))
    monkeypatch.setattr(registry, "_plugin_errors", dict(registry._plugin_errors))
    monkeypatch.setattr(registry, "_loaded", registry._loaded)

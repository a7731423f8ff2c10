"""The docs are part of the product: every setting, column and command is documented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from assay.model import SPAN_COLUMNS
from assay.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for f in dataclasses.fields(Settings):
        assert f"`ASSAY_{f.name.upper()}`" in text, f"ASSAY_{f.name.upper()} missing"


def test_every_span_column_is_documented() -> None:
    text = (ROOT / "docs" / "schema.md").read_text()
    for column in SPAN_COLUMNS:
        assert f"`{column}`" in text, column


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "the test command" in ln)
    command = line.split("#")[0].strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in [c.strip() for c in ci]


def test_public_api_is_explicit() -> None:
    import assay

    assert sorted(assay.__all__) == sorted(set(assay.__all__))
    for name in assay.__all__:
        assert hasattr(assay, name), name

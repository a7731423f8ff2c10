"""Plugins: distributions declaring ``assay.plugins`` entry points are loaded once."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from assay.model import Case, Output
from assay.scorers import PLUGIN_GROUP, ScorerError, available, build, registry


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_registry: None) -> Iterator[Path]:
    """A directory on sys.path where tests install fake distributions."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    registry._loaded = False  # restored by clean_registry
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("fake_assay_"):
            del sys.modules[name]


def install(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Write a minimal installed distribution: dist-info with entry points, plus modules."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = [f"[{PLUGIN_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


MODULE_PLUGIN = """
    from dataclasses import dataclass
    from assay.model import Score, ScorerSpec
    from assay.scorers import scorer

    LOADS = []
    LOADS.append(1)

    @dataclass
    class Shouting:
        spec: ScorerSpec

        async def score(self, case, output):
            loud = output.text.isupper()
            return Score(1.0 if loud else 0.0, passed=loud)

    @scorer("shouting", description="output is all caps")
    def shouting():
        return Shouting(ScorerSpec("shouting"))
"""


async def test_a_plugin_module_registers_scorers_through_the_decorator(site: Path) -> None:
    install(
        site, "fake-assay-shout", {"shout": "fake_assay_shout"}, {"fake_assay_shout": MODULE_PLUGIN}
    )
    names = available()
    assert "shouting" in names and "exact" in names
    made = build("shouting")
    assert (await made.score(Case("c", "q"), Output("HEY"))).passed is True
    assert (await made.score(Case("c", "q"), Output("hey"))).passed is False
    # Loaded once: later lookups do not import the entry point again.
    available()
    build("shouting")
    assert sys.modules["fake_assay_shout"].LOADS == [1]


FACTORY_PLUGIN = """
    from assay.model import Score, ScorerSpec

    class Length:
        def __init__(self, limit):
            self.spec = ScorerSpec("short", {"limit": limit})
            self.limit = limit

        async def score(self, case, output):
            ok = len(output.text) <= self.limit
            return Score(1.0 if ok else 0.0, passed=ok)

    def make_short(*, limit: int = 10):
        return Length(limit)
"""


async def test_an_entry_point_naming_a_factory_registers_it_under_its_name(site: Path) -> None:
    install(
        site,
        "fake-assay-short",
        {"short": "fake_assay_short:make_short"},
        {"fake_assay_short": FACTORY_PLUGIN},
    )
    made = build({"short": {"limit": 3}})
    assert made.spec.args == {"limit": 3}
    assert (await made.score(Case("c", "q"), Output("abcd"))).passed is False


def test_a_broken_plugin_warns_and_is_named_when_its_scorer_is_missing(site: Path) -> None:
    install(
        site,
        "fake-assay-broken",
        {"broken": "fake_assay_broken"},
        {"fake_assay_broken": "raise ImportError('needs libfoo')\n"},
    )
    with pytest.warns(RuntimeWarning, match=r"plugin 'broken'.*fake-assay-broken.*needs libfoo"):
        names = available()
    assert "exact" in names
    with pytest.raises(ScorerError, match=r"unknown scorer 'broken_scorer'.*needs libfoo"):
        build("broken_scorer")

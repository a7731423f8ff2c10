"""docs/scorers.md documents every built-in option, and its examples run."""

from __future__ import annotations

import asyncio
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from assay.model import Case, Output
from assay.scorers import available, build

DOC = Path(__file__).resolve().parents[2] / "docs" / "scorers.md"
OURS = ("assay.scorers.deterministic", "assay.scorers.embedding")


def test_every_builtin_and_option_is_documented() -> None:
    text = DOC.read_text()
    builtins = {n: f for n, f in available().items() if f.__module__ in OURS}
    assert len(builtins) == 8
    for name, factory in builtins.items():
        heading = f"### `{name}`"
        assert heading in text, heading
        section = text.split(heading, 1)[1].split("\n### ", 1)[0]
        for option in inspect.signature(factory).parameters:
            assert f"| `{option}` |" in section, (name, option)


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


@pytest.mark.parametrize("index", range(3))
def test_doc_examples_run(clean_registry: None, index: int) -> None:
    block = python_blocks()[index]
    namespace: dict[str, Any] = {}
    if "await " in block:
        exec("async def _example():\n" + textwrap.indent(block, "    "), namespace)
        asyncio.run(namespace["_example"]())
    else:
        exec(block, namespace)


async def test_doc_examples_behave_as_described(clean_registry: None) -> None:
    assert len(python_blocks()) == 3  # a new example needs a test_doc_examples_run index
    for block in python_blocks()[1:3]:
        exec(block, {})
    case = Case("c", "q")
    assert (await build("polite").score(case, Output("Thank you!"))).passed is True
    assert (await build("short_enough").score(case, Output("x" * 560))).value == 0.5
    long_text = Output(" ".join(["word"] * 101))
    failed = await build("max_words").score(case, long_text)
    assert failed.passed is False and failed.explanation == "101 words > 100"
    per_case = Case("c", "q", options={"max_words": {"limit": 200}})
    assert (await build("max_words").score(per_case, long_text)).passed is True

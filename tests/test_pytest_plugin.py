"""The pytest plugin: a golden file runs as one test per case and per gate."""

from __future__ import annotations

import pytest

APP = """
def answer(input):
    return {"What is 2+2?": "4", "What is 3+3?": "6"}.get(input, "no idea")
"""

GOLDEN = """
name: math
eval:
  target: app:answer
  scorers: [exact]
  trials: 2
  gates: ["exact.mean >= 0.5", "exact.mean >= 0.9"]
cases:
  - {id: two, input: "What is 2+2?", expected: "4"}
  - {id: three, input: "What is 3+3?", expected: "6"}
  - {id: four, input: "What is 4+4?", expected: "8"}
"""


@pytest.fixture
def project(
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> pytest.Pytester:
    pytester.makepyfile(app=APP)
    pytester.makefile(".golden.yaml", math=GOLDEN)
    db = tmp_path_factory.mktemp("db") / "p.duckdb"
    monkeypatch.setenv("ASSAY_DB", str(db))
    monkeypatch.setenv("ASSAY_URL", "http://127.0.0.1:9")
    pytester.syspathinsert()
    return pytester


def test_each_case_and_gate_is_a_test(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*math.golden.yaml::four FAILED*",  # cases run in id order
            "*math.golden.yaml::two PASSED*",
            "*gate: exact.mean >= 0.9 FAILED*",
        ]
    )
    assert "below 100%: exact: passed 0% of trials (scores [0.0, 0.0])" in result.stdout.str()


def test_command_line_overrides_the_file(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--assay-scorer",
        "contains:value=no",
        "--assay-gate",
        "contains.mean <= 0.5",
    )
    # Only "four" answers "no idea"; the file's gates are replaced by the one given.
    result.assert_outcomes(passed=2, failed=2)


def test_missing_target_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".golden.jsonl", bare='{"id": "a", "input": "x", "expected": "x"}')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*no target*--assay-target*"])
    assert result.ret != 0

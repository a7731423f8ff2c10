"""`assay eval run|compare|list|show|plan` as a user runs them: a Python target in the
working directory, a database file (no server), and the documented exit codes
(0 passed, 1 gate failed or regression, 2 usage or configuration error)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner, Result

from assay.cli import cli

APP = """\
from pathlib import Path


def _n(input):
    with Path("calls.txt").open("a") as f:
        f.write(input + "\\n")
    return int(input.split()[-1])


def answer(input):
    return f"answer {_n(input)}"


def worse(input):
    n = _n(input)
    return f"answer {n}" if n % 2 else "no idea"


def mixed(input):
    n = _n(input)
    if n == 5:
        raise RuntimeError("backend down")
    return f"answer {n}" if n % 2 else "no idea"


def broken(input):
    _n(input)
    raise RuntimeError("backend down")
"""


def golden_lines(n: int) -> str:
    return "".join(
        json.dumps({"id": f"c{i:02d}", "input": f"question {i}", "expected": f"answer {i}"}) + "\n"
        for i in range(n)
    )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A project directory with app.py, small.jsonl (6 cases) and big.jsonl (40 cases)."""
    monkeypatch.chdir(tmp_path)
    # 'app' is imported from the working directory: never one of an earlier test.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "app", raising=False)
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "small.jsonl").write_text(golden_lines(6))
    (tmp_path / "big.jsonl").write_text(golden_lines(40))
    # Nothing listens on port 9: the app runs in-process on the database file.
    yield {"ASSAY_DB": str(tmp_path / "e.duckdb"), "ASSAY_URL": "http://127.0.0.1:9"}
    sys.modules.pop("app", None)


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, auto_envvar_prefix="ASSAY")


def run_json(env: dict[str, str], *args: str, code: int = 0) -> Any:
    out = run(env, *args, "--json")
    assert out.exit_code == code, out.output
    return json.loads(out.stdout)


def calls() -> list[str]:
    path = Path("calls.txt")
    text = path.read_text() if path.exists() else ""
    path.write_text("")
    return text.splitlines()


def runs(env: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = run_json(env, "eval", "list")
    return items


def test_run_scorers_trials_and_summary_table(env: dict[str, str]) -> None:
    out = run(
        env,
        *("eval", "run", "small.jsonl", "--target", "app:worse", "--trials", "2"),
        *("--scorer", "exact", "--scorer", "contains:value=answer,case_sensitive=true"),
        *("--scorer", '{"regex": {"pattern": "^(answer|no) ", "key": "shape"}}'),
        *("--name", "first", "--concurrency", "3"),
    )
    assert out.exit_code == 0, out.output
    assert sorted(calls()) == sorted([f"question {i}" for i in range(6)] * 2)
    (rec,) = runs(env)
    assert f"run {rec['run_id']} · small {rec['golden_version'][:12]} · 2 trial(s) · finished" in (
        out.output
    )
    lines = {line.split()[1]: line for line in out.output.splitlines() if line.startswith("│")}
    # Cases 0, 2, 4 answer "no idea" in both trials: half the cases pass, none is flaky.
    assert "0.500" in lines["exact"] and "@2=0.50 ^2=0.50" in lines["exact"]
    assert "0 (0.00)" in lines["exact"]
    assert "0.500" in lines["contains"]
    assert "1.000" in lines["shape"]
    assert "6 cases, 12 trials (0 failed)" in out.output
    assert rec["name"] == "first" and rec["trials"] == 2 and rec["status"] == "finished"
    assert rec["target"] == {"kind": "python", "callable": "app:worse"}
    specs = {s["key"] or s["name"]: s for s in rec["scorers"]}
    assert list(specs) == ["exact", "contains", "shape"]
    assert specs["contains"]["args"]["value"] == "answer"
    assert specs["contains"]["args"]["case_sensitive"] is True
    assert specs["shape"]["args"]["pattern"] == "^(answer|no) "


def test_run_json_shape(env: dict[str, str]) -> None:
    data = run_json(
        env,
        *("eval", "run", "small.jsonl", "--target", "app:worse", "--scorer", "exact"),
        *("--gate", "exact.mean >= 0.4", "--gate", "trials.failed == 0"),
    )
    assert set(data) == {"summary", "gates", "comparison"} and data["comparison"] is None
    s = data["summary"]
    assert s["run"]["status"] == "finished" and s["run"]["finished_at"] is not None
    assert (s["n_cases"], s["trials_done"], s["trials_failed"]) == (6, 6, 0)
    est = s["scorers"]["exact"]["estimate"]
    assert est["mean"] == 0.5 and est["low"] < 0.5 < est["high"]
    assert (est["n_cases"], est["n_trials"], est["level"]) == (6, 6, 0.95)
    assert s["case_scores"]["c00"] == {"exact": [0.0]}
    assert s["case_scores"]["c01"] == {"exact": [1.0]}
    assert s["latency_p50_ms"] >= 0 and s["cost"] == 0
    assert data["gates"] == [
        {"expression": "exact.mean >= 0.4", "value": 0.5, "passed": True},
        {"expression": "trials.failed == 0", "value": 0.0, "passed": True},
    ]


def test_gates_and_exit_codes(env: dict[str, str]) -> None:
    base = ("eval", "run", "small.jsonl", "--target", "app:worse", "--scorer", "exact")
    ok = run(env, *base, "--gate", "exact.mean >= 0.5", "--gate", "latency.p95 < 60000")
    assert ok.exit_code == 0, ok.output
    assert "gate pass exact.mean >= 0.5 (value 0.5000)" in ok.output
    failed = run(env, *base, "--gate", "exact.mean >= 0.9", "--gate", "exact.mean > 0.1")
    assert failed.exit_code == 1, failed.output
    assert "gate FAIL exact.mean >= 0.9 (value 0.5000)" in failed.output
    assert "gate pass exact.mean > 0.1" in failed.output
    assert len(runs(env)) == 2
    calls()

    # Mistakes in a gate are found before the run: exit 2 and no target call.
    for gate, message in [
        ("exact.mean >=", "is not 'SCORER.STAT OP NUMBER'"),
        ("exact >= 0.5", "is not 'SCORER.STAT OP NUMBER'"),
        ("exactt.mean >= 0.5", "the run has no scorer 'exactt' (scorers: exact;"),
        ("exact.median >= 0.5", "unknown statistic 'median'"),
        ("exact.pass@3 >= 0.5", "needs at least 3 trials per case; the run has 1"),
        ("latency.p99 < 100", "latency has p50, p95, not 'p99'"),
    ]:
        out = run(env, *base, "--gate", gate)
        assert out.exit_code == 2, (gate, out.output)
        assert message in out.output, (gate, out.output)
    assert calls() == [] and len(runs(env)) == 2

    # A scorer that scored nothing (every trial failed) fails its gate: exit 1, not 2.
    down = run(
        env, "eval", "run", "small.jsonl", "--target", "app:broken", "--scorer", "exact",
        "--gate", "exact.mean >= 0.5",
    )  # fmt: skip
    assert down.exit_code == 1, down.output
    assert "gate FAIL exact.mean >= 0.5 (value —)" in down.output
    assert "RuntimeError: backend down" in down.output
    assert "6 cases, 6 trials (6 failed)" in down.output


def test_gates_from_the_golden_file(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "qa.yaml").write_text(
        "name: qa\n"
        "eval:\n"
        "  target: app:worse\n"
        "  scorers: [exact]\n"
        "  trials: 2\n"
        "  gates: ['exact.mean >= 0.9']\n"
        "cases:\n"
        "  - {id: c1, input: question 1, expected: answer 1}\n"
        "  - {id: c2, input: question 2, expected: answer 2}\n"
    )
    out = run(env, "eval", "run", "qa.yaml")
    assert out.exit_code == 1, out.output
    assert "2 trial(s)" in out.output and "gate FAIL exact.mean >= 0.9" in out.output
    # Command-line gates replace the file's.
    assert run(env, "eval", "run", "qa.yaml", "--gate", "exact.mean >= 0.5").exit_code == 0


def test_junit_report(env: dict[str, str], tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    out = run(
        env,
        *("eval", "run", "small.jsonl", "--target", "app:mixed", "--scorer", "exact"),
        *("--gate", "exact.mean >= 0.9", "--gate", "trials.failed <= 1"),
        *("--junit", str(report)),
    )
    assert out.exit_code == 1, out.output
    suite = ET.parse(report).getroot()
    assert suite.tag == "testsuite" and "small" in suite.get("name", "")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("8", "4", "1")
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert set(cases) == {f"c{i:02d}" for i in range(6)} | {
        "exact.mean >= 0.9",
        "trials.failed <= 1",
    }
    for cid in ("c00", "c02", "c04"):
        (failure,) = cases[cid].findall("failure")
        assert "exact" in failure.get("message", "")
    for cid in ("c01", "c03"):
        assert list(cases[cid]) == []
    (error,) = cases["c05"].findall("error")
    assert "backend down" in error.get("message", "")
    assert cases["exact.mean >= 0.9"].find("failure") is not None
    assert cases["exact.mean >= 0.9"].get("classname") == "assay.gate"
    assert cases["trials.failed <= 1"].find("failure") is None


def test_baseline_regression_and_compare(env: dict[str, str]) -> None:
    big = ("eval", "run", "big.jsonl", "--scorer", "exact")
    base = run_json(env, *big, "--target", "app:answer")["summary"]["run"]["run_id"]

    worse = run(env, *big, "--target", "app:worse", "--baseline", base, "--fail-on-regression")
    assert worse.exit_code == 1, worse.output
    assert "regression" in worse.output and f"{base} (baseline)" in worse.output
    assert "exact now failing: c00, c02, c04" in worse.output
    # Without --fail-on-regression the comparison is shown but does not fail the command.
    shown = run_json(env, *big, "--target", "app:worse", "--baseline", base)
    assert shown["comparison"]["scorers"]["exact"]["verdict"] == "regression"
    equal = run(env, *big, "--target", "app:answer", "--baseline", base, "--fail-on-regression")
    assert equal.exit_code == 0, equal.output
    assert "no detectable change" in equal.output

    cand = runs(env)[1]["run_id"]  # the regressed run with --json
    assert cand == shown["summary"]["run"]["run_id"]
    table = run(env, "eval", "compare", base[:-1], cand)
    assert table.exit_code == 0, table.output
    assert "1.000 → 0.500" in table.output and "-0.500" in table.output
    assert "+0 / -20" in table.output and "regression" in table.output
    c = run_json(env, "eval", "compare", base, cand)
    exact = c["scorers"]["exact"]
    assert exact["verdict"] == "regression" and exact["diff"] == pytest.approx(-0.5)
    assert exact["high"] < 0 and exact["p_value"] < 1e-4 and exact["n_cases"] == 40
    assert exact["flipped_to_fail"] == [f"c{i:02d}" for i in range(0, 40, 2)]
    assert exact["flipped_to_pass"] == []
    assert c["baseline"]["run_id"] == base and c["candidate"]["run_id"] == cand
    regress = run(env, "eval", "compare", base, cand, "--fail-on-regression")
    assert regress.exit_code == 1
    better = run(env, "eval", "compare", cand, base, "--fail-on-regression")
    assert better.exit_code == 0 and "improvement" in better.output
    # Lower is better for this scorer: the same drop is now an improvement.
    flipped = run_json(env, "eval", "compare", base, cand, "--lower-is-better", "exact")
    assert flipped["scorers"]["exact"]["verdict"] == "improvement"

    unknown = run(env, "eval", "compare", base, "nope")
    assert unknown.exit_code == 2 and "no run 'nope'" in unknown.output
    alone = run(env, *big, "--target", "app:answer", "--fail-on-regression")
    assert alone.exit_code == 2 and "--fail-on-regression needs --baseline" in alone.output
    missing = run(env, *big, "--target", "app:answer", "--baseline", "nope")
    assert missing.exit_code == 2 and "no run 'nope'" in missing.output


def test_configuration_errors_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    small = ("eval", "run", "small.jsonl")
    for args, message in [
        (("--target", "app:answer", "--scorer", "exactt"), "unknown scorer 'exactt'"),
        (("--target", "app:answer", "--scorer", "exactt"), "did you mean 'exact'?"),
        (("--target", "app:answer", "--scorer", "contains:value"), "must be key=value"),
        (("--target", "app:answer", "--scorer", "{bad"), "is not valid JSON"),
        (("--target", "app:answer", "--scorer", "contains:valu=x"), "valu"),
        (("--target", "app:nothere", "--scorer", "exact"), "app has no attribute 'nothere'"),
        (("--target", "nomodule:fn", "--scorer", "exact"), "'nomodule'"),
        (("--target", "gibberish", "--scorer", "exact"), "is not understood"),
        (("--target", "app:answer", "--scorer", "exact", "--target-option", "x=1"), "['x']"),
        (("--scorer", "exact"), "no target: give --target"),
        (("--target", "app:answer"), "no scorers: give --scorer"),
        (("--target", "app:answer", "--scorer", "exact", "--trials", "0"), "--trials"),
        (
            ("--target", "app:answer", "--scorer", "exact", "--resume", "nope"),
            "no run 'nope' to resume; `assay eval list` shows runs",
        ),
    ]:
        out = run(env, *small, *args)
        assert out.exit_code == 2, (args, out.output)
        assert message in out.output, (args, out.output)
        assert "Traceback" not in out.output
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "input": "x"}\n{"id": "a"}\n')
    bad = run(env, "eval", "run", "bad.jsonl", "--target", "app:answer", "--scorer", "exact")
    assert bad.exit_code == 2 and "bad.jsonl:2" in bad.output
    assert calls() == [] and runs(env) == []


def test_resume_runs_only_what_failed(env: dict[str, str]) -> None:
    small = ("eval", "run", "small.jsonl", "--scorer", "exact", "--trials", "2")
    first = run_json(env, *small, "--target", "app:mixed")["summary"]
    assert first["trials_failed"] == 2
    run_id = first["run"]["run_id"]
    calls()
    again = run_json(env, *small, "--target", "app:answer", "--resume", run_id[:-1])
    assert calls() == ["question 5", "question 5"]  # only the failed trials ran again
    s = again["summary"]
    assert s["run"]["run_id"] == run_id and s["run"]["status"] == "finished"
    assert (s["trials_done"], s["trials_failed"]) == (12, 0)
    assert s["case_scores"]["c05"] == {"exact": [1.0, 1.0]}
    # Resuming a complete run calls nothing and reports the same run.
    done = run_json(env, *small, "--target", "app:answer", "--resume", run_id)
    assert calls() == [] and done["summary"]["trials_done"] == 12
    # Raising --trials on resume adds a trial to every case.
    more = run_json(env, *small, "--target", "app:answer", "--resume", run_id, "--trials", "3")
    assert sorted(calls()) == [f"question {i}" for i in range(6)]
    assert more["summary"]["run"]["trials"] == 3 and more["summary"]["trials_done"] == 18
    assert more["summary"]["case_scores"]["c00"] == {"exact": [0.0, 0.0, 1.0]}
    assert len(runs(env)) == 1
    assert runs(env)[0]["trials"] == 3  # the stored run records the raised count


def test_list_show_and_plan(env: dict[str, str]) -> None:
    big = ("eval", "run", "big.jsonl", "--scorer", "exact", "--trials", "2")
    first = run(env, *big, "--target", "app:worse", "--name", "half")
    assert first.exit_code == 0, first.output
    (a,) = runs(env)
    shown = run(env, "eval", "show", a["run_id"][:10])
    assert shown.exit_code == 0, shown.output
    assert f"run {a['run_id']}" in shown.output and "0.500" in shown.output
    assert "40 cases, 80 trials (0 failed)" in shown.output
    detail = run_json(env, "eval", "show", a["run_id"])
    assert detail["run"]["name"] == "half" and detail["n_cases"] == 40
    assert detail["scorers"]["exact"]["estimate"]["mean"] == 0.5

    assert run(env, "eval", "run", "small.jsonl", "--scorer", "exact", "--target", "app:answer")
    b, a2 = runs(env)
    assert a2["run_id"] == a["run_id"] and b["golden"] == "small"
    table = run(env, "eval", "list")
    assert table.exit_code == 0
    for r in (a, b):
        assert r["run_id"] in table.output and r["golden_version"][:12] in table.output
    assert "half" in table.output and "app:worse" in table.output
    assert [r["run_id"] for r in run_json(env, "eval", "list", "--golden", "big")] == [a["run_id"]]
    ambiguous = run(env, "eval", "show", a["run_id"][:2])
    assert ambiguous.exit_code == 2 and "ambiguous" in ambiguous.output
    assert "Traceback" not in ambiguous.output
    unknown = run(env, "eval", "show", "nope")
    assert unknown.exit_code == 2 and "no run 'nope'" in unknown.output

    # Without a run: the textbook figures for a pass rate of 0.5 (STATS.md).
    text = run(env, "eval", "plan", "--delta", "0.03")
    assert text.exit_code == 0
    assert "4,361 cases per run unpaired, 2,181 paired" in text.output
    p = run_json(env, "eval", "plan", "--delta", "0.03")
    assert (p["cases_unpaired"], p["cases_paired"], p["correlation"]) == (4361, 2181, 0.5)

    # With a run: its case-to-case variance (half the cases pass, trials always agree).
    planned = run_json(env, "eval", "plan", "--delta", "0.1", "--run", a["run_id"])
    exact = planned["exact"]
    assert exact["omega2"] == pytest.approx(0.25 * 40 / 39) and exact["sigma2"] == 0
    z = 1.959963984540054 + 0.8416212335729143
    n_paired = math.ceil(z**2 * 2 * exact["omega2"] * (1 - 0.5) / 0.1**2)
    assert [r["trials"] for r in exact["rows"]] == [1, 3, 5, 10]
    assert {r["n_paired"] for r in exact["rows"]} == {n_paired}
    assert all(r["calls_paired"] == 2 * r["n_paired"] * r["trials"] for r in exact["rows"])
    table = run(env, "eval", "plan", "--delta", "0.1", "--run", a["run_id"], "--trials", "1,2")
    assert table.exit_code == 0 and "exact: cases to detect Δ=0.1" in table.output
    assert f"{n_paired:,}" in table.output
    for args, message in [
        (("--delta", "0"), "--delta must be > 0"),
        (("--delta", "0.1", "--run", "nope"), "no run 'nope'"),
        (("--delta", "0.1", "--run", a["run_id"], "--scorer", "judge"), "no scores from"),
        (("--delta", "0.1", "--trials", "a,b"), "must be numbers"),
    ]:
        out = run(env, "eval", "plan", *args)
        assert out.exit_code == 2 and message in out.output, (args, out.output)

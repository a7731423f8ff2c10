"""`assay online` as a user runs it against a database file (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from assay.cli import cli
from assay.store.duckdb import DuckDBStore

RUBRIC = """\
version: 1
rubric: |
  The answer resolves the customer's question without inventing policy.
mode: likert
scale: [1, 5]
threshold: 4
endpoint:
  base_url: http://127.0.0.1:9/v1
  model: gpt-4o-mini
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "o.duckdb"
    DuckDBStore(str(path)).close()
    (tmp_path / "rubric.yaml").write_text(RUBRIC)
    # Nothing listens on port 9: the app runs in-process on the database file.
    return {"ASSAY_DB": str(path), "ASSAY_URL": "http://127.0.0.1:9"}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, auto_envvar_prefix="ASSAY")


def test_add_list_status_pause_resume_rm(env: dict[str, str], tmp_path: Path) -> None:
    rubric = str(tmp_path / "rubric.yaml")
    added = run(env, "online", "add", "helpfulness", "--judge", rubric, "--sample", "0.05",
                "--filter", "route=support", "--budget-usd", "5/day",
                "--concurrency", "16")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert (
        "online rule helpfulness saved: judge (likert, gpt-4o-mini) on 5% of route=support, "
        "kind=llm spans; budget $5.0000/day"
    ) in added.output

    listed = run(env, "online", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (rule,) = json.loads(listed.output)
    assert rule["scorer"]["mode"] == "likert" and rule["scorer"]["threshold"] == 4
    assert rule["scorer"]["rubric"].startswith("The answer resolves")
    assert (rule["budget_usd"], rule["concurrency"]) == (5.0, 16)
    table = run(env, "online", "list")
    assert "helpfulness" in table.output and "waiting" in table.output

    status = run(env, "online", "status", "helpfulness")
    assert status.exit_code == 0, status.output
    for text in ("processed (spans read)", "$0.0000 of $5.0000 this day", "backlog"):
        assert text in status.output

    paused = run(env, "online", "pause", "helpfulness")
    assert paused.exit_code == 0 and "paused" in paused.output
    assert (
        json.loads(run(env, "online", "status", "helpfulness", "--json").output)["enabled"] is False
    )
    assert "resumed" in run(env, "online", "resume", "helpfulness").output
    assert run(env, "online", "rm", "helpfulness").exit_code == 0
    gone = run(env, "online", "status", "helpfulness")
    assert gone.exit_code == 2 and "404: no online rule 'helpfulness'" in gone.output


def test_scorer_configs_inline_and_from_files(env: dict[str, str], tmp_path: Path) -> None:
    assert (
        run(env, "online", "add", "valid", "--scorer", "json_valid", "--all-kinds").exit_code == 0
    )
    inline = run(
        env, "online", "add", "refund", "--scorer", '{"name": "regex", "pattern": "refund"}'
    )
    assert inline.exit_code == 0, inline.output
    (tmp_path / "contains.yaml").write_text("contains:\n  value: sorry\n")
    from_file = run(env, "online", "add", "sorry", "--scorer", str(tmp_path / "contains.yaml"),
                    "--filter", "attr.tenant=acme", "--paused")  # fmt: skip
    assert from_file.exit_code == 0, from_file.output
    rules = {r["name"]: r for r in json.loads(run(env, "online", "list", "--json").output)}
    assert rules["valid"]["filters"] == {}
    assert rules["refund"]["scorer"] == {"name": "regex", "pattern": "refund"}
    assert rules["sorry"]["scorer"] == {"name": "contains", "value": "sorry"}
    assert rules["sorry"]["filters"] == {"attr.tenant": "acme", "kind": "llm"}
    assert rules["sorry"]["enabled"] is False


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([], "give exactly one of --judge RUBRIC.yaml or --scorer CONFIG"),
        (["--scorer", "exact", "--judge", "RUBRIC"], "give exactly one of"),
        (["--judge", "missing.yaml"], "--judge 'missing.yaml': cannot read it"),
        (["--judge", "BADRUBRIC"], "'mdoe' is not a judge option (did you mean 'mode'?)"),
        (["--scorer", "nope"], "400: scorer: unknown scorer 'nope'"),
        (["--scorer", "exact", "--filter", "rout=x"], "filter 'rout' is not a span field"),
        (["--scorer", "exact", "--budget-usd", "5/year"], "period 'year' must be one of"),
        (["--scorer", "exact", "--since", "soon"], "since 'soon' is not a time"),
        (["--scorer", "exact", "--sample", "0"], "Invalid value for '--sample'"),
    ],
)
def test_bad_input_exits_2_with_the_reason(
    env: dict[str, str], tmp_path: Path, args: list[str], reason: str
) -> None:
    (tmp_path / "bad.yaml").write_text("rubric: be kind\nmdoe: likert\n")
    args = [
        str(tmp_path / "rubric.yaml") if a == "RUBRIC" else str(tmp_path / "bad.yaml")
        if a == "BADRUBRIC" else a
        for a in args
    ]  # fmt: skip
    result = run(env, "online", "add", "r", *args)
    assert result.exit_code == 2, result.output
    assert reason in result.output


def test_a_taken_name_exits_2(env: dict[str, str]) -> None:
    assert run(env, "online", "add", "r", "--scorer", "exact").exit_code == 0
    again = run(env, "online", "add", "r", "--scorer", "exact")
    assert again.exit_code == 2 and "409: online rule 'r' already exists" in again.output

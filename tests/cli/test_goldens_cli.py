"""`assay goldens add|list|show|diff` as a user runs them, on a database file (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from assay.cli import cli

GOLDEN = """\
name: qa
description: Questions and answers
cases:
  - id: c1
    input: question 1
    expected: answer 1
  - id: c2
    input: question 2
    expected: answer 2
  - id: c3
    input: question 3
    expected: wrong
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # Nothing listens on port 9: the CLI opens the database file itself.
    return {"ASSAY_DB": str(tmp_path / "g.duckdb"), "ASSAY_URL": "http://127.0.0.1:9"}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, auto_envvar_prefix="ASSAY")


def versions(env: dict[str, str]) -> list[dict[str, object]]:
    out = run(env, "goldens", "list", "--json")
    assert out.exit_code == 0, out.output
    items: list[dict[str, object]] = json.loads(out.stdout)
    return items


def test_add_creates_versions_by_content(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "qa.yaml"
    path.write_text(GOLDEN)
    # The first command of a new project: the database file does not exist yet.
    first = run(env, "goldens", "add", str(path))
    assert first.exit_code == 0, first.output
    assert "golden set qa: new version" in first.output and "(3 cases)" in first.output
    (v1,) = versions(env)
    assert v1["short"] in first.output and v1["case_count"] == 3

    again = run(env, "goldens", "add", str(path))
    assert again.exit_code == 0 and f"unchanged, version {v1['short']}" in again.output
    assert len(versions(env)) == 1

    path.write_text(GOLDEN.replace("expected: wrong", "expected: answer 3"))
    changed = run(env, "goldens", "add", str(path))
    assert changed.exit_code == 0 and "new version" in changed.output
    newest, oldest = versions(env)
    assert oldest["version"] == v1["version"] and newest["version"] != v1["version"]
    assert newest["short"] in changed.output

    # --name stores the same cases under another set.
    other = run(env, "goldens", "add", str(path), "--name", "qa-copy")
    assert other.exit_code == 0 and "golden set qa-copy: new version" in other.output
    assert {g["name"] for g in versions(env)} == {"qa", "qa-copy"}


def test_list_show_and_diff(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "qa.yaml"
    path.write_text(GOLDEN)
    assert run(env, "goldens", "add", str(path)).exit_code == 0
    path.write_text(GOLDEN.replace("expected: wrong", "expected: answer 3"))
    assert run(env, "goldens", "add", str(path)).exit_code == 0
    new, old = versions(env)
    assert [new["case_count"], old["case_count"]] == [3, 3]
    assert all(g["name"] == "qa" and g["source"] == str(path) for g in (new, old))

    table = run(env, "goldens", "list")
    assert table.exit_code == 0
    assert str(new["short"]) in table.output and str(old["short"]) in table.output
    assert table.output.index(str(new["short"])) < table.output.index(str(old["short"]))
    only = json.loads(run(env, "goldens", "list", "--name", "nope", "--json").stdout)
    assert only == []

    shown = run(env, "goldens", "show", "qa")
    assert shown.exit_code == 0 and f"qa {new['short']}" in shown.output
    assert '"answer 3"' in shown.output and "question 2" in shown.output
    prefix = str(old["version"])[:8]
    older = run(env, "goldens", "show", "qa", "--version", prefix, "--json")
    assert older.exit_code == 0, older.output
    data = json.loads(older.stdout)
    assert data["version"] == old["version"]
    assert [c["id"] for c in data["cases"]] == ["c1", "c2", "c3"]
    assert data["cases"][2]["expected"] == "wrong"

    diff = run(env, "goldens", "diff", "qa", prefix)
    assert diff.exit_code == 0, diff.output
    assert f"{old['short']} → {new['short']}" in diff.output
    assert "0 added, 0 removed, 1 changed, 2 unchanged" in diff.output
    assert "~ c3: expected" in diff.output and '"wrong" → "answer 3"' in diff.output
    explicit = run(env, "goldens", "diff", "qa", str(new["short"]), prefix, "--json")
    back = json.loads(explicit.stdout)
    assert back["old_version"] == new["version"] and back["new_version"] == old["version"]
    assert [c["id"] for c in back["changed"]] == ["c3"] and back["unchanged"] == 2

    # --file: the newest stored version against a file that is not stored yet.
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        GOLDEN.replace("expected: wrong", "expected: answer 3").replace(
            "  - id: c1\n    input: question 1\n    expected: answer 1\n", ""
        )
        + "  - id: c4\n    input: question 4\n"
    )
    by_file = run(env, "goldens", "diff", "qa", "--file", str(draft), "--json")
    assert by_file.exit_code == 0, by_file.output
    d = json.loads(by_file.stdout)
    assert d["old_version"] == new["version"]
    assert d["added"] == ["c4"] and d["removed"] == ["c1"] and d["changed"] == []
    text = run(env, "goldens", "diff", "qa", "--file", str(draft))
    assert "+ c4" in text.output and "- c1" in text.output
    assert len(versions(env)) == 2  # diffing a file stores nothing


def test_errors_name_the_problem(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: qa\n"
        "cases:\n"
        "  - id: c1\n"
        "    inptu: question\n"
        "  - id: c2\n"
        "    input:\n"
        "      - role: bogus\n"
        "        content: hi\n"
    )
    out = run(env, "goldens", "add", str(bad))
    assert out.exit_code == 2
    assert "3 problems" in out.output
    assert f"{bad}:4: case 'c1': inptu: unknown field 'inptu'" in out.output
    assert "did you mean 'input'" in out.output
    assert f"{bad}:3: case 'c1': input: input is missing" in out.output
    assert f"{bad}:7: case 'c2': input[0].role: role 'bogus' is not a chat role" in out.output
    assert not Path(env["ASSAY_DB"]).exists()  # nothing was stored, not even a database

    missing = run(env, "goldens", "add", str(tmp_path / "none.yaml"))
    assert missing.exit_code == 2 and "file not found" in missing.output
    json_file = tmp_path / "cases.json"
    json_file.write_text("[]")
    wrong_type = run(env, "goldens", "add", str(json_file))
    assert wrong_type.exit_code == 2 and ".jsonl" in wrong_type.output

    good = tmp_path / "qa.yaml"
    good.write_text(GOLDEN)
    assert run(env, "goldens", "add", str(good)).exit_code == 0
    unknown = run(env, "goldens", "show", "nope")
    assert unknown.exit_code == 1 and "no golden set 'nope'" in unknown.output
    assert "assay goldens add" in unknown.output
    no_version = run(env, "goldens", "show", "qa", "--version", "ffffffff")
    assert no_version.exit_code == 1 and "no version 'ffffffff'" in no_version.output
    no_old = run(env, "goldens", "diff", "qa")
    assert no_old.exit_code == 2 and "--file" in no_old.output

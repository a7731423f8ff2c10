"""The CLI as a user runs it, against a database file when no server answers."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from assay import synthetic
from assay.cli import cli
from assay.otlp import decode_request
from assay.pricing import load_prices
from assay.store.duckdb import DuckDBStore


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    db = str(tmp_path / "cli.duckdb")
    store = DuckDBStore(db)
    for req in synthetic.batches(200, 100, seed=5):
        store.insert_spans(decode_request(req, "default", load_prices()).spans)
    store.close()
    # Port 9 (discard) has no assay server: the CLI opens the file itself.
    return {"ASSAY_DB": db, "ASSAY_URL": "http://127.0.0.1:9"}


def run(env: dict[str, str], *args: str) -> click.testing.Result:
    result = CliRunner().invoke(cli, list(args), env=env, auto_envvar_prefix="ASSAY")
    return result


def test_traces_list_show_and_stats(env: dict[str, str]) -> None:
    out = run(env, "traces", "list", "--json", "--limit", "3")
    assert out.exit_code == 0, out.output
    page = json.loads(out.output)
    assert len(page["items"]) == 3 and page["next_cursor"]
    tid = page["items"][0]["trace_id"]
    shown = run(env, "traces", "show", tid)
    assert shown.exit_code == 0 and "POST /" in shown.output and "ChatCompletion" in shown.output
    stats = json.loads(run(env, "stats", "--group-by", "model", "--json").output)
    assert stats["group_by"] == "model"
    assert sum(r["calls"] for r in stats["rows"]) == 100  # two LLM calls per 4-span trace
    table = run(env, "stats", "--bucket", "1h", "--group-by", "route")
    assert table.exit_code == 0 and "p95 ms" in table.output


def test_filters_and_unpriced(env: dict[str, str]) -> None:
    out = run(env, "traces", "list", "--json", "--model", "gpt-4o", "--limit", "1000")
    assert all("gpt-4o" in t["models"] for t in json.loads(out.output)["items"])
    unpriced = run(env, "models", "unpriced", "--json")
    assert [m["model"] for m in json.loads(unpriced.output)] == ["llama-3-70b-local"]


def test_keys_and_projects(env: dict[str, str]) -> None:
    created = run(env, "keys", "create", "team-a")
    assert created.exit_code == 0, created.output
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith("assay_")
    listed = json.loads(run(env, "keys", "list", "--json").output)
    assert listed[0]["project"] == "team-a" and secret not in json.dumps(listed)
    assert "team-a" in run(env, "projects", "list").output
    # The key reads its own (empty) project, not the default one.
    own = run(env | {"ASSAY_API_KEY": secret}, "traces", "list", "--json")
    assert json.loads(own.output)["items"] == []
    revoked = run(env, "keys", "revoke", listed[0]["key_id"])
    assert revoked.exit_code == 0
    denied = run(env | {"ASSAY_API_KEY": secret}, "traces", "list")
    assert denied.exit_code == 1 and "401" in denied.output


def test_errors_are_clear(env: dict[str, str], tmp_path: Path) -> None:
    bad = run(env, "traces", "list", "--since", "yesterdayish")
    assert bad.exit_code == 1 and "ISO-8601" in bad.output
    missing = run({"ASSAY_DB": str(tmp_path / "none.duckdb"), "ASSAY_URL": "http://127.0.0.1:9"},
                  "stats")
    assert missing.exit_code == 1 and "assay serve" in missing.output
    badport = run(env | {"ASSAY_PORT": "x"}, "stats")
    assert badport.exit_code == 2 and "ASSAY_PORT" in badport.output


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


@pytest.mark.parametrize("path", _commands(cli), ids=lambda p: " ".join(p) or "assay")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "-h"])
    assert result.exit_code == 0 and "Usage:" in result.output
    assert len(result.output.splitlines()) > 3

"""`assay monitors` as a user runs it against a database file (no server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result

from assay.cli import cli
from assay.store.duckdb import DuckDBStore
from drift_support import traffic


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A database whose last day's answers are twice as long as the day before's."""
    path = tmp_path_factory.mktemp("monitors") / "m.duckdb"
    store = DuckDBStore(str(path))
    now = datetime.now(UTC)
    store.insert_spans(traffic(40, now - timedelta(days=2) + timedelta(hours=1), seed=1))
    store.insert_spans(
        traffic(40, now - timedelta(days=1) + timedelta(hours=1), seed=2, longer_outputs=True)
    )
    store.close()
    # Nothing listens on port 9: the app runs in-process on the database file.
    yield {"ASSAY_DB": str(path), "ASSAY_URL": "http://127.0.0.1:9", "ASSAY_EMBEDDER": "hashing"}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, auto_envvar_prefix="ASSAY")


def test_add_list_run_history_and_rm(env: dict[str, str]) -> None:
    added = run(env, "monitors", "add", "lengths", "--every", "1h", "--window", "1d",
                "--reference", "2d..1d", "--features", "output_length,latency_ms",
                "--service", "support-bot", "--webhook", "http://127.0.0.1:9/hook")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "monitor lengths saved: every 1h, window 1d, reference 2d..1d" in added.output
    assert "alerts to 1 webhook(s)" in added.output

    listed = run(env, "monitors", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (monitor,) = json.loads(listed.output)
    assert monitor["filters"] == {"service": "support-bot"} and monitor["state"] is None

    ran = run(env, "monitors", "run", "lengths", "--fail-on-drift")
    assert ran.exit_code == 1, ran.output
    assert "DRIFT in 1 of 2 tested features: output_length" in ran.output
    assert "monitor lengths: state drift (was not yet decided)" in ran.output

    # The webhook is down: the alert stays pending for the next server to retry.
    alerts = run(env, "monitors", "alerts", "lengths", "--json")
    (alert,) = json.loads(alerts.output)
    assert (alert["previous_state"], alert["state"]) == (None, "drift")
    assert alert["status"] == "pending" and alert["attempts"] == 1
    assert "ConnectError" in alert["error"] and alert["next_attempt_at"] is not None
    assert "— → drift" in run(env, "monitors", "alerts", "lengths").output

    history = run(env, "monitors", "history", "lengths", "--json")
    (result,) = json.loads(history.output)
    assert result["state"] == "drift" and result["trigger"] == "manual"
    table = run(env, "monitors", "history", "lengths")
    assert "output_length (KS D" in table.output and "manual" in table.output
    assert "drift" in run(env, "monitors", "list").output

    disabled = run(env, "monitors", "disable", "lengths")
    assert disabled.exit_code == 0 and "disabled: not scheduled" in disabled.output
    assert run(env, "monitors", "rm", "lengths").exit_code == 0
    gone = run(env, "monitors", "history", "lengths")
    assert gone.exit_code == 2 and "404: no monitor 'lengths'" in gone.output


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--every", "5s", "--reference", "2d..1d"], "minimum of 1m"),
        (["--reference", "2026-01-01..1d"], "fixed time"),
        ([], "give exactly one reference"),
        (["--reference", "2d..1d", "--webhook", "hooks.example.com"], "not an http(s) URL"),
        (["--reference", "2d..1d", "--features", "latency"], "unknown drift feature"),
        (["--reference", "2d..1d", "--attr", "tenant"], "must be key=value"),
    ],
)
def test_bad_monitors_are_refused_with_exit_2(
    env: dict[str, str], args: list[str], reason: str
) -> None:
    out = run(env, "monitors", "add", "bad", *args)
    assert out.exit_code == 2, out.output
    assert reason in out.output


def test_unknown_monitor_and_duplicate_names(env: dict[str, str]) -> None:
    out = run(env, "monitors", "run", "nope")
    assert out.exit_code == 2 and "no monitor 'nope'" in out.output
    args = ["monitors", "add", "twice", "--reference", "2d..1d"]
    assert run(env, *args).exit_code == 0
    again = run(env, *args)
    assert again.exit_code == 2 and "409: monitor 'twice' already exists" in again.output
    assert run(env, "monitors", "rm", "twice").exit_code == 0

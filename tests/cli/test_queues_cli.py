"""`assay queues …` and `assay goldens promote` as a user runs them, on a database file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from assay.cli import cli
from assay.model import Span
from assay.store.duckdb import DuckDBStore
from drift_support import DAY1, traffic


@pytest.fixture
def spans(tmp_path: Path) -> list[Span]:
    store = DuckDBStore(str(tmp_path / "q.duckdb"))
    out = traffic(30, DAY1, seed=5)
    store.insert_spans(out)
    store.close()
    return out


@pytest.fixture
def env(tmp_path: Path, spans: list[Span]) -> dict[str, str]:
    # Nothing listens on port 9: the CLI opens the database file itself.
    return {"ASSAY_DB": str(tmp_path / "q.duckdb"), "ASSAY_URL": "http://127.0.0.1:9"}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, auto_envvar_prefix="ASSAY")


def test_create_label_skip_show_and_remove(env: dict[str, str], spans: list[Span]) -> None:
    created = run(
        env, "queues", "create", "weekly", "--strategy", "stratified", "--field", "route",
        "--size", "6", "--seed", "8", "--label", "topic", "--values", "billing,other",
        "--instructions", "What is it about?", "--since", "2026-03-01", "--as", "lead",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "queue weekly: 6 items chosen by stratified from 30 (seed 8)" in created.output
    listed = json.loads(run(env, "queues", "list", "--json").stdout)
    assert [q["name"] for q in listed] == ["weekly"]
    assert listed[0]["params"]["filters"] == {"start": "2026-03-01T00:00:00+00:00"}

    shown = run(env, "queues", "next", "weekly", "--as", "ana")
    assert shown.exit_code == 0, shown.output
    item = json.loads(run(env, "queues", "next", "weekly", "--as", "ana", "--json").stdout)
    assert item["item"]["id"] == 1  # asking again shows the item ana holds
    assert "item 1 of 6 · claimed by ana" in shown.output
    assert item["item"]["input"]["text"][:40] in shown.output.replace("\n", " ")
    assert "What is it about?" in shown.output and "billing | other" in shown.output
    assert "assay queues label weekly 1 --value VALUE --as ana" in shown.output

    bad = run(env, "queues", "label", "weekly", "1", "--value", "refunds", "--as", "ana")
    assert bad.exit_code == 1 and "must be one of billing, other" in bad.output
    good = run(env, "queues", "label", "weekly", "1", "--value", "billing", "--as", "ana")
    assert good.exit_code == 0 and 'topic = "billing" by ana (1 of 6 done)' in good.output
    skipped = run(env, "queues", "skip", "weekly", "2", "--as", "bob", "--reason", "spam")
    assert skipped.exit_code == 0 and "item 2 skipped by bob (2 of 6 done)" in skipped.output
    assert run(env, "queues", "next", "weekly", "--as", "cy").exit_code == 0
    released = run(env, "queues", "release", "weekly", "3", "--as", "cy")
    assert released.exit_code == 0 and "item 3 released" in released.output

    show = run(env, "queues", "show", "weekly", "--items")
    assert show.exit_code == 0, show.output
    assert "6 items: 1 labelled, 1 skipped, 0 claimed, 4 remaining" in show.output
    assert "stratum /chat" in show.output and "by labeller" in show.output
    done = json.loads(run(env, "queues", "show", "weekly", "--status", "labelled", "--json").stdout)
    assert [i["id"] for i in done["item_list"]] == [1] and done["created_by"] == "lead"

    assert run(env, "queues", "rm", "weekly").exit_code == 0
    gone = run(env, "queues", "show", "weekly")
    assert gone.exit_code == 1 and "no queue named 'weekly'" in gone.output


def test_create_refusals_and_required_labeller(env: dict[str, str], tmp_path: Path) -> None:
    no_label = run(env, "queues", "create", "q", "--strategy", "random", "--label", "ok")
    assert no_label.exit_code == 1 and "--values pass,fail" in no_label.output
    lease = run(env, "queues", "create", "q", "--strategy", "random", "--label", "ok",
                "--boolean", "--lease", "soon")  # fmt: skip
    assert lease.exit_code == 2 and "--lease 'soon' is not a duration" in lease.output
    both = run(env, "queues", "create", "q", "--strategy", "drift", "--label", "ok", "--boolean",
               "--monitor", "m", "--drift-reference", "7d..1d")  # fmt: skip
    assert both.exit_code == 2 and "give one of --monitor" in both.output
    report = tmp_path / "r.json"
    report.write_text("not json")
    unreadable = run(env, "queues", "create", "q", "--strategy", "drift", "--label", "ok",
                     "--boolean", "--drift-report", str(report))  # fmt: skip
    assert unreadable.exit_code == 2 and "is not JSON" in unreadable.output
    report.write_text(json.dumps({"features": []}))
    empty = run(env, "queues", "create", "q", "--strategy", "drift", "--label", "ok",
                "--boolean", "--drift-report", str(report))  # fmt: skip
    assert empty.exit_code == 1 and "no examples of drifted spans" in empty.output
    who = run(env, "queues", "next", "q")
    assert who.exit_code == 2 and "--as" in who.output


def test_promote_and_show_where_cases_came_from(env: dict[str, str], spans: list[Span]) -> None:
    trace = spans[0].trace_id
    out = run(env, "goldens", "promote", trace, "--to", "support", "--expected", "Refund in 5 days",
              "--as", "ana")  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "golden set support: (new set) →" in out.output and f"trace-{trace[:16]}" in out.output
    again = run(env, "goldens", "promote", trace, "--to", "support")
    assert again.exit_code == 0 and "nothing stored" in again.output
    second = run(env, "goldens", "promote", spans[4].trace_id, "--to", "support", "--json")
    data = json.loads(second.stdout)
    assert data["golden"]["case_count"] == 2 and data["case"]["expected"] is None
    assert "no expected answer" not in second.stdout  # --json prints only JSON
    shown = run(env, "goldens", "show", "support")
    assert shown.exit_code == 0, shown.output
    assert f"trace {trace[:12]} by ana" in shown.output
    missing = run(env, "goldens", "promote", "ab" * 16, "--to", "support")
    assert missing.exit_code == 1 and "404: no trace" in missing.output

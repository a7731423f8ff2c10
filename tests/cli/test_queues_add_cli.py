"""`assay queues create --strategy hand-picked` and `assay queues add` as a user runs them,
on a database file."""

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
    out = traffic(6, DAY1, seed=5)
    store.insert_spans(out)
    store.close()
    return out


@pytest.fixture
def env(tmp_path: Path, spans: list[Span]) -> dict[str, str]:
    # Nothing listens on port 9: the CLI opens the database file itself.
    return {"ASSAY_DB": str(tmp_path / "q.duckdb"), "ASSAY_URL": "http://127.0.0.1:9"}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, auto_envvar_prefix="ASSAY")


def test_create_empty_and_add_traces(env: dict[str, str], spans: list[Span]) -> None:
    roots = [s for s in spans if s.parent_span_id is None]
    created = run(
        env, "queues", "create", "picked", "--strategy", "hand-picked", "--label", "topic",
        "--values", "billing,other", "--instructions", "What is it about?", "--as", "lead",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "queue picked: hand-picked, empty (at most 10,000 items); label topic" in (
        created.output
    )
    assert "assay queues add picked TRACE_ID..." in created.output

    a, b, c = roots[:3]
    child = next(s for s in spans if s.trace_id == c.trace_id and s.parent_span_id)
    added = run(
        env, "queues", "add", "picked", a.trace_id, b.trace_id,
        "--span", f"{c.trace_id}:{child.span_id}", "--reason", "escalated", "--as", "ana",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added 3 items to picked (3 items, 3 waiting for a label)" in added.output
    again = run(env, "queues", "add", "picked", a.trace_id)
    assert again.exit_code == 0, again.output
    assert "added 0 items to picked; 1 was already in it (3 items" in again.output
    out = json.loads(run(env, "queues", "add", "picked", a.trace_id, c.trace_id, "--json").stdout)
    assert (out["added"], out["already_present"], out["queue"]["items"]) == (1, 1, 4)

    shown = json.loads(run(env, "queues", "show", "picked", "--items", "--json").stdout)
    assert shown["strategy"] == "hand-picked" and shown["created_by"] == "lead"
    assert [(i["trace_id"], i["span_id"]) for i in shown["item_list"]] == [
        (a.trace_id, a.span_id),
        (b.trace_id, b.span_id),
        (c.trace_id, child.span_id),
        (c.trace_id, c.span_id),
    ]
    assert shown["item_list"][0]["context"]["reason"]["added_by"] == "ana"
    text = run(env, "queues", "show", "picked").output
    assert "picked · hand-picked · label topic (category)" in text and "seed" not in text
    item = run(env, "queues", "next", "picked", "--as", "bo")
    assert item.exit_code == 0 and "item 1 of 4" in item.output


def test_add_refusals(env: dict[str, str], spans: list[Span]) -> None:
    root = next(s for s in spans if s.parent_span_id is None)
    sampled = run(
        env, "queues", "create", "weekly", "--strategy", "random", "--size", "2", "--seed", "1",
        "--label", "ok", "--boolean",
    )  # fmt: skip
    assert sampled.exit_code == 0, sampled.output
    refused = run(env, "queues", "add", "weekly", root.trace_id)
    assert refused.exit_code == 1
    text = " ".join(refused.output.split())
    assert "is a random sample" in text and "--strategy hand-picked --label ok --boolean" in text
    assert "give at least one TRACE_ID" in run(env, "queues", "add", "weekly").output
    bad_span = run(env, "queues", "add", "weekly", "--span", root.trace_id)
    assert bad_span.exit_code == 2 and "must be TRACE_ID:SPAN_ID" in bad_span.output
    missing = run(env, "queues", "add", "nope", root.trace_id)
    assert missing.exit_code == 1 and "no queue named 'nope'" in missing.output
    filtered = run(
        env, "queues", "create", "p", "--strategy", "hand-picked", "--label", "ok", "--boolean",
        "--since", "2026-03-01",
    )  # fmt: skip
    assert filtered.exit_code == 1
    assert "takes no filters or seed (got start)" in " ".join(filtered.output.split())

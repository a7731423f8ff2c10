"""``assay feedback``: attach scores, labels and comments to traces, and list them."""

from __future__ import annotations

import json
from typing import Any

import click

from assay.cli.common import (
    check,
    connect,
    console,
    output_options,
    print_json,
    print_table,
    settings_from_env,
)
from assay.feedback import SOURCES


def _value(raw: str | None) -> Any:
    if raw is None:
        return None
    lowered = raw.strip().lower()
    if lowered in ("true", "yes", "pass", "up"):
        return True
    if lowered in ("false", "no", "fail", "down"):
        return False
    try:
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        return raw


@click.group()
def feedback() -> None:
    """Feedback: scores, labels and comments on traces, with who gave them."""


@feedback.command("add")
@click.argument("trace_id")
@click.option("--name", required=True, help="What is judged: helpfulness, thumbs, topic …")
@click.option("--value", help="A number (score), true/false (thumbs, pass/fail) or a category.")
@click.option("--comment", help="Free text (may stand alone).")
@click.option("--span", "span_id", help="The span judged (default: the whole trace).")
@click.option("--source", type=click.Choice(SOURCES), default="reviewer")
@click.option("--author", help="Who gave it.")
@click.option("--id", "feedback_id", help="Your id for it: adding the same id again is a no-op.")
@click.option("--project", help="Project (admin / loopback only).")
def add(
    trace_id: str,
    name: str,
    value: str | None,
    comment: str | None,
    span_id: str | None,
    source: str,
    author: str | None,
    feedback_id: str | None,
    project: str | None,
) -> None:
    """Attach feedback to TRACE_ID."""
    item = {
        "trace_id": trace_id,
        "span_id": span_id,
        "name": name,
        "value": _value(value),
        "comment": comment,
        "source": source,
        "author": author,
        "id": feedback_id,
    }
    params = {"project": project} if project else {}
    with connect(settings_from_env(), create=True) as client:
        out = check(client.post("/api/v1/feedback", json={"items": [item]}, params=params))
    stored = out["items"][0]
    console.print(
        f"feedback {stored['id']} on trace {stored['trace_id']}: {stored['name']} = "
        f"{json.dumps(stored['value'])}",
        highlight=False,
    )


@feedback.command("list")
@click.option("--trace", "trace_id", help="Only this trace.")
@click.option("--name", help="Only this name.")
@click.option("--source", type=click.Choice(SOURCES))
@click.option("--limit", type=click.IntRange(1, 10_000), default=100)
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def list_(
    trace_id: str | None,
    name: str | None,
    source: str | None,
    limit: int,
    project: str | None,
    as_json: bool,
) -> None:
    """Feedback, newest first."""
    params: dict[str, Any] = {"limit": limit}
    for key, v in (
        ("trace_id", trace_id),
        ("name", name),
        ("source", source),
        ("project", project),
    ):
        if v:
            params[key] = v
    with connect(settings_from_env()) as client:
        items = check(client.get("/api/v1/feedback", params=params))["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        "feedback",
        ["trace", "span", "name", "value", "comment", "source", "author", "at (UTC)"],
        [
            [
                f["trace_id"],
                f["span_id"] or "",
                f["name"],
                "" if f["value"] is None else json.dumps(f["value"]),
                (f["comment"] or "")[:60],
                f["source"],
                f["author"] or "",
                f["created_at"][:19],
            ]
            for f in items
        ],
    )

"""``assay goldens``: add, list, show and diff versions of golden sets."""

from __future__ import annotations

import json
from pathlib import Path
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
from assay.goldens import (
    GoldenSet,
    GoldenSetError,
    case_from_dict,
    case_to_dict,
    diff_golden_sets,
    load_golden_set,
)


def load_file(path: str, name: str | None = None) -> GoldenSet:
    """A golden set from a file, or a usage error listing every problem in it."""
    try:
        return load_golden_set(Path(path), name=name)
    except GoldenSetError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _stored(client: Any, name: str, version: str | None, project: str | None) -> GoldenSet:
    params = {"project": project} if project else {}
    if version:
        params["version"] = version
    data = check(client.get(f"/api/v1/goldens/{name}", params=params))
    return GoldenSet(
        name=data["name"],
        description=data.get("description"),
        cases=tuple(case_from_dict(c) for c in data["cases"]),
        version=data["version"],
        source=data.get("source"),
    )


@click.group()
def goldens() -> None:
    """Golden sets: versioned cases (YAML, JSONL or CSV) that evaluations run."""


@goldens.command("add")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--name", help="Golden set name (default: the file's `name`, else its stem).")
@click.option("--project", help="Project (admin / loopback only).")
def add(path: str, name: str | None, project: str | None) -> None:
    """Validate a golden-set file and store it as a new version (named by its content
    hash; adding unchanged cases again creates nothing)."""
    golden = load_file(path, name)
    body = {
        "name": golden.name,
        "description": golden.description,
        "source": str(path),
        "cases": [case_to_dict(c) for c in golden.cases],
    }
    params = {"project": project} if project else {}
    # Like `eval run`, adding creates the database file when there is none yet.
    with connect(settings_from_env(), create=True) as client:
        stored = check(client.post("/api/v1/goldens", json=body, params=params))
    what = "new version" if stored["created"] else "unchanged, version"
    console.print(
        f"golden set [bold]{stored['name']}[/]: {what} {stored['short']} "
        f"({stored['case_count']} cases)",
        highlight=False,
    )


@goldens.command("list")
@click.option("--name", help="Only this golden set's versions.")
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def list_(name: str | None, project: str | None, as_json: bool) -> None:
    """Stored golden-set versions, newest first."""
    params = {k: v for k, v in {"name": name, "project": project}.items() if v}
    with connect(settings_from_env()) as client:
        items = check(client.get("/api/v1/goldens", params=params))["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        "golden sets",
        ["name", "version", "cases", "added (UTC)", "source"],
        [
            [g["name"], g["short"], g["case_count"], g["created_at"][:19], g.get("source")]
            for g in items
        ],
    )


@goldens.command("show")
@click.argument("name")
@click.option("--version", "version", help="Version hash or prefix (default: newest).")
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def show(name: str, version: str | None, project: str | None, as_json: bool) -> None:
    """A stored version's cases."""
    with connect(settings_from_env()) as client:
        golden = _stored(client, name, version, project)
    if as_json:
        print_json(
            {
                "name": golden.name,
                "version": golden.version,
                "cases": [case_to_dict(c) for c in golden.cases],
            }
        )
        return
    rows = []
    for c in golden.cases:
        text = c.input if isinstance(c.input, str) else json.dumps(c.input, ensure_ascii=False)
        expected = "" if c.expected is None else json.dumps(c.expected, ensure_ascii=False)
        rows.append([c.id, text[:80], expected[:40], _origin(c.metadata.get("provenance"))])
    columns = ["id", "input", "expected", "from"]
    if not any(r[3] for r in rows):  # no promoted case: keep the plain table
        columns, rows = columns[:3], [r[:3] for r in rows]
    print_table(f"{golden.name} {golden.short}", columns, rows)


def _origin(provenance: Any) -> str:
    """Where a promoted case came from, for a table cell."""
    if not isinstance(provenance, dict) or not provenance.get("trace_id"):
        return ""
    by = f" by {provenance['promoted_by']}" if provenance.get("promoted_by") else ""
    at = str(provenance.get("promoted_at") or "")[:10]
    return f"trace {str(provenance['trace_id'])[:12]}{by} {at}".strip()


@goldens.command("diff")
@click.argument("name")
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False),
    help="Compare the newest stored version with this file instead.",
)
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def diff(
    name: str,
    old: str | None,
    new: str | None,
    file: str | None,
    project: str | None,
    as_json: bool,
) -> None:
    """What changed between two stored versions (OLD and NEW hash prefixes; NEW defaults
    to the newest), or between the newest version and a file (--file)."""
    with connect(settings_from_env()) as client:
        if file is not None:
            before = _stored(client, name, old, project)
            after = load_file(file, name)
        else:
            if old is None:
                raise click.UsageError("give the OLD version (see `assay goldens list`) or --file")
            before = _stored(client, name, old, project)
            after = _stored(client, name, new, project)
    result = diff_golden_sets(before, after)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"{name}: {before.short} → {after.short}: {len(result.added)} added, "
        f"{len(result.removed)} removed, {len(result.changed)} changed, "
        f"{result.unchanged} unchanged",
        highlight=False,
    )
    for cid in result.added:
        console.print(f"  [green]+ {cid}[/]", highlight=False)
    for cid in result.removed:
        console.print(f"  [red]- {cid}[/]", highlight=False)
    for change in result.changed:
        console.print(f"  [yellow]~ {change.id}[/]: {', '.join(change.fields)}", highlight=False)
        for f in change.changes:
            console.print(
                f"      {f.field}: {json.dumps(f.old, ensure_ascii=False)[:60]} → "
                f"{json.dumps(f.new, ensure_ascii=False)[:60]}",
                highlight=False,
            )


@goldens.command("promote")
@click.argument("trace_id")
@click.option("--to", "golden", required=True, help="Golden set to add the case to.")
@click.option(
    "--expected",
    help="The expected answer (default: the trace's latest reviewer label, when it is a "
    "category or a comment).",
)
@click.option("--id", "case_id", help="Case id (default: trace-<first 16 hex of the trace>).")
@click.option("--span", "span_id", help="The span whose input becomes the case (default: root).")
@click.option("--label", "label", help="Take the expected answer from this label name only.")
@click.option("--as", "author", envvar="ASSAY_LABELLER", help="Who promotes it (provenance).")
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def promote(
    trace_id: str,
    golden: str,
    expected: str | None,
    case_id: str | None,
    span_id: str | None,
    label: str | None,
    author: str | None,
    project: str | None,
    as_json: bool,
) -> None:
    """Add TRACE_ID to a golden set as a new case (a new version; the set is created when
    it does not exist). The case keeps its provenance in metadata.provenance."""
    body: dict[str, Any] = {"trace_id": trace_id, "span_id": span_id, "id": case_id}
    body.update(author=author, label=label)
    if expected is not None:
        body["expected"] = expected
    params = {"project": project} if project else {}
    with connect(settings_from_env(), create=True) as client:
        url = f"/api/v1/goldens/{golden}/promote"
        out = check(client.post(url, json=body, params=params))
    if as_json:
        print_json(out)
        return
    g, case = out["golden"], out["case"]
    origin = case["metadata"].get("provenance", {})
    if not out["created"]:
        console.print(
            f"trace {trace_id} is already case {case['id']} of {g['name']} {g['short']}; "
            "nothing stored",
            highlight=False,
            markup=False,
        )
        return
    before = (out["previous_version"] or "")[:12] or "(new set)"
    console.print(
        f"golden set {g['name']}: {before} → {g['short']} ({g['case_count']} cases), added "
        f"case {case['id']} from trace {origin.get('trace_id')} span {origin.get('span_id')}",
        highlight=False,
        markup=False,
    )
    if case.get("expected") is None:
        console.print(
            "  note: the case has no expected answer (pass --expected, or label the trace "
            "with a category first)",
            highlight=False,
            markup=False,
        )

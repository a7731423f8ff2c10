"""``assay queues create|add|list|show|next|label|skip|release|rm``: annotation queues —
pick what people should label (by a strategy, or by hand), hand items out one at a time,
store the labels as feedback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
from rich.markup import escape

from assay.cli.common import (
    check,
    connect,
    console,
    filter_options,
    filter_params,
    output_options,
    print_json,
    print_table,
    settings_from_env,
)
from assay.query import QueryError, parse_duration

_STRATEGIES = ("random", "stratified", "drift", "low-confidence", "disagreement", "hand-picked")
_FIELDS = (
    "model",
    "service",
    "route",
    "release",
    "provider",
    "kind",
    "status",
    "name",
    "environment",
    "operation",
)


def _path(name: str, suffix: str = "") -> str:
    return f"/api/v1/queues/{quote(name, safe='')}{suffix}"


def _params(project: str | None) -> dict[str, str]:
    return {"project": project} if project else {}


project_option = click.option("--project", help="Project (admin / loopback only).")
labeller_option = click.option(
    "--as",
    "labeller",
    required=True,
    envvar="ASSAY_LABELLER",
    help="Who you are (recorded with every claim and label); env ASSAY_LABELLER.",
)


@click.group()
def queues() -> None:
    """Annotation queues: choose spans for people to label (random, stratified, drifted,
    low judge confidence, judge disagreement, or hand-picked trace by trace), then claim,
    label and skip items."""


def _drift_file(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise click.UsageError(
            f"{path} is not JSON ({exc}); save `assay drift check --json` to a file"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("report"), dict):
        data = data["report"]  # a monitor result as `assay monitors history --json` shows it
    if not isinstance(data, dict):
        raise click.UsageError(f"{path} must hold a drift report object")
    return data


@queues.command("create")
@click.argument("name")
@click.option("--strategy", type=click.Choice(_STRATEGIES), required=True, help="How to choose.")
@click.option(
    "--size",
    type=click.IntRange(1, 10_000),
    help="Items to choose (default 200); hand-picked: the most it may hold (default 10,000).",
)
@click.option("--label", "label_name", required=True, help="Feedback name of the labels.")
@click.option("--values", help="Allowed categories, e.g. pass,fail or billing,shipping,other.")
@click.option("--scale", help="Allowed numbers LOW-HIGH, e.g. 1-5 (0.0-1.0 allows decimals).")
@click.option("--boolean", is_flag=True, help="Pass/fail labels stored as true/false.")
@click.option("--instructions", help="What labellers should judge (shown with every item).")
@click.option("--seed", type=click.IntRange(0), help="Seed of the selection (default: random).")
@click.option(
    "--unit",
    type=click.Choice(["trace", "span"]),
    default="trace",
    help="random/stratified: sample traces (labelled whole, shown by their root span) or spans.",
)
@click.option("--field", type=click.Choice(_FIELDS), help="stratified: the field to split on.")
@click.option(
    "--allocation",
    type=click.Choice(["proportional", "equal"]),
    default="proportional",
    help="stratified: items per stratum in proportion to its size, or the same for each.",
)
@click.option("--judge", help="low-confidence/disagreement: feedback name of judge scores.")
@click.option("--threshold", type=float, default=0.5, help="The judge's pass threshold.")
@click.option("--monitor", help="drift: examples of this monitor's latest drifted result.")
@click.option(
    "--drift-report",
    type=click.Path(dir_okay=False),
    help="drift: a report saved from `assay drift check --json`.",
)
@click.option("--drift-reference", help="drift: run a check now against this range (7d..1d).")
@click.option("--drift-current", default="last 1d", help="drift: the checked window.")
@click.option("--embedder", help="drift: the embedder of the check run now.")
@click.option("--lease", default="30m", help="How long a claim holds: 30m, 1h …")
@click.option("--as", "created_by", envvar="ASSAY_LABELLER", help="Who creates the queue.")
@filter_options
@output_options
def create_command(
    name: str,
    strategy: str,
    size: int | None,
    label_name: str,
    values: str | None,
    scale: str | None,
    boolean: bool,
    instructions: str | None,
    seed: int | None,
    unit: str,
    field: str | None,
    allocation: str,
    judge: str | None,
    threshold: float,
    monitor: str | None,
    drift_report: str | None,
    drift_reference: str | None,
    drift_current: str,
    embedder: str | None,
    lease: str,
    created_by: str | None,
    as_json: bool,
    **filters: Any,
) -> None:
    """Create queue NAME: choose up to --size spans matching the filters by --strategy.

    \b
    assay queues create weekly --strategy random --size 200 --label helpfulness --boolean
    assay queues create by-route --strategy stratified --field route --label topic \\
        --values billing,shipping,other --since 7d
    assay queues create unsure --strategy low-confidence --judge helpfulness --boolean
    assay queues create drifted --strategy drift --monitor input-drift --scale 1-5 \\
        --label quality
    assay queues create picked --strategy hand-picked --label quality --boolean

    A hand-picked queue starts empty and takes no filters: add traces to it with
    `assay queues add` (or from a trace's page in the dashboard).
    """
    params = filter_params(filters)
    project = params.pop("project", None)
    try:
        lease_seconds = int(parse_duration(lease, "--lease").total_seconds())
    except QueryError as exc:
        raise click.UsageError(str(exc)) from None
    sources = [x for x in (monitor, drift_report, drift_reference) if x]
    if len(sources) > 1:
        raise click.UsageError("give one of --monitor, --drift-report or --drift-reference")
    drift: dict[str, Any] | None = None
    if monitor:
        drift = {"monitor": monitor}
    elif drift_report:
        drift = {"report": _drift_file(drift_report)}
    elif drift_reference:
        drift = {"check": {"reference": drift_reference, "current": drift_current}}
        if embedder:
            drift["check"]["embedder"] = embedder
    body: dict[str, Any] = {
        "name": name,
        "strategy": strategy,
        "size": size,  # None: the strategy's default
        "label": {"name": label_name, "values": values, "scale": scale, "boolean": boolean},
        "instructions": instructions,
        "seed": seed,
        "unit": unit,
        "field": field,
        "allocation": allocation,
        "judge": judge,
        "threshold": threshold,
        "lease_seconds": lease_seconds,
        "filters": params,
        "drift": drift,
        "created_by": created_by,
    }
    with connect(settings_from_env(), create=True) as client:
        queue = check(client.post("/api/v1/queues", json=body, params=_params(project)))
    if as_json:
        print_json(queue)
        return
    if queue["strategy"] == "hand-picked":
        console.print(
            f"queue [bold]{escape(queue['name'])}[/]: hand-picked, empty (at most "
            f"{queue['size']:,} items); label {escape(queue['label']['name'])}",
            highlight=False,
        )
        console.print(
            f"  add traces: assay queues add {name} TRACE_ID...", highlight=False, markup=False
        )
        return
    console.print(
        f"queue [bold]{queue['name']}[/]: {queue['items']} items chosen by {queue['strategy']} "
        f"from {queue['population']:,} (seed {queue['seed']}); label "
        f"{queue['label']['name']}",
        highlight=False,
    )
    for note in queue["notes"]:
        console.print(f"  note: {note}", highlight=False, markup=False)
    console.print(f"  start labelling: assay queues next {name} --as YOU", highlight=False)


def _span_key(value: str) -> dict[str, str]:
    trace_id, sep, span_id = value.partition(":")
    if not sep or not trace_id or not span_id:
        raise click.UsageError(
            f"--span {value!r} must be TRACE_ID:SPAN_ID, e.g. --span "
            "0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331"
        )
    return {"trace_id": trace_id, "span_id": span_id}


@queues.command("add")
@click.argument("name")
@click.argument("trace_ids", nargs=-1)
@click.option(
    "--span",
    "spans",
    multiple=True,
    metavar="TRACE_ID:SPAN_ID",
    help="Add one span of a trace instead of the trace (repeatable).",
)
@click.option("--reason", help="Why these were picked (stored with each item).")
@click.option("--as", "added_by", envvar="ASSAY_LABELLER", help="Who picked them.")
@project_option
@output_options
def add_command(
    name: str,
    trace_ids: tuple[str, ...],
    spans: tuple[str, ...],
    reason: str | None,
    added_by: str | None,
    project: str | None,
    as_json: bool,
) -> None:
    """Add traces (each shown by its root span) to hand-picked queue NAME.

    \b
    assay queues add picked 0af7651916cd43dd8448eb211c80319c --reason "customer escalated"
    assay queues add picked --span 0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331

    A trace the queue already holds is not added again. Random and stratified queues (and
    those chosen by a rule) keep the items they were made with: create one with
    `assay queues create NAME --strategy hand-picked --label L --boolean` first.
    """
    if not trace_ids and not spans:
        raise click.UsageError("give at least one TRACE_ID (or --span TRACE_ID:SPAN_ID)")
    body = {
        "trace_ids": list(trace_ids),
        "spans": [_span_key(v) for v in spans],
        "added_by": added_by,
        "reason": reason,
    }
    with connect(settings_from_env()) as client:
        out = check(client.post(_path(name, "/items"), json=body, params=_params(project)))
    if as_json:
        print_json(out)
        return
    held = out["already_present"]
    said = f"added {out['added']} item{'' if out['added'] == 1 else 's'} to {name}"
    if held:
        said += f"; {held} {'was' if held == 1 else 'were'} already in it"
    console.print(
        f"{said} ({out['queue']['items']} items, {out['queue']['progress']['remaining']} "
        "waiting for a label)",
        highlight=False,
        markup=False,
    )


def _progress_cells(p: dict[str, Any]) -> list[Any]:
    return [p["total"], p["labelled"], p["skipped"], p["claimed"], p["remaining"]]


@queues.command("list")
@project_option
@output_options
def list_command(project: str | None, as_json: bool) -> None:
    """Queues with their progress, newest first."""
    with connect(settings_from_env()) as client:
        items = check(client.get("/api/v1/queues", params=_params(project)))["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        "annotation queues",
        ["name", "strategy", "label", "total", "labelled", "skipped", "claimed", "remaining"],
        [
            [q["name"], q["strategy"], q["label"]["name"], *_progress_cells(q["progress"])]
            for q in items
        ],
    )


@queues.command("show")
@click.argument("name")
@click.option("--items", "with_items", is_flag=True, help="List the items too.")
@click.option("--status", type=click.Choice(["open", "labelled", "skipped"]))
@project_option
@output_options
def show_command(
    name: str, with_items: bool, status: str | None, project: str | None, as_json: bool
) -> None:
    """A queue's definition and progress (by labeller); --items lists its items."""
    with connect(settings_from_env()) as client:
        queue = check(client.get(_path(name), params=_params(project)))
        items: list[dict[str, Any]] = []
        if with_items or status:
            query: dict[str, Any] = {**_params(project), "limit": 1000}
            if status:
                query["status"] = status
            items = check(client.get(_path(name, "/items"), params=query))["items"]
    if as_json:
        print_json({**queue, "item_list": items} if with_items or status else queue)
        return
    p = queue["progress"]
    # A hand-picked queue draws nothing, so its seed means nothing.
    seed = "" if queue["strategy"] == "hand-picked" else f" · seed {queue['seed']}"
    console.print(
        f"[bold]{queue['name']}[/] · {queue['strategy']}{seed} · label "
        f"{queue['label']['name']} ({queue['label']['kind']}) · created "
        f"{queue['created_at'][:19]} by {escape(queue['created_by'] or '-')}",
        highlight=False,
    )
    params = {k: v for k, v in queue["params"].items() if k not in ("strata", "method")}
    console.print(f"  parameters: {json.dumps(params)}", highlight=False, markup=False)
    for s in queue["params"].get("strata", []):
        console.print(
            f"  stratum {s['value']}: {s['allocated']} of {s['population']} "
            f"(p = {s['inclusion_probability']:.4f})",
            highlight=False,
            markup=False,
        )
    console.print(
        f"  {p['total']} items: {p['labelled']} labelled, {p['skipped']} skipped, "
        f"{p['claimed']} claimed, {p['remaining']} remaining",
        highlight=False,
    )
    if p["by_labeller"]:
        print_table(
            "by labeller",
            ["labeller", "labelled", "skipped", "claimed"],
            [[w, c["labelled"], c["skipped"], c["claimed"]] for w, c in p["by_labeller"].items()],
        )
    if items:
        print_table(
            f"{name} items",
            ["#", "status", "by", "trace", "span", "score", "input"],
            [
                [
                    i["id"],
                    "claimed" if i["claimed"] else i["status"],
                    i["done_by"] or i["claimed_by"] or "",
                    i["trace_id"][:12],
                    i["span_id"],
                    "" if i["score"] is None else f"{i['score']:.3g}",
                    " ".join((i["input"]["text"] or "").split())[:60],
                ]
                for i in items
            ],
        )


def _print_messages(title: str, part: dict[str, Any]) -> None:
    console.rule(title)
    messages = part.get("messages")
    if messages:
        for m in messages:
            content = m.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            console.print(f"{m.get('role', '?')}: {text}", highlight=False, markup=False)
    else:
        console.print(part.get("text") or "(none)", highlight=False, markup=False)


@queues.command("next")
@click.argument("name")
@labeller_option
@project_option
@output_options
def next_command(name: str, labeller: str, project: str | None, as_json: bool) -> None:
    """Claim the next item of NAME to label (asking again shows the item you hold) and
    print its input, output and context."""
    with connect(settings_from_env()) as client:
        out = check(
            client.post(_path(name, "/next"), json={"labeller": labeller}, params=_params(project))
        )
    if as_json:
        print_json(out)
        return
    item, queue = out["item"], out["queue"]
    if item is None:
        console.print(out["message"], highlight=False, markup=False)
        return
    ctx = item["context"]
    console.print(
        f"[bold]{queue['name']}[/] · item {item['id']} of {queue['items']} · claimed by "
        f"{escape(labeller)} until {item['lease_expires_at'][11:19]} UTC",
        highlight=False,
    )
    console.print(f"label {queue['label']['name']}: {_allowed(queue['label'])}", highlight=False)
    if queue.get("instructions"):
        console.print(f"instructions: {queue['instructions']}", highlight=False, markup=False)
    where = " · ".join(
        str(v)
        for v in (
            ctx.get("name"),
            ctx.get("kind"),
            ctx.get("model"),
            ctx.get("route"),
            (ctx.get("start_time") or "")[:19],
        )
        if v
    )
    console.print(
        f"trace {item['trace_id']} span {item['span_id']} · {where}", highlight=False, markup=False
    )
    if ctx.get("reason"):
        console.print(f"why: {json.dumps(ctx['reason'])}", highlight=False, markup=False)
    _print_messages("input", item["input"])
    _print_messages("output", item["output"])
    console.rule()
    console.print(
        f"label: assay queues label {name} {item['id']} --value VALUE --as {labeller}\n"
        f"skip:  assay queues skip {name} {item['id']} --as {labeller} [--reason TEXT]",
        highlight=False,
        markup=False,
    )


def _allowed(label: dict[str, Any]) -> str:
    if label["kind"] == "boolean":
        return "pass or fail"
    if label["kind"] == "category":
        return " | ".join(label["values"])
    return f"{label['low']:g} to {label['high']:g}"


@queues.command("label")
@click.argument("name")
@click.argument("item", type=click.IntRange(1))
@click.option("--value", required=True, help="A value the queue's label allows.")
@click.option("--comment", help="Free text stored with the label.")
@labeller_option
@project_option
@output_options
def label_command(
    name: str,
    item: int,
    value: str,
    comment: str | None,
    labeller: str,
    project: str | None,
    as_json: bool,
) -> None:
    """Label ITEM of queue NAME (stored as reviewer feedback under the queue's label)."""
    body = {"labeller": labeller, "value": value, "comment": comment}
    with connect(settings_from_env()) as client:
        url = _path(name, f"/items/{item}/label")
        out = check(client.post(url, json=body, params=_params(project)))
    if as_json:
        print_json(out)
        return
    fb, p = out["feedback"], out["progress"]
    console.print(
        f"item {item}: {fb['name']} = {json.dumps(fb['value'])} by {labeller} "
        f"({p['labelled'] + p['skipped']} of {p['total']} done)",
        highlight=False,
        markup=False,
    )


@queues.command("skip")
@click.argument("name")
@click.argument("item", type=click.IntRange(1))
@click.option("--reason", help="Why (unclear, off-topic, needs an expert …).")
@labeller_option
@project_option
def skip_command(
    name: str, item: int, reason: str | None, labeller: str, project: str | None
) -> None:
    """Skip ITEM of queue NAME (nobody is offered it again)."""
    body = {"labeller": labeller, "reason": reason}
    with connect(settings_from_env()) as client:
        url = _path(name, f"/items/{item}/skip")
        out = check(client.post(url, json=body, params=_params(project)))
    p = out["progress"]
    console.print(
        f"item {item} skipped by {labeller} ({p['labelled'] + p['skipped']} of {p['total']} done)",
        highlight=False,
        markup=False,
    )


@queues.command("release")
@click.argument("name")
@click.argument("item", type=click.IntRange(1))
@labeller_option
@project_option
def release_command(name: str, item: int, labeller: str, project: str | None) -> None:
    """Give back your claim on ITEM so someone else can take it now."""
    with connect(settings_from_env()) as client:
        check(
            client.post(
                _path(name, f"/items/{item}/release"),
                json={"labeller": labeller},
                params=_params(project),
            )
        )
    console.print(f"item {item} released", highlight=False)


@queues.command("rm")
@click.argument("name")
@project_option
def rm_command(name: str, project: str | None) -> None:
    """Remove queue NAME and its items (the labels stay, as feedback)."""
    with connect(settings_from_env()) as client:
        check(client.delete(_path(name), params=_params(project)))
    console.print(f"queue {name} removed", highlight=False, markup=False)

"""``assay traces list|show``, ``assay stats`` and ``assay models unpriced``."""

from __future__ import annotations

from typing import Any

import click

from assay.cli.common import (
    check,
    connect,
    console,
    filter_options,
    filter_params,
    fmt_ms,
    fmt_usd,
    output_options,
    print_json,
    print_table,
    settings_from_env,
)


@click.group()
def traces() -> None:
    """List and inspect traces."""


@traces.command("list")
@filter_options
@click.option("--limit", type=click.IntRange(1, 1000), default=20, help="Page size.")
@click.option("--cursor", help="next_cursor printed by the previous page.")
@output_options
def list_traces(limit: int, cursor: str | None, as_json: bool, **kwargs: Any) -> None:
    """Traces with at least one span matching the filters, newest first."""
    params = filter_params(kwargs) | {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    with connect(settings_from_env()) as client:
        page = check(client.get("/api/v1/traces", params=params))
    if as_json:
        print_json(page)
        return
    print_table(
        "traces",
        [
            "start (UTC)",
            "trace_id",
            "name",
            "service",
            "spans",
            "errors",
            "ms",
            "tokens",
            "cost",
            "models",
        ],
        [
            [
                t["start_time"][:19].replace("T", " "),
                t["trace_id"],
                t["name"],
                t["service"],
                t["span_count"],
                t["error_count"] or "",
                fmt_ms(t["duration_ms"]),
                (t["input_tokens"] or 0) + (t["output_tokens"] or 0) or "",
                fmt_usd(t["cost"]),
                ", ".join(t["models"]),
            ]
            for t in page["items"]
        ],
    )
    if page["next_cursor"]:
        console.print(f"more: --cursor {page['next_cursor']}")


@traces.command("show")
@click.argument("trace_id")
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def show_trace(trace_id: str, project: str | None, as_json: bool) -> None:
    """One trace as a tree of spans with model, tokens, cost and text."""
    params = {"project": project} if project else {}
    with connect(settings_from_env()) as client:
        trace = check(client.get(f"/api/v1/traces/{trace_id}", params=params))
    if as_json:
        print_json(trace)
        return
    by_id = {s["span_id"]: s for s in trace["spans"]}

    def walk(node: dict[str, Any], depth: int) -> None:
        s = by_id[node["span_id"]]
        bits = [f"{s['kind']}", f"{fmt_ms(s['duration_ms'])} ms"]
        if s["status"] == "error":
            bits.append(f"[red]error[/red] {s['status_message'] or ''}")
        if s["model"]:
            bits.append(s["model"])
        if s["input_tokens"] is not None or s["output_tokens"] is not None:
            bits.append(f"{s['input_tokens'] or 0}→{s['output_tokens'] or 0} tok")
        if s["cost"] is not None:
            bits.append(fmt_usd(s["cost"]))
        pad = "  " * depth
        console.print(f"{pad}[bold]{s['name']}[/bold]  " + " · ".join(bits), highlight=False)
        for label, text in (("in ", s["input_text"]), ("out", s["output_text"])):
            if text:
                short = text if len(text) <= 160 else text[:157] + "..."
                console.print(f"{pad}  {label}: {short}", highlight=False, markup=False)
        for child in node["children"]:
            walk(child, depth + 1)

    console.print(
        f"trace {trace['trace_id']} ({len(trace['spans'])} spans, project {trace['project']})"
    )
    for root in trace["roots"]:
        walk(root, 0)


@click.command()
@filter_options
@click.option("--bucket", help="Time bucket width such as 5m, 1h, 1d; omit for totals.")
@click.option(
    "--group-by",
    help="model, service, route, release, provider, kind, status, name, environment or operation.",
)
@click.option("--all-kinds", is_flag=True, help="Count every span, not only LLM calls.")
@output_options
def stats(
    bucket: str | None, group_by: str | None, all_kinds: bool, as_json: bool, **kwargs: Any
) -> None:
    """Calls, error rate, latency p50/p95/p99, tokens and cost (LLM calls by default)."""
    params = filter_params(kwargs)
    if bucket:
        params["bucket"] = bucket
    if group_by:
        params["group_by"] = group_by
    if all_kinds:
        params["all_kinds"] = "true"
    with connect(settings_from_env()) as client:
        result = check(client.get("/api/v1/stats", params=params))
    if as_json:
        print_json(result)
        return
    columns = (
        (["bucket (UTC)"] if bucket else [])
        + ([group_by] if group_by else [])
        + [
            "calls",
            "errors",
            "error %",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "tokens in",
            "tokens out",
            "cost",
            "unpriced",
        ]
    )
    rows = []
    for r in result["rows"]:
        row: list[Any] = []
        if bucket:
            row.append((r["bucket"] or "")[:16].replace("T", " "))
        if group_by:
            row.append(r["group"] if r["group"] is not None else "(none)")
        row += [
            r["calls"],
            r["errors"],
            f"{100 * r['error_rate']:.1f}",
            fmt_ms(r["p50_ms"]),
            fmt_ms(r["p95_ms"]),
            fmt_ms(r["p99_ms"]),
            f"{r['input_tokens']:,}",
            f"{r['output_tokens']:,}",
            fmt_usd(r["cost"]),
            r["unpriced_calls"] or "",
        ]
        rows.append(row)
    print_table("stats", columns, rows)
    if any(r["unpriced_calls"] for r in result["rows"]):
        console.print("Some calls have no price: see `assay models unpriced`.")


@click.group()
def models() -> None:
    """Models seen in traces and their prices."""


@models.command("unpriced")
@filter_options
@output_options
def unpriced(as_json: bool, **kwargs: Any) -> None:
    """Models with token counts but no price: add them to a price file (ASSAY_PRICES)."""
    with connect(settings_from_env()) as client:
        rows = check(client.get("/api/v1/models/unpriced", params=filter_params(kwargs)))
    if as_json:
        print_json(rows)
        return
    print_table(
        "models without a price",
        ["model", "provider", "spans", "tokens in", "tokens out", "last seen"],
        [
            [
                r["model"],
                r["provider"],
                r["spans"],
                r["input_tokens"],
                r["output_tokens"],
                r["last_seen"][:19],
            ]
            for r in rows
        ],
    )
    if rows:
        console.print(
            'Add them to a JSON file {"version": 1, "models": {"NAME": {"input": '
            'USD_PER_1M, "output": USD_PER_1M}}} and start the server with '
            "ASSAY_PRICES=that-file; stored spans are priced at startup.",
            markup=False,
        )


@models.command("prices")
@output_options
def prices(as_json: bool) -> None:
    """The price table in use (USD per 1M tokens)."""
    with connect(settings_from_env()) as client:
        table = check(client.get("/api/v1/prices"))["models"]
    if as_json:
        print_json(table)
        return
    print_table(
        "prices (USD per 1M tokens)",
        ["model", "input", "cached input", "output"],
        [[m, p["input"], p["cached_input"], p["output"]] for m, p in table.items()],
    )

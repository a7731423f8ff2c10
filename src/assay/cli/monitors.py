"""``assay monitors add|list|show|run|history|alerts|enable|disable|rm``: saved drift checks
that the server runs on a schedule, with webhook alerts on a change of state.

Exit codes: 0 success; 1 ``run --fail-on-drift`` found drift; 2 a usage error or an answer
the server refused (unknown monitor, bad window, name taken …).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import click
import httpx

from assay.cli.common import (
    UsageFailure,
    answer,
    connect,
    console,
    err_console,
    output_options,
    print_json,
    print_table,
    settings_from_env,
)

EXIT_DRIFT = 1
#: A run may embed tens of thousands of texts with a local model.
_RUN_TIMEOUT = httpx.Timeout(1800.0, connect=10.0)
_FILTERS = ("model", "provider", "service", "route", "release", "environment", "kind")


def _path(name: str, suffix: str = "") -> str:
    return f"/api/v1/monitors/{quote(name, safe='')}{suffix}"


def _params(project: str | None) -> dict[str, str]:
    return {"project": project} if project else {}


def _request(method: str, path: str, project: str | None, **kwargs: Any) -> Any:
    with connect(settings_from_env()) as client:
        if path.endswith("/run"):
            client.timeout = _RUN_TIMEOUT
        response = client.request(method, path, params={**_params(project), **kwargs.pop(
            "params", {})}, **kwargs)  # fmt: skip
    return answer(response)


project_option = click.option("--project", help="Project (admin / loopback only).")


@click.group()
def monitors() -> None:
    """Saved drift checks the server runs on a schedule; a JSON webhook when one's state
    changes (ok → drift, drift → ok, → error).

    \b
    assay monitors add input-drift --every 1h --window 1d --reference "30d..1d" \\
        --webhook https://hooks.example.com/assay
    assay monitors list
    assay monitors history input-drift
    """


@monitors.command("add")
@click.argument("name")
@click.option("--every", default="1h", help="Schedule: 15m, 1h, 1d … (at least 1m).")
@click.option(
    "--window", default="1d", help="Current window, relative to each run: 1d, 6h, or 1d..1h."
)
@click.option("--reference", help="Reference range relative to each run, e.g. '30d..1d'.")
@click.option(
    "--reference-goldens",
    metavar="NAME[@VERSION]",
    help="A stored golden set as the reference instead of a range.",
)
@project_option
@click.option("--model")
@click.option("--provider")
@click.option("--service")
@click.option("--route")
@click.option("--release")
@click.option("--environment")
@click.option("--kind", help="Span kind (default llm): chain, tool, retriever, agent …")
@click.option("--name", "span_name", help="Span name.")
@click.option("--status", type=click.Choice(["ok", "error", "unset"]))
@click.option("--attr", multiple=True, help="Attribute equality key=value (repeatable).")
@click.option("--all-kinds", is_flag=True, help="Every span kind, not only LLM calls.")
@click.option("--features", help="Comma-separated features (default: all; `assay drift features`).")
@click.option("--score-attr", multiple=True, metavar="KEY", help="Also compare this attribute.")
@click.option("--embedder", help="auto, hashing, sentence-transformers[:PATH], openai:MODEL.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--correction", type=click.Choice(["holm", "bh"]))
@click.option("--max-samples", type=click.IntRange(10, 1_000_000))
@click.option("--max-embeddings", type=click.IntRange(10, 100_000))
@click.option("--seed", type=click.IntRange(0, 2**31 - 1))
@click.option("--examples", type=click.IntRange(0, 1000))
@click.option("--webhook", "webhooks", multiple=True, metavar="URL", help="POST alerts here.")
@click.option("--disabled", is_flag=True, help="Save it without scheduling it.")
@output_options
def add_command(
    name: str,
    every: str,
    window: str,
    reference: str | None,
    reference_goldens: str | None,
    project: str | None,
    span_name: str | None,
    status: str | None,
    attr: tuple[str, ...],
    all_kinds: bool,
    features: str | None,
    score_attr: tuple[str, ...],
    webhooks: tuple[str, ...],
    disabled: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Save a monitor: the drift check of `assay drift check` with windows relative to each
    run. It first runs on the server's next tick, then every --every."""
    if (reference is None) == (reference_goldens is None):
        raise UsageFailure(
            "give exactly one reference: --reference '30d..1d' or --reference-goldens NAME"
        )
    filters = {k: kwargs.pop(k) for k in _FILTERS if kwargs.get(k) is not None}
    if span_name:
        filters["name"] = span_name
    if status:
        filters["status"] = status
    attributes: dict[str, str] = {}
    for item in attr:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageFailure(f"--attr {item!r} must be key=value, e.g. --attr tenant=acme")
        attributes[key] = value
    body: dict[str, Any] = {
        "name": name,
        "every": every,
        "window": window,
        "reference": reference,
        "reference_goldens": reference_goldens,
        "filters": filters,
        "attributes": attributes,
        "all_kinds": all_kinds,
        "score_attributes": list(score_attr),
        "webhooks": list(webhooks),
        "enabled": not disabled,
    }
    if features:
        body["features"] = [f.strip() for f in features.split(",") if f.strip()]
    for option in ("embedder", "alpha", "correction", "max_samples", "max_embeddings", "seed",
                   "examples"):  # fmt: skip
        if kwargs.get(option) is not None:
            body[option] = kwargs[option]
    monitor = _request("POST", "/api/v1/monitors", project, json=body)
    if as_json:
        print_json(monitor)
        return
    when = "on the server's next tick" if monitor["enabled"] else "when enabled"
    console.print(
        f"monitor {monitor['name']} saved: every {monitor['every']}, window {monitor['window']}"
        f", reference {_reference(monitor)}; first run {when}"
        + (f"; alerts to {len(monitor['webhooks'])} webhook(s)" if monitor["webhooks"] else ""),
        highlight=False,
        markup=False,
    )


def _reference(monitor: dict[str, Any]) -> str:
    if monitor.get("reference_goldens"):
        return f"golden {monitor['reference_goldens']}"
    return str(monitor.get("reference"))


def _time(value: str | None) -> str:
    return "" if not value else value.replace("+00:00", "Z")[:19].replace("T", " ")


def _next(monitor: dict[str, Any]) -> str:
    if not monitor["enabled"] or not monitor["next_run_at"]:
        return "—"
    when = datetime.fromisoformat(monitor["next_run_at"])
    return "due (next tick)" if when <= datetime.now(UTC) else _time(monitor["next_run_at"])


@monitors.command("list")
@project_option
@output_options
def list_command(project: str | None, as_json: bool) -> None:
    """Monitors with their schedule, state and last run."""
    items = _request("GET", "/api/v1/monitors", project)["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        "monitors",
        ["name", "every", "window", "reference", "state", "since", "last run", "next run",
         "webhooks"],
        [
            [
                m["name"],
                m["every"] + ("" if m["enabled"] else " (disabled)"),
                m["window"],
                _reference(m),
                (m["state"] or "—") + (" (running)" if m["running"] else ""),
                _time(m["state_since"]),
                _time(m["last_run_at"]),
                _next(m),
                len(m["webhooks"]),
            ]
            for m in items
        ],
    )  # fmt: skip


@monitors.command("show")
@click.argument("name")
@project_option
@output_options
def show_command(name: str, project: str | None, as_json: bool) -> None:
    """One monitor's definition and state."""
    monitor = _request("GET", _path(name), project)
    if as_json:
        print_json(monitor)
        return
    for key, value in monitor.items():
        if value not in (None, [], {}, ""):
            console.print(f"{key}: {value}", highlight=False, markup=False)


@monitors.command("run")
@click.argument("name")
@project_option
@click.option("--fail-on-drift", is_flag=True, help="Exit 1 when the check found drift.")
@output_options
def run_command(name: str, project: str | None, fail_on_drift: bool, as_json: bool) -> None:
    """Run a monitor now: store the result, alert on a change of state, print the report.
    Its schedule is unchanged."""
    with err_console.status(f"running monitor {name}…"):
        result = _request("POST", _path(name, "/run"), project)
    if as_json:
        print_json(result)
    else:
        if result.get("report"):
            from assay.cli.drift import render

            render(result["report"])
        if result["error"]:
            console.print(f"the check failed: {result['error']}", highlight=False, markup=False)
        state = result["state"] or "unchanged (nothing could be tested)"
        change = ""
        if result["state"] and result["state"] != result["previous_state"]:
            change = f" (was {result['previous_state'] or 'not yet decided'})"
        console.print(
            f"monitor {name}: state {state}{change}; result {result['result_id']}",
            highlight=False,
            markup=False,
        )
    if fail_on_drift and result["state"] == "drift":
        raise SystemExit(EXIT_DRIFT)


def _effects(result: dict[str, Any]) -> str:
    parts = []
    for f in result["features"]:
        if f["verdict"] != "drift":
            continue
        tests = [t for t in f["tests"] if t["drifted"] and isinstance(t["effect"], int | float)]
        parts.append(
            f"{f['feature']} ({tests[0]['effect_name']} {tests[0]['effect']:.3g})"
            if tests
            else f["feature"]
        )
    return ", ".join(parts)


@monitors.command("history")
@click.argument("name")
@project_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, help="Most recent runs.")
@click.option("--since", help="Only runs from this time on (ISO-8601 or a duration ago: 7d).")
@output_options
def history_command(
    name: str, project: str | None, limit: int, since: str | None, as_json: bool
) -> None:
    """A monitor's results over time, newest first: verdict, state, what drifted and by
    how much (--json has every feature's statistics for charts)."""
    params: dict[str, Any] = {"limit": limit}
    if since:
        params["since"] = since
    items = _request("GET", _path(name, "/results"), project, params=params)["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        f"monitor {name}: results",
        ["ran at", "trigger", "verdict", "state", "drifted (effect)", "error", "ms", "result"],
        [
            [
                _time(r["ran_at"]),
                r["trigger"],
                r["verdict"] or "—",
                r["state"] or "(unchanged)",
                _effects(r),
                r["error"] or "",
                f"{r['elapsed_ms']:,.0f}",
                r["result_id"][:12],
            ]
            for r in items
        ],
    )


@monitors.command("alerts")
@click.argument("name")
@project_option
@click.option("--limit", type=click.IntRange(1, 1000), default=50)
@output_options
def alerts_command(name: str, project: str | None, limit: int, as_json: bool) -> None:
    """A monitor's alerts: state change, webhook, delivery status and attempts."""
    items = _request("GET", _path(name, "/alerts"), project, params={"limit": limit})["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        f"monitor {name}: alerts",
        ["created", "change", "url", "status", "attempts", "last HTTP", "error"],
        [
            [
                _time(a["created_at"]),
                f"{a['previous_state'] or '—'} → {a['state']}",
                a["url"],
                a["status"],
                a["attempts"],
                a["last_status"] or "",
                a["error"] or "",
            ]
            for a in items
        ],
    )


def _set_enabled(name: str, project: str | None, enabled: bool) -> None:
    monitor = _request("PATCH", _path(name), project, json={"enabled": enabled})
    when = f"next run {_time(monitor['next_run_at'])}" if enabled else "not scheduled"
    console.print(
        f"monitor {name} {'enabled' if enabled else 'disabled'}: {when}",
        highlight=False,
        markup=False,
    )


@monitors.command("enable")
@click.argument("name")
@project_option
def enable_command(name: str, project: str | None) -> None:
    """Schedule a disabled monitor again."""
    _set_enabled(name, project, True)


@monitors.command("disable")
@click.argument("name")
@project_option
def disable_command(name: str, project: str | None) -> None:
    """Stop scheduling a monitor (its history is kept; `run` still works)."""
    _set_enabled(name, project, False)


@monitors.command("rm")
@click.argument("name")
@project_option
def rm_command(name: str, project: str | None) -> None:
    """Delete a monitor with its results and alerts."""
    _request("DELETE", _path(name), project)
    console.print(f"monitor {name} deleted", highlight=False, markup=False)

"""``assay online add|list|status|pause|resume|rm``: rules that score a sample of live
spans in the server's background worker (online evaluation).

Exit codes: 0 success; 2 a usage error or an answer the server refused (unknown rule, bad
scorer, name taken …).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import yaml

from assay.cli.common import (
    UsageFailure,
    answer,
    connect,
    console,
    fmt_usd,
    output_options,
    print_json,
    print_table,
    settings_from_env,
)
from assay.online import OnlineError, judge_from_yaml, parse_budget, parse_filters


def _path(name: str = "") -> str:
    return "/api/v1/online" + (f"/{quote(name, safe='')}" if name else "")


def _request(method: str, path: str, project: str | None, **kwargs: Any) -> Any:
    params = {"project": project} if project else {}
    with connect(settings_from_env(), create=method != "GET") as client:
        response = client.request(method, path, params=params, **kwargs)
    return answer(response)


def scorer_config(value: str) -> str | dict[str, Any]:
    """``--scorer``: a registry name, an inline JSON/YAML mapping, or a .json/.yaml file."""
    path = Path(value)
    source = value
    text = value
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise UsageFailure(f"--scorer {value!r}: cannot read it ({exc.strerror})") from None
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageFailure(f"--scorer {source!r} is not valid JSON or YAML ({exc})") from None
    if isinstance(data, str) and data.strip():
        return data.strip()
    if isinstance(data, dict):
        return data
    raise UsageFailure(
        f"--scorer {source!r}: give a scorer name (json_valid), a mapping such as "
        '\'{"name": "regex", "pattern": "refund"}\', or a .yaml/.json file'
    )


project_option = click.option("--project", help="Project (admin / loopback only).")


@click.group()
def online() -> None:
    """Score a share of live production spans in the background (online evaluation):
    scores are stored as feedback (source judge) on each span.

    \b
    assay online add helpfulness --judge rubric.yaml --sample 0.05 \\
        --filter route=support --budget-usd 5/day
    assay online status helpfulness
    assay online pause helpfulness
    """


@online.command("add")
@click.argument("name")
@click.option("--judge", "judge_file", type=click.Path(dir_okay=False), metavar="RUBRIC.yaml",
              help="An LLM judge from a rubric file (rubric, mode, endpoint …).")  # fmt: skip
@click.option("--scorer", help="Any scorer: a name, inline JSON/YAML, or a .yaml/.json file.")
@click.option("--sample", type=click.FloatRange(0, 1, min_open=True), default=1.0,
              help="Share of matching spans scored, e.g. 0.05.")  # fmt: skip
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Span filter (repeatable): route, model, service, kind, attr.KEY …")  # fmt: skip
@click.option("--all-kinds", is_flag=True, help="Every span kind, not only LLM calls.")
@click.option("--budget-usd", "budget", metavar="AMOUNT[/PERIOD]",
              help="Spend cap: 5/day, 1/hour, 20/week, 50/month.")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, help="Scorer calls at once.")
@click.option("--retries", type=click.IntRange(0, 10), default=2, help="Retries of a failed span.")
@click.option("--score-name", help="Feedback name of the scores (default: the rule name).")
@click.option("--since", help="Also score spans ingested since then (e.g. 1h); default: from now.")
@click.option("--paused", is_flag=True, help="Save it without scoring yet.")
@project_option
@output_options
def add_command(
    name: str,
    judge_file: str | None,
    scorer: str | None,
    sample: float,
    filters: tuple[str, ...],
    all_kinds: bool,
    budget: str | None,
    concurrency: int,
    retries: int,
    score_name: str | None,
    since: str | None,
    paused: bool,
    project: str | None,
    as_json: bool,
) -> None:
    """Save a rule: the server scores the sampled spans ingested from now on."""
    if (judge_file is None) == (scorer is None):
        raise UsageFailure("give exactly one of --judge RUBRIC.yaml or --scorer CONFIG")
    try:
        if judge_file is not None:
            try:
                text = Path(judge_file).read_text("utf-8")
            except OSError as exc:
                raise UsageFailure(
                    f"--judge {judge_file!r}: cannot read it ({exc.strerror})"
                ) from None
            config: str | dict[str, Any] = judge_from_yaml(text, judge_file)
        else:
            config = scorer_config(str(scorer))
        parsed_filters = parse_filters(filters, all_kinds)
        body: dict[str, Any] = {
            "name": name,
            "scorer": config,
            "sample": sample,
            "filters": parsed_filters,
            "all_kinds": all_kinds,
            "concurrency": concurrency,
            "retries": retries,
            "enabled": not paused,
        }
        if budget:
            body["budget_usd"], body["budget_period"] = parse_budget(budget)
    except OnlineError as exc:
        raise UsageFailure(str(exc)) from None
    for key, value in (("score_name", score_name), ("since", since)):
        if value:
            body[key] = value
    rule = _request("POST", _path(), project, json=body)
    if as_json:
        print_json(rule)
        return
    when = "from its next poll" if rule["enabled"] else "once resumed"
    console.print(
        f"online rule {rule['name']} saved: {_scorer(rule)} on {_share(rule)} of "
        f"{_filters(rule)} spans{_budget(rule)}; the server scores new spans {when} "
        f"(scores as feedback {rule['score_name']!r})",
        highlight=False,
        markup=False,
    )


def _scorer(rule: dict[str, Any]) -> str:
    s = rule["scorer"]
    if s.get("name") == "judge":
        endpoint = s.get("endpoint") or "default endpoint"
        if isinstance(endpoint, dict):
            endpoint = endpoint.get("model") or endpoint.get("target") or "endpoint"
        return f"judge ({s.get('mode', 'pass_fail')}, {endpoint})"
    return str(s.get("name"))


def _share(rule: dict[str, Any]) -> str:
    return f"{rule['sample'] * 100:g}%"


def _filters(rule: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in rule["filters"].items()) or "all"


def _budget(rule: dict[str, Any]) -> str:
    if rule["budget_usd"] is None:
        return ""
    return f"; budget {fmt_usd(rule['budget_usd'])}/{rule['budget_period']}"


def _lag(status: dict[str, Any]) -> str:
    lag = status.get("lag_seconds")
    if lag is None:
        return ""
    return f"{lag:,.0f} s" if lag >= 1 else "0 s"


@online.command("list")
@project_option
@output_options
def list_command(project: str | None, as_json: bool) -> None:
    """Rules with their state, counters, spend, backlog and lag."""
    items = _request("GET", _path(), project)["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        "online rules",
        ["name", "scorer", "sample", "filters", "state", "scored", "errors", "spend", "backlog",
         "lag"],
        [
            [
                r["name"],
                _scorer(r),
                _share(r),
                _filters(r),
                r["status"]["state"],
                r["status"]["scored"],
                r["status"]["errors"],
                fmt_usd(r["status"]["spend_usd"])
                + (f" / {fmt_usd(r['budget_usd'])}" if r["budget_usd"] is not None else ""),
                r["status"].get("backlog_spans", ""),
                _lag(r["status"]),
            ]
            for r in items
        ],
    )  # fmt: skip


@online.command("status")
@click.argument("name")
@project_option
@output_options
def status_command(name: str, project: str | None, as_json: bool) -> None:
    """One rule: what it scores and how far it has got (processed, scored, errors, spend,
    queue depth, backlog and lag)."""
    rule = _request("GET", _path(name), project)
    if as_json:
        print_json(rule)
        return
    s = rule["status"]
    budget = "none"
    if rule["budget_usd"] is not None:
        budget = (
            f"{fmt_usd(s['spend_usd'])} of {fmt_usd(rule['budget_usd'])} this "
            f"{rule['budget_period']} ({s['period']}; resets {s['budget_resets_at']})"
        )
    rows = [
        ["state", s["state"] + (f" on {s['worker']}" if s.get("worker") else "")],
        ["scorer", json.dumps(rule["scorer"], ensure_ascii=False)[:300]],
        ["sample", f"{_share(rule)} of {_filters(rule)} spans"],
        ["scores stored as", f"feedback {rule['score_name']!r} (source judge, author {name})"],
        ["processed (spans read)", f"{s['processed']:,}"],
        ["sampled", f"{s['sampled']:,}"],
        ["scored", f"{s['scored']:,}"],
        ["errors (after retries)", f"{s['errors']:,}"],
        ["skipped (budget spent)", f"{s['skipped_budget']:,}"],
        ["spend", budget],
        ["spend since created", fmt_usd(s["spend_total_usd"])],
        ["queue depth (in flight)", f"{s['queue_depth']} ({s['in_flight']})"],
        ["backlog (spans not read)", f"{s.get('backlog_spans', 0):,}"],
        ["lag", _lag(s)],
        ["watermark", s["watermark"]],
        ["last scored", s["last_scored_at"] or "—"],
    ]
    if s["unpriced"]:
        rows.append(["unpriced scores", f"{s['unpriced']:,} (the judge reported no cost)"])
    if s["last_error"]:
        rows.append(["last error", f"{s['last_error_at']}: {s['last_error']}"])
    print_table(f"online rule {name}", ["", ""], rows)


def _set_enabled(name: str, project: str | None, enabled: bool) -> None:
    rule = _request("PATCH", _path(name), project, json={"enabled": enabled})
    what = "resumed: scoring from its watermark" if enabled else "paused: nothing is scored"
    console.print(f"online rule {rule['name']} {what}", highlight=False, markup=False)


@online.command("pause")
@click.argument("name")
@project_option
def pause_command(name: str, project: str | None) -> None:
    """Stop scoring (spans arriving meanwhile are scored on resume, from the watermark)."""
    _set_enabled(name, project, False)


@online.command("resume")
@click.argument("name")
@project_option
def resume_command(name: str, project: str | None) -> None:
    """Score again, from where the rule stopped."""
    _set_enabled(name, project, True)


@online.command("rm")
@click.argument("name")
@project_option
def rm_command(name: str, project: str | None) -> None:
    """Delete a rule (the scores it stored stay)."""
    _request("DELETE", _path(name), project)
    console.print(f"online rule {name} deleted (its scores stay)", highlight=False, markup=False)

"""``assay drift check|features``: has production traffic moved, what moved and how much.

Exit codes of ``assay drift check``: 0 the check ran (drift or not); 1 drift was found and
``--fail-on-drift`` was given; 2 a usage error (bad window, unknown feature or golden set,
embedder unavailable) or the server could not run the check.
"""

from __future__ import annotations

from typing import Any

import click
import httpx

from assay.cli.common import (
    UsageFailure,
    connect,
    console,
    err_console,
    output_options,
    print_json,
    print_table,
    settings_from_env,
)
from assay.drift.features import FEATURES

EXIT_DRIFT = 1
#: A first check may embed tens of thousands of texts with a local model.
_CHECK_TIMEOUT = httpx.Timeout(1800.0, connect=10.0)


@click.group()
def drift() -> None:
    """Compare production traffic with a reference: what moved, how much, which examples.

    \b
    assay drift check --reference "7d ago..1d ago" --current "last 1d"
    assay drift check --reference-goldens support --current "last 1d" --route /chat
    """


_FILTERS = ("model", "provider", "service", "route", "release", "environment", "kind", "name")


def _filter_options(fn: Any) -> Any:
    options = [
        click.option("--project", help="Project to check (admin / loopback only)."),
        click.option("--model"),
        click.option("--provider"),
        click.option("--service"),
        click.option("--route"),
        click.option("--release"),
        click.option("--environment"),
        click.option("--kind", help="Span kind (default llm): chain, tool, retriever, agent …"),
        click.option("--name", "span_name", help="Span name."),
        click.option("--status", type=click.Choice(["ok", "error", "unset"])),
        click.option("--attr", multiple=True, help="Attribute equality key=value (repeatable)."),
        click.option(
            "--all-kinds", is_flag=True, help="Every span kind, not only LLM calls (kind=llm)."
        ),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


@drift.command("check")
@click.option(
    "--reference",
    help="Reference window: START..END ('7d ago..1d ago', '30d..1d', ISO times) or 'last 7d'.",
)
@click.option(
    "--reference-goldens",
    metavar="NAME[@VERSION]",
    help="Use a stored golden set as the reference (inputs and expected answers).",
)
@click.option("--current", default="last 1d", help="Window to test (same forms as --reference).")
@_filter_options
@click.option(
    "--features",
    help="Comma-separated features to compare (default: all; see `assay drift features`).",
)
@click.option(
    "--score-attr",
    multiple=True,
    metavar="KEY",
    help="Also compare this numeric span attribute, e.g. an online judge score (repeatable).",
)
@click.option(
    "--embedder",
    help="auto, hashing, sentence-transformers[:PATH] or openai:MODEL "
    "(default: the server's ASSAY_EMBEDDER, auto).",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    help="Significance level, after correction across every feature's tests.",
)
@click.option(
    "--correction",
    type=click.Choice(["holm", "bh"]),
    default="holm",
    help="holm: family-wise error rate; bh: false discovery rate.",
)
@click.option(
    "--max-samples",
    type=click.IntRange(10, 1_000_000),
    default=20_000,
    help="Spans read per window (a seeded uniform sample above it).",
)
@click.option(
    "--max-embeddings",
    type=click.IntRange(10, 100_000),
    default=5_000,
    help="Texts embedded per window and embedding feature.",
)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, help="Sampling seed.")
@click.option(
    "--examples",
    type=click.IntRange(0, 1000),
    default=10,
    help="Current examples listed per drifted embedding feature.",
)
@click.option("--fail-on-drift", is_flag=True, help="Exit 1 when any feature drifted.")
@output_options
def check_command(
    reference: str | None,
    reference_goldens: str | None,
    current: str,
    features: str | None,
    score_attr: tuple[str, ...],
    embedder: str | None,
    alpha: float,
    correction: str,
    max_samples: int,
    max_embeddings: int,
    seed: int,
    examples: int,
    fail_on_drift: bool,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Test whether the current window's spans differ from the reference, feature by feature
    (embeddings of inputs and outputs, lengths, latency, tokens, cost, model, finish reason,
    status, tools), with effect sizes, corrected p-values and the examples that moved."""
    if (reference is None) == (reference_goldens is None):
        raise UsageFailure(
            "give exactly one reference: --reference '7d ago..1d ago' or "
            "--reference-goldens NAME[@VERSION]"
        )
    body: dict[str, Any] = {
        "reference": reference,
        "reference_goldens": reference_goldens,
        "current": current,
        "alpha": alpha,
        "correction": correction,
        "max_samples": max_samples,
        "max_embeddings": max_embeddings,
        "seed": seed,
        "examples": examples,
        "score_attributes": list(score_attr),
        "all_kinds": kwargs.pop("all_kinds"),
    }
    if features:
        body["features"] = [f.strip() for f in features.split(",") if f.strip()]
    if embedder:
        body["embedder"] = embedder
    for name in _FILTERS:
        value = kwargs.get("span_name" if name == "name" else name)
        if value is not None:
            body[name] = value
    if kwargs.get("status"):
        body["status"] = kwargs["status"]
    attributes: dict[str, str] = {}
    for item in kwargs.get("attr") or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageFailure(f"--attr {item!r} must be key=value, e.g. --attr tenant=acme")
        attributes[key] = value
    if attributes:
        body["attributes"] = attributes
    params = {"project": kwargs["project"]} if kwargs.get("project") else {}
    with connect(settings_from_env()) as client:
        client.timeout = _CHECK_TIMEOUT
        with err_console.status("checking drift (a first check embeds new texts)…"):
            response = client.post("/api/v1/drift/check", json=body, params=params)
    report = _body(response)
    if as_json:
        print_json(report)
    else:
        render(report)
    if fail_on_drift and report["verdict"] == "drift":
        raise SystemExit(EXIT_DRIFT)


def _body(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if isinstance(detail, list):  # request validation: name the fields
            detail = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
            )
        raise UsageFailure(f"{response.status_code}: {detail}")
    return response.json()


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _share(value: Any, sign: bool = False) -> str:
    if not isinstance(value, int | float):
        return "—"
    return f"{100 * value:+.1f} pts" if sign else f"{100 * value:.1f}%"


def _window_line(role: str, w: dict[str, Any]) -> str:
    what = "cases" if w["kind"] == "goldens" else "spans"
    size = f"{w['total']:,} {what}"
    if w["sampled"]:
        size += f", {w['read']:,} sampled"
    name = f"golden set {w['golden'][:40]}" if w["kind"] == "goldens" else repr(w["text"])
    return f"{role}: {name} ({size})"


def render(report: dict[str, Any]) -> None:
    """Print a report as a table and a few lines of explanation."""
    console.print(
        f"drift check, project {report['project']} · "
        + _window_line("reference", report["reference"])
        + " · "
        + _window_line("current", report["current"]),
        highlight=False,
        markup=False,
    )
    filters = report["current"]["filters"]
    if filters:
        console.print(
            "filters: " + ", ".join(f"{k}={v}" for k, v in filters.items()),
            highlight=False,
            markup=False,
        )
    rows: list[list[Any]] = []
    for f in report["features"]:
        results = f["results"] or [None]
        for i, r in enumerate(results):
            first = i == 0
            rows.append(
                [
                    f["feature"] if first else "",
                    f"{f['n_reference']:,}/{f['n_current']:,}" if first else "",
                    r["test"] if r else "—",
                    _num(r["statistic"]) if r else "",
                    f"{r['effect_name']} {_num(r['effect'])}" if r and r["effect_name"] else "",
                    _num(r["p_adjusted"]) if r else "",
                    {True: "drift", False: "ok"}.get(r["drifted"], "—") if r else "",
                    f["verdict"] if first else "",
                ]
            )
    print_table(
        f"features (alpha {report['alpha']}, {report['correction']} across all tests)",
        ["feature", "n ref/cur", "test", "statistic", "effect", "p adj.", "test says", "verdict"],
        rows,
    )
    for f in report["features"]:
        # A decided feature's undecided tests are in the JSON; only say why one was not tested.
        if f["message"] and f["verdict"] in ("too small", "no data"):
            console.print(f"{f['feature']}: {f['message']}", highlight=False, markup=False)
    for f in report["features"]:
        if f["verdict"] == "drift":
            _explain(f)
    for note in report["notes"]:
        err_console.print(f"note: {note}", highlight=False, markup=False)
    drifted = report["drifted"]
    tested = sum(1 for f in report["features"] if f["verdict"] in ("drift", "no drift"))
    if drifted:
        console.print(
            f"[bold red]DRIFT[/bold red] in {len(drifted)} of {tested} tested features: "
            + ", ".join(drifted),
            highlight=False,
        )
    elif report["verdict"] == "no drift":
        console.print(f"no drift detected in {tested} tested features", highlight=False)
    else:
        console.print("inconclusive: no feature could be tested (see the messages above)")


def _explain(f: dict[str, Any]) -> None:
    summary = f.get("summary") or {}
    ref, cur = summary.get("reference", {}), summary.get("current", {})
    if f["kind"] == "numeric" and ref.get("median") is not None and cur.get("median") is not None:
        change = ""
        if ref["median"]:
            change = f" ({100 * (cur['median'] - ref['median']) / abs(ref['median']):+.0f}%)"
        console.print(
            f"{f['feature']}: median {_num(ref['median'])} → {_num(cur['median'])}{change}, "
            f"mean {_num(ref['mean'])} → {_num(cur['mean'])}",
            highlight=False,
            markup=False,
        )
    if f["shifts"]:
        print_table(
            f"{f['feature']}: categories whose share changed most",
            ["category", "reference", "current", "change"],
            [
                [
                    s.get("category"),
                    _share(s.get("reference_share")),
                    _share(s.get("current_share")),
                    _share(s.get("change"), sign=True),
                ]
                for s in f["shifts"]
            ],
        )
    if f["examples"]:
        print_table(
            f"{f['feature']}: current examples most unlike the reference",
            ["trace_id", "span_id", "score", "text"],
            [[e["trace_id"], e["span_id"], _num(e["score"]), e["text"]] for e in f["examples"]],
        )


@drift.command("features")
@output_options
def features_command(as_json: bool) -> None:
    """The features a drift check compares, and which detectors run on each kind."""
    items = [
        {"name": f.name, "kind": f.kind, "description": f.description, "golden": f.golden}
        for f in FEATURES.values()
    ]
    if as_json:
        print_json(items)
        return
    print_table(
        "drift features (plus attr:KEY for a numeric span attribute)",
        ["name", "kind", "measures", "in a golden reference"],
        [[i["name"], i["kind"], i["description"], "yes" if i["golden"] else ""] for i in items],
    )

"""``assay calibrate judge|threshold|show|list|rm`` and ``assay quality estimate``: how far
a judge can be trusted, and the quality of a window from a few labels and many judge
scores.

Exit codes: 0 the numbers were computed (a threshold that abstains on everything is an
answer too); 1 they could not be: too few labelled pairs, values outside [0, 1], labels
that are not a random sample of the window (quality estimate), a bad window, or the
server refused.
"""

from __future__ import annotations

import math
from typing import Any

import click

from assay.cli.common import (
    check,
    connect,
    console,
    err_console,
    filter_options,
    filter_params,
    output_options,
    print_json,
    print_table,
    settings_from_env,
)

#: Methods of ``--fit`` (assay.calibration.METHODS; not imported to keep help fast).
_METHODS = ("isotonic", "platt")


def _selection_options(fn: Any) -> Any:
    """The judge's labels and the window of spans read."""
    options = [
        click.option(
            "--labels",
            metavar="NAME",
            help="Feedback name of the human labels (source reviewer or user). "
            "[default: the judge's name]",
        ),
        click.option(
            "--window",
            help="Spans' time range: 'last 7d', '7d ago..1d ago', ISO times (instead of "
            "--since/--until). [default: all time]",
        ),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return filter_options(fn)


def _pass_at_option(fn: Any) -> Any:
    return click.option(
        "--pass-at",
        type=click.FloatRange(0.0, 1.0, min_open=True),
        default=0.5,
        help="A score (judge's or human's) at or above this counts as a pass.",
    )(fn)


def _params(kwargs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    params = filter_params(kwargs)
    for key in ("labels", "window", "pass_at"):
        if kwargs.get(key) is not None:
            params[key] = kwargs.pop(key)
    params.update({k: v for k, v in extra.items() if v is not None})
    return params


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(low: float | None, high: float | None, digits: int = 3) -> str:
    return f"[{_f(low, digits)}, {_f(high, digits)}]"


def _print_sampling(sampling: dict[str, Any] | None) -> None:
    if sampling and sampling.get("message"):
        err_console.print(sampling["message"], highlight=False, markup=False)


@click.group()
def calibrate() -> None:
    """How far an LLM judge can be trusted: agreement with human labels, bias,
    reliability, a stored recalibration and the abstention threshold.

    Judge scores are feedback with source judge (a number in [0, 1] or true/false);
    human labels are feedback with source reviewer or user on the same spans.

    \b
    assay calibrate judge helpfulness --labels human-helpfulness
    assay calibrate judge helpfulness --labels human-helpfulness --fit isotonic
    assay calibrate threshold helpfulness --labels human-helpfulness --risk 0.05
    """


@calibrate.command("judge")
@click.argument("name")
@_selection_options
@_pass_at_option
@click.option(
    "--fit",
    type=click.Choice(_METHODS),
    help="Fit this recalibration on the labels, store it for the judge and apply it to "
    "its later scores (replaces the stored one).",
)
@click.option(
    "--holdout",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.3,
    help="With --fit: share of labels held out to measure ECE before/after.",
)
@click.option("--seed", type=click.IntRange(0), default=0, help="With --fit: hold-out seed.")
@click.option("--bins", type=click.IntRange(1, 100), default=10, help="Reliability bins.")
@output_options
def judge(
    name: str, fit: str | None, holdout: float, seed: int, bins: int, as_json: bool, **kwargs: Any
) -> None:
    """Calibration report of judge NAME against human labels: accuracy, Cohen's κ,
    Scott's π, Krippendorff's α, confusion matrix, mean offset, and for probabilistic
    judges the reliability diagram and ECE."""
    params = _params(kwargs, bins=bins)
    with connect(settings_from_env()) as client:
        if fit:
            params.update(method=fit, holdout=holdout, seed=seed)
            out = check(client.post(f"/api/v1/calibration/{name}/fit", params=params))
        else:
            out = check(client.get(f"/api/v1/calibration/{name}/report", params=params))
    if as_json:
        print_json(out)
        return
    _print_report(out)


def _print_report(r: dict[str, Any]) -> None:
    console.print(
        f"judge [bold]{r['judge']}[/] vs labels [bold]{r['labels']}[/] · window {r['window']}\n"
        f"{r['n_pairs']:,} labelled pairs of {r['n_scored']:,} judge-scored spans"
        + (
            f"; {r['labels_without_score']:,} labels have no judge score"
            if r["labels_without_score"]
            else ""
        )
        + f" · pass = score >= {r['pass_at']:g}",
        highlight=False,
    )
    level = f"{r['level']:.0%}"
    offset = r["mean_offset"]
    direction = "the judge rates higher" if offset > 0 else "the judge rates lower"
    rows = [
        ["accuracy", _f(r["accuracy"]), _ci(r["accuracy_low"], r["accuracy_high"])],
        ["Cohen's κ", _f(r["cohen_kappa"]), ""],
        ["Scott's π", _f(r["scott_pi"]), ""],
        ["Krippendorff's α (nominal)", _f(r["krippendorff_alpha"]), ""],
    ]
    if r["krippendorff_alpha_interval"] is not None:
        rows.append(["Krippendorff's α (interval)", _f(r["krippendorff_alpha_interval"]), ""])
    rows.append(
        [
            "mean offset (judge − human)",
            f"{offset:+.3f}",
            _ci(r["offset_low"], r["offset_high"]) + (f" {direction}" if offset else ""),
        ]
    )
    print_table("agreement", ["", "value", f"{level} interval"], rows)
    c = r["confusion"]
    print_table(
        "confusion (rows: judge, columns: human)",
        ["", *[f"human {lab}" for lab in c["labels"]]],
        [[f"judge {lab}", *row] for lab, row in zip(c["labels"], c["counts"], strict=True)],
    )
    rel = r["reliability"]
    if rel is not None:
        print_table(
            f"reliability (equal-mass bins): ECE {_f(r['ece'])}, Brier {_f(r['brier'])}",
            ["scores", "n", "mean score", "human pass rate", "95% interval"],
            [
                [
                    f"{b['low']:.3f}–{b['high']:.3f}",
                    b["count"],
                    _f(b["mean_confidence"]),
                    _f(b["accuracy"]),
                    _ci(b["accuracy_low"], b["accuracy_high"]),
                ]
                for b in rel["bins"]
            ],
        )
    fitted = r.get("fitted")
    stored = r.get("calibrator")
    if fitted:
        console.print(
            f"fitted the {fitted['method']} calibrator on {fitted['n']:,} labels and stored it "
            f"for judge {fitted['judge']}: ECE {_f(fitted['ece_before'])} -> "
            f"{_f(fitted['ece_after'])} on {fitted['n_holdout']} held-out labels (fitted on "
            f"{fitted['n_fit']}). Later reads of this judge's scores are calibrated with it.",
            highlight=False,
        )
    elif stored:
        console.print(
            f"stored calibrator: {stored['method']}, fitted {stored['fitted_at'][:19]} on "
            f"{stored['n']} labels (ECE {_f(stored['ece_before'])} -> "
            f"{_f(stored['ece_after'])} held out)",
            highlight=False,
        )
    _print_sampling(r.get("sampling"))


@calibrate.command("threshold")
@click.argument("name")
@click.option(
    "--risk",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    required=True,
    help="Highest P(the judge's score clears the threshold and a human says fail).",
)
@_selection_options
@_pass_at_option
@output_options
def threshold(name: str, risk: float, as_json: bool, **kwargs: Any) -> None:
    """The judge score at or above which judge NAME's verdict may stand without review
    (conformal risk control on the labelled pairs), with the answer rate it implies."""
    params = _params(kwargs, risk=risk)
    with connect(settings_from_env()) as client:
        out = check(client.get(f"/api/v1/calibration/{name}/threshold", params=params))
    if as_json:
        print_json(out)
        return
    console.print(
        f"judge [bold]{out['judge']}[/] vs labels [bold]{out['labels']}[/] · window "
        f"{out['window']} · {out['n']:,} labelled pairs, {out['n_wrong']:,} that people fail",
        highlight=False,
    )
    if out["threshold"] is None or out["abstain_all"]:
        console.print(f"[bold red]no threshold meets risk {out['risk']:g}[/]", highlight=False)
        console.print(out["message"], highlight=False, markup=False)
    else:
        cal = out["calibrated_threshold"]
        console.print(
            f"answer when the judge's score >= [bold]{out['threshold']:.4g}[/]"
            + (f" (calibrated {cal:.3f})" if cal is not None else "")
            + f": {out['answer_rate']:.1%} of items answered, P(answered and a human says "
            f"fail) <= {out['risk']:g} on average",
            highlight=False,
        )
        err = out["error_rate_answered"]
        console.print(
            f"on the labels: {out['empirical_risk']:.3f} answered and wrong (bound "
            f"{out['bound']:.3f}); {_f(err)} wrong among the answered (reported, not "
            "guaranteed)",
            highlight=False,
        )
    _print_sampling(out.get("sampling"))


@calibrate.command("show")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, help="Scores to show.")
@click.option("--window", help="Spans' time range, e.g. 'last 1d'. [default: all time]")
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def show(name: str, limit: int, window: str | None, project: str | None, as_json: bool) -> None:
    """Judge NAME's stored calibrator and its latest scores, raw and calibrated."""
    params: dict[str, Any] = {"limit": limit}
    for key, v in (("window", window), ("project", project)):
        if v:
            params[key] = v
    with connect(settings_from_env()) as client:
        out = check(client.get(f"/api/v1/calibration/{name}", params=params))
    if as_json:
        print_json(out)
        return
    c = out["calibrator"]
    if c is None:
        console.print(
            f"judge {name}: no calibrator stored (fit one with `assay calibrate judge {name} "
            "--labels LABELS --fit isotonic`)",
            highlight=False,
        )
    else:
        console.print(
            f"judge {name}: {c['method']} calibrator fitted {c['fitted_at'][:19]} on {c['n']} "
            f"labels named {c['labels']} ({c['window']}); ECE {_f(c['ece_before'])} -> "
            f"{_f(c['ece_after'])} on {c['n_holdout']} held-out labels",
            highlight=False,
        )
    print_table(
        f"latest scores ({out['window']})",
        ["trace", "span", "raw", "calibrated", "scored at (UTC)"],
        [
            [
                s["trace_id"],
                s["span_id"] or "",
                _f(s["raw"]),
                "" if s["calibrated"] is None else _f(s["calibrated"]),
                s["scored_at"][:19],
            ]
            for s in out["scores"]
        ],
    )


@calibrate.command("list")
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def list_(project: str | None, as_json: bool) -> None:
    """Stored calibrators, one per judge."""
    with connect(settings_from_env()) as client:
        items = check(
            client.get("/api/v1/calibration", params={"project": project} if project else {})
        )["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        "calibrators",
        ["judge", "labels", "method", "n", "ECE before", "ECE after", "fitted at (UTC)"],
        [
            [
                c["judge"],
                c["labels"],
                c["method"],
                c["n"],
                _f(c["ece_before"]),
                _f(c["ece_after"]),
                c["fitted_at"][:19],
            ]
            for c in items
        ],
    )


@calibrate.command("rm")
@click.argument("name")
@click.option("--project", help="Project (admin / loopback only).")
def rm(name: str, project: str | None) -> None:
    """Drop judge NAME's stored calibrator (its scores stay as they are)."""
    with connect(settings_from_env()) as client:
        check(
            client.delete(
                f"/api/v1/calibration/{name}", params={"project": project} if project else {}
            )
        )
    console.print(f"dropped the calibrator of judge {name}", highlight=False)


@click.group()
def quality() -> None:
    """Quality of production traffic from a few human labels and many judge scores
    (prediction-powered inference).

    \b
    assay quality estimate helpfulness --window "last 7d" --labels human-helpfulness
    """


@quality.command("estimate")
@click.argument("name")
@_selection_options
@click.option(
    "--assume-random",
    is_flag=True,
    help="Treat labels that did not come from a random or stratified annotation queue as "
    "a random sample of the window (the output says so).",
)
@click.option(
    "--level",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.95,
    help="Confidence level.",
)
@output_options
def estimate(name: str, assume_random: bool, level: float, as_json: bool, **kwargs: Any) -> None:
    """The window's pass rate (mean human label) by PPI++ from judge NAME's scores and the
    human labels among them, next to the human-only interval and the judge-only mean."""
    params = _params(kwargs, level=level)
    if assume_random:
        params["assume_random"] = "true"
    with connect(settings_from_env()) as client:
        out = check(client.get(f"/api/v1/quality/{name}/estimate", params=params))
    if as_json:
        print_json(out)
        return
    _print_quality(out)


def _print_quality(q: dict[str, Any]) -> None:
    sampling = q["sampling"]
    assumed = sampling["design"] == "assumed"
    if assumed:
        err_console.print(f"[bold red]{sampling['message']}[/]", highlight=False)
    console.print(
        f"quality by judge [bold]{q['judge']}[/] and labels [bold]{q['labels']}[/] · window "
        f"{q['window']}\nN = {q['n_scored']:,} judge-scored spans, n = {q['n_labelled']:,} "
        "of them labelled",
        highlight=False,
    )
    level = f"{q['level']:.0%}"
    p, h, j = q["ppi"], q["human_only"], q["judge_only"]
    print_table(
        "estimates" + (" (labels ASSUMED to be a random sample)" if assumed else ""),
        ["", "estimate", f"{level} interval", "width", ""],
        [
            [
                "PPI++ (judge + labels)",
                _f(p["estimate"]),
                _ci(p["low"], p["high"]),
                _f(p["high"] - p["low"]),
                f"λ = {p['lam']:.2f}",
            ],
            [
                "human labels only",
                _f(h["estimate"]),
                _ci(h["low"], h["high"]),
                _f(h["high"] - h["low"]),
                f"{q['n_labelled']:,} labels",
            ],
            [
                "judge only",
                _f(j["estimate"]),
                _ci(j["low"], j["high"]),
                _f(j["high"] - j["low"]),
                f"ignores the judge's bias ({q['judge_offset']:+.3f} on the labels)",
            ],
        ],
    )
    eff = q["effective_labels"]
    if eff is not None:
        console.print(
            f"PPI++ is as precise as {eff:,.0f} human labels alone: "
            f"{q['labels_gained']:+,.0f} labels gained from the judge",
            highlight=False,
        )
    lf = q["label_free"]
    if lf is not None:
        cal = lf["calibrator"]
        console.print(
            f"label-free estimate: {_f(lf['estimate'])} {_ci(lf['low'], lf['high'])} = mean "
            f"calibrated probability over {lf['n']:,} spans ({cal['method']} calibrator "
            f"fitted {cal['fitted_at'][:10]} on {cal['n']:,} labels)",
            highlight=False,
        )
        console.print(f"  caveat: {lf['caveat']}", highlight=False, markup=False)
    if sampling["design"] == "weighted":
        console.print(f"note: {sampling['message']}", highlight=False, markup=False)

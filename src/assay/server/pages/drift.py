"""Drift pages: the monitors with their state, and one monitor's time series, alerts and
drift report (per-feature effect sizes, and the examples and category shifts behind them).

Everything shown comes from what the monitor runner stored (``list_monitor_results``,
``get_monitor_result``, ``list_monitor_alerts``) in the JSON forms the monitors API
returns; nothing is recomputed here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from assay.monitors.definition import format_seconds, monitor_json
from assay.monitors.values import DRIFT, Monitor, MonitorAlert, MonitorResult
from assay.server.pages import PageError, context, render
from assay.server.pages.charts import PALETTE, Figure, bars, time_series
from assay.store import Store

router = APIRouter(include_in_schema=False)

#: Runs a monitor page can chart (the ``runs`` query parameter).
RUN_LIMITS = (30, 100, 500)
#: Runs drawn as the status strip of each monitor in the list.
STRIP_RUNS = 30
#: Colour of a run's state in the strip and the history table.
STATE_CLASS = {"ok": "ok", "drift": "drift", "error": "error", None: "none"}


# -- what a test's numbers mean ----------------------------------------------------------------


@dataclass(frozen=True)
class TestValue:
    """One test of one feature in one run, with what decides it.

    A test with a p-value drifts when its multiplicity-adjusted p-value is at most alpha;
    a threshold test (Wasserstein, PSI, Jensen–Shannon) when its effect reaches the
    threshold its detector recorded.
    """

    feature: str
    kind: str
    test: str
    statistic: float | None
    effect: float | None
    effect_name: str
    p_value: float | None
    p_adjusted: float | None
    threshold: float | None
    alpha: float
    drifted: bool | None
    note: str | None = None

    @property
    def uses_p(self) -> bool:
        """Whether the verdict is on the adjusted p-value (else on the effect)."""
        return self.p_value is not None or self.test in P_TESTS

    @property
    def value(self) -> float | None:
        """The number compared with the limit: adjusted p, or the effect."""
        return self.p_adjusted if self.uses_p else self.effect

    @property
    def limit(self) -> float | None:
        """Alpha for a p-value test, the detector's threshold for the others."""
        return self.alpha if self.uses_p else self.threshold

    @property
    def closeness(self) -> float:
        """How near the test is to its limit (≥ 1 once crossed): ranks what to show first."""
        v, lim = self.value, self.limit
        if v is None or lim is None or not _finite(v) or not _finite(lim) or lim <= 0:
            return -math.inf
        if self.uses_p:
            # log p / log alpha: 1 at alpha, larger as p falls below it.
            return math.log(max(v, 1e-300)) / math.log(lim) if lim < 1 else -math.inf
        return v / lim

    @property
    def comparison(self) -> str:
        """'p_adj 0.0012 ≤ α 0.05' or 'PSI 0.31 ≥ 0.2', in words a reader can check."""
        v, lim = self.value, self.limit
        if v is None:
            return self.note or "not decided"
        if self.uses_p:
            op = "≤" if lim is not None and v <= lim else ">"
            return f"p_adj {_g(v)} {op} α {_g(lim)}"
        if lim is None:
            return f"{self.effect_name or 'effect'} {_g(v)}"
        op = "≥" if v >= lim else "<"
        return f"{self.effect_name or 'effect'} {_g(v)} {op} {_g(lim)}"


#: Built-in tests decided on a p-value (their p is null only when the window was too small).
P_TESTS = frozenset({"ks", "chi2", "mmd", "classifier", "ks_per_dim"})


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _num(x: Any) -> float | None:
    return float(x) if _finite(x) else None


def _g(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def thresholds(report: Mapping[str, Any] | None) -> dict[tuple[str, str], float]:
    """(feature, test) → the threshold a threshold test recorded in its details."""
    out: dict[tuple[str, str], float] = {}
    for f in (report or {}).get("features", []):
        for r in f.get("results", []):
            t = _num((r.get("details") or {}).get("threshold"))
            if t is not None:
                out[(f["feature"], r["test"])] = t
    return out


def test_values(
    features: Sequence[Mapping[str, Any]],
    alpha: float,
    limits: Mapping[tuple[str, str], float],
) -> list[TestValue]:
    """The tests of a result's feature rows (``MonitorResult.features``)."""
    out = []
    for f in features:
        for t in f.get("tests", []):
            out.append(
                TestValue(
                    feature=f["feature"],
                    kind=f.get("kind", ""),
                    test=t["test"],
                    statistic=_num(t.get("statistic")),
                    effect=_num(t.get("effect")),
                    effect_name=t.get("effect_name") or "",
                    p_value=_num(t.get("p_value")),
                    p_adjusted=_num(t.get("p_adjusted")),
                    threshold=limits.get((f["feature"], t["test"])),
                    alpha=alpha,
                    drifted=t.get("drifted"),
                )
            )
    return out


def report_tests(report: Mapping[str, Any]) -> list[TestValue]:
    """Every test of a full drift report, with notes and thresholds."""
    alpha = float(report.get("alpha", 0.05))
    out = []
    for f in report.get("features", []):
        for r in f.get("results", []):
            t = _num((r.get("details") or {}).get("threshold"))
            out.append(
                TestValue(
                    feature=f["feature"],
                    kind=f.get("kind", ""),
                    test=r["test"],
                    statistic=_num(r.get("statistic")),
                    effect=_num(r.get("effect")),
                    effect_name=r.get("effect_name") or "",
                    p_value=_num(r.get("p_value")),
                    p_adjusted=_num(r.get("p_adjusted")),
                    threshold=t,
                    alpha=alpha,
                    drifted=r.get("drifted"),
                    note=r.get("note"),
                )
            )
    return out


def headline(tests: Sequence[TestValue]) -> TestValue | None:
    """The decided test nearest to (or furthest past) its limit: a run in one line."""
    decided = [t for t in tests if t.drifted is not None and t.closeness > -math.inf]
    if not decided:
        return None
    return max(decided, key=lambda t: (bool(t.drifted), t.closeness))


# -- monitors and their runs -------------------------------------------------------------------


def watches(monitor: Monitor) -> dict[str, str]:
    """What a monitor compares, in words: features, spans, windows."""
    c = monitor.check
    feats = list(c.features) + [f"score {s}" for s in c.score_attributes]
    spans = [f"{k}={v}" for k, v in c.filters.items()] + [
        f"{k}={v}" for k, v in c.attributes.items()
    ]
    if not c.all_kinds and "kind" not in c.filters:
        spans.insert(0, "LLM spans")
    reference = f"golden set {c.reference_goldens}" if c.reference_goldens else c.reference
    return {
        "features": ", ".join(feats) if feats else "all default features",
        "spans": ", ".join(spans) if spans else "all spans",
        "windows": f"last {c.window} vs {reference}",
    }


@dataclass(frozen=True)
class Period:
    """A stretch of time a monitor spent in the drift state."""

    start: datetime
    end: datetime | None
    runs: int


def drift_periods(results: Sequence[MonitorResult]) -> list[Period]:
    """Drift episodes from results oldest to newest: from the run that decided ``drift``
    to the next run that decided something else (inconclusive runs keep the state)."""
    periods: list[Period] = []
    start: datetime | None = None
    runs = 0
    for r in sorted(results, key=lambda r: r.ran_at):
        if r.state is None:
            runs += start is not None
            continue
        if r.state == DRIFT:
            if start is None:
                start, runs = r.ran_at, 0
            runs += 1
        elif start is not None:
            periods.append(Period(start, r.ran_at, runs))
            start = None
    if start is not None:
        periods.append(Period(start, None, runs))
    return periods


@dataclass(frozen=True)
class StateChange:
    """A run whose state differed from the one before, with the webhooks it sent."""

    result: MonitorResult
    alerts: tuple[MonitorAlert, ...]


def state_changes(
    results: Sequence[MonitorResult], alerts: Sequence[MonitorAlert]
) -> list[StateChange]:
    """Changes of state among ``results`` (newest first), each with its webhook alerts."""
    by_result: dict[str, list[MonitorAlert]] = {}
    for a in alerts:
        by_result.setdefault(a.result_id, []).append(a)
    return [
        StateChange(r, tuple(by_result.get(r.result_id, ())))
        for r in results
        if r.state is not None and r.state != r.previous_state
    ]


def _status(monitor: Monitor, now: datetime) -> str:
    if monitor.running(now):
        return "running"
    if not monitor.enabled:
        return "disabled"
    return monitor.state or "not run"


@dataclass(frozen=True)
class MonitorRow:
    """A monitor as the list shows it."""

    monitor: Monitor
    status: str
    watches: dict[str, str]
    every: str
    strip: list[MonitorResult]
    latest: MonitorResult | None
    headline: TestValue | None
    drifted: list[str]


def _row(store: Store, project: str, m: Monitor, now: datetime) -> MonitorRow:
    recent = store.list_monitor_results(project, m.name, STRIP_RUNS)
    latest = None
    if m.last_result_id:
        latest = store.get_monitor_result(project, m.name, m.last_result_id)
    if latest is None and recent:
        latest = store.get_monitor_result(project, m.name, recent[0].result_id)
    head = None
    if latest is not None and latest.report is not None:
        alpha = float(latest.report.get("alpha", m.check.alpha))
        head = headline(test_values(latest.features, alpha, thresholds(latest.report)))
    return MonitorRow(
        monitor=m,
        status=_status(m, now),
        watches=watches(m),
        every=format_seconds(m.every_seconds),
        strip=list(reversed(recent)),
        latest=latest,
        headline=head,
        drifted=list(latest.drifted) if latest else [],
    )


@router.get("/drift")
def drift_list(request: Request) -> Response:
    """Every monitor of the project: what it watches, schedule, state, latest value."""
    ctx = context(request)
    now = datetime.now(UTC)
    rows = [_row(ctx.store, ctx.project, m, now) for m in ctx.store.list_monitors(ctx.project)]
    counts = {
        "drift": sum(r.status == "drift" for r in rows),
        "error": sum(r.status == "error" for r in rows),
        "ok": sum(r.status == "ok" for r in rows),
    }
    return render(
        request,
        "drift.html",
        title="Drift",
        rows=rows,
        counts=counts,
        state_class=STATE_CLASS,
        now=now,
    )


# -- one monitor -------------------------------------------------------------------------------


def _series_figure(
    tv: list[TestValue | None],
    x: list[datetime],
    bands: list[tuple[datetime, datetime, str]],
    feature: str,
    sample: TestValue,
) -> Figure:
    """One test of one feature over the runs, with its limit as a dashed line."""
    if sample.uses_p:
        ys = [t.p_adjusted if t else None for t in tv]
        title = f"{feature} · {sample.test}: adjusted p-value"
        hl = [(sample.alpha, f"α = {sample.alpha:g}")]
        y_title = "p (adjusted)"
    else:
        ys = [t.effect if t else None for t in tv]
        title = f"{feature} · {sample.test}: {sample.effect_name or 'effect'}"
        hl = [(sample.threshold, f"threshold {sample.threshold:g}")] if sample.threshold else []
        y_title = sample.effect_name or "effect"
    fig = time_series(x, {sample.test: ys}, title=title, y_title=y_title, hlines=hl, bands=bands)
    trace = fig["data"][0]
    trace["mode"] = "lines+markers"
    trace["marker"] = {
        "size": 6,
        "color": [PALETTE[3] if t and t.drifted else PALETTE[0] for t in tv],
    }
    trace["connectgaps"] = False
    trace["hovertemplate"] = "%{x}<br>%{y:.3g}<extra></extra>"
    if sample.uses_p:
        # p-values span orders of magnitude; the threshold sits low on a log axis.
        # Whole decades only, at most ~6 ticks, so labels read 1, 10⁻², 10⁻⁴ …
        low = min([y for y in ys if y is not None and y > 0] + [sample.alpha])
        decades = max(1, math.ceil(-math.log10(max(low, 1e-300))))
        fig["layout"]["yaxis"].update(
            type="log", rangemode="normal", exponentformat="power", dtick=math.ceil(decades / 5)
        )
    fig["layout"]["margin"] = {"l": 56, "r": 10, "t": 30, "b": 30}
    return fig


def _charted(tests: Sequence[TestValue]) -> list[TestValue]:
    # A test too small for a verdict has an effect within its noise floor: left out, so
    # that noise does not set the scale of the decided effects.
    return [t for t in tests if t.effect is not None and t.drifted is not None]


def example_groups(feature: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A drifted feature's examples with equal text shown once: the text, how many of the
    examples had it, the highest score and their traces (highest score first)."""
    groups: dict[str, dict[str, Any]] = {}
    for e in feature.get("examples") or ():
        g = groups.setdefault(e["text"], {"text": e["text"], "score": e["score"], "traces": []})
        g["score"] = max(g["score"], e["score"])
        g["traces"].append(e["trace_id"])
    return sorted(groups.values(), key=lambda g: -g["score"])


def _effects_figure(tests: Sequence[TestValue]) -> Figure:
    """Each decided test's effect size in the shown report, drifted ones in red."""
    shown = _charted(tests)
    labels = [f"{t.feature} · {t.test} ({t.effect_name})" for t in shown]
    fig = bars(labels, [t.effect for t in shown], title="Effect size per feature and test")
    fig["data"][0]["marker"] = {
        "color": [PALETTE[3] if t.drifted else "#9aa3b5" if t.drifted is None else PALETTE[0]
                  for t in shown]
    }  # fmt: skip
    fig["data"][0]["hovertemplate"] = "%{y}: %{x:.3g}<extra></extra>"
    fig["layout"]["margin"] = {"l": 10, "r": 10, "t": 30, "b": 30}
    return fig


def _by_time(results: Sequence[MonitorResult]) -> list[MonitorResult]:
    return sorted(results, key=lambda r: r.ran_at)


@router.get("/drift/monitors/{name}")
def monitor_page(
    request: Request,
    name: str,
    result: Annotated[str | None, Query(max_length=64)] = None,
    runs: int = 100,
) -> Response:
    """A monitor's runs over time with thresholds, its alerts and a drift report."""
    ctx = context(request)
    store = ctx.store
    if runs not in RUN_LIMITS:
        raise PageError(400, f"runs={runs} is not one of {', '.join(map(str, RUN_LIMITS))}")
    monitor = store.get_monitor(ctx.project, name)
    if monitor is None:
        raise PageError(
            404,
            f"no monitor {name!r} in project {ctx.project!r}; the Drift page lists the "
            "monitors (create one with `assay monitors add`)",
        )
    now = datetime.now(UTC)
    results = store.list_monitor_results(ctx.project, name, runs)
    alerts = store.list_monitor_alerts(ctx.project, name, 200)
    chosen_id = result or monitor.last_result_id or (results[0].result_id if results else None)
    shown = store.get_monitor_result(ctx.project, name, chosen_id) if chosen_id else None
    if result is not None and shown is None:
        raise PageError(
            404,
            f"monitor {name!r} has no result {result!r}; pick a run from the history below "
            f"(open /drift/monitors/{name} for the latest)",
        )
    report = shown.report if shown is not None else None
    limits = thresholds(report)
    alpha = float(report.get("alpha", monitor.check.alpha)) if report else monitor.check.alpha
    ordered = _by_time(results)
    x = [r.ran_at for r in ordered]
    periods = drift_periods(ordered)
    end = ordered[-1].ran_at if ordered else now
    bands = [(p.start, p.end or end, "drift") for p in periods]

    # One chart per (feature, test), in the order the latest run lists them.
    per_run = [
        {(t.feature, t.test): t for t in test_values(r.features, alpha, limits)} for r in ordered
    ]
    keys: list[tuple[str, str]] = []
    for row in per_run:
        for k in row:
            if k not in keys:
                keys.append(k)
    series: list[dict[str, Any]] = []
    for feature, test in keys:
        tv = [row.get((feature, test)) for row in per_run]
        sample = next(t for t in reversed(tv) if t is not None)
        figure = _series_figure(tv, x, bands, feature, sample)
        if shown is not None and shown.ran_at in x:
            # The run whose report is shown below, as a dotted vertical line.
            figure["layout"]["shapes"].append(
                {
                    "type": "line",
                    "yref": "paper",
                    "x0": shown.ran_at.isoformat(),
                    "x1": shown.ran_at.isoformat(),
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#1d2330", "dash": "dot", "width": 1},
                }
            )
        series.append(
            {
                "feature": feature,
                "test": test,
                "figure": figure,
                "id": f"chart-{len(series)}",
            }
        )
    tests = report_tests(report) if report else []
    features = list(report.get("features", [])) if report else []
    return render(
        request,
        "drift_monitor.html",
        title=f"Monitor {monitor.name}",
        monitor=monitor,
        api=monitor_json(monitor, now),
        state_now=_status(monitor, now),
        watches=watches(monitor),
        every=format_seconds(monitor.every_seconds),
        results=results,
        run_ids=[r.result_id for r in ordered],
        runs=runs,
        run_limits=RUN_LIMITS,
        series=series,
        periods=list(reversed(periods)),
        changes=state_changes(results, alerts),
        alerts=alerts,
        shown=shown,
        report=report,
        tests=tests,
        features=features,
        effects=_effects_figure(tests) if _charted(tests) else None,
        effects_height=max(160, 50 + 28 * len(_charted(tests))),
        examples={f["feature"]: example_groups(f) for f in features},
        headline=headline(tests),
        state_class=STATE_CLASS,
        latest_id=monitor.last_result_id or (results[0].result_id if results else None),
        last_drift=next((r for r in results if r.state == DRIFT), None),
        now=now,
    )

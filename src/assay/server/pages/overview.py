"""Overview: calls, errors, latency, tokens and cost over time, and what moved."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from assay.model import Aggregate
from assay.query import SpanFilter
from assay.server.pages import PageError, context, render
from assay.server.pages.charts import time_series

router = APIRouter(include_in_schema=False)

#: Range name -> (length, bucket width).
RANGES: dict[str, tuple[timedelta, timedelta]] = {
    "24h": (timedelta(hours=24), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=6)),
    "30d": (timedelta(days=30), timedelta(days=1)),
    "90d": (timedelta(days=90), timedelta(days=2)),
}
GROUPS = ("model", "service", "route", "release")
SCOPES = {"llm": "LLM calls", "all": "all spans"}
#: Series drawn per group before the rest are summed as "other".
TOP_GROUPS = 6


@dataclass(frozen=True)
class Mover:
    """One group's change between the previous period and this one."""

    group: str
    calls: int
    calls_before: int
    cost: float
    cost_before: float
    error_rate: float
    error_rate_before: float
    p95_ms: float | None
    p95_before: float | None
    score: float

    @property
    def calls_change(self) -> float | None:
        """Relative change in calls (None when the group is new)."""
        return self.calls / self.calls_before - 1 if self.calls_before else None


def movers(current: list[Aggregate], previous: list[Aggregate], limit: int = 8) -> list[Mover]:
    """Groups ranked by how much their calls, cost, error rate or p95 changed.

    A change counts in proportion to the group's share of traffic, so a tiny group that
    doubled does not outrank a large one that moved 30%."""
    before = {a.group or "(none)": a for a in previous}
    now = {a.group or "(none)": a for a in current}
    total = sum(a.calls for a in current) + sum(a.calls for a in previous) or 1
    out = []
    for name in set(before) | set(now):
        a, b = now.get(name), before.get(name)
        calls, calls_b = (a.calls if a else 0), (b.calls if b else 0)
        cost, cost_b = (a.cost if a else 0.0), (b.cost if b else 0.0)
        er, er_b = (a.error_rate if a else 0.0), (b.error_rate if b else 0.0)
        p95, p95_b = (a.p95_ms if a else None), (b.p95_ms if b else None)
        share = (calls + calls_b) / total

        def rel(x: float, y: float) -> float:
            return abs(x - y) / max(abs(y), abs(x), 1e-12)

        changes = [rel(calls, calls_b), rel(cost, cost_b), min(1.0, abs(er - er_b) * 10)]
        if p95 is not None and p95_b is not None:
            changes.append(rel(p95, p95_b))
        out.append(
            Mover(
                name, calls, calls_b, cost, cost_b, er, er_b, p95, p95_b, max(changes) * share**0.5
            )
        )
    out.sort(key=lambda m: -m.score)
    return [m for m in out[:limit] if m.score > 0.05]


def _split(
    rows: list[Aggregate],
) -> tuple[list[str], dict[str, dict[datetime, Aggregate]]]:
    totals: dict[str, int] = {}
    for r in rows:
        totals[r.group or "(none)"] = totals.get(r.group or "(none)", 0) + r.calls
    top = sorted(totals, key=lambda g: -totals[g])[:TOP_GROUPS]
    cells: dict[str, dict[datetime, Aggregate]] = {g: {} for g in top}
    other: dict[datetime, list[Aggregate]] = {}
    for r in rows:
        g = r.group or "(none)"
        if r.bucket is None:
            continue
        if g in cells:
            cells[g][r.bucket] = r
        else:
            other.setdefault(r.bucket, []).append(r)
    if other:
        cells["other"] = {
            b: Aggregate(
                b,
                "other",
                sum(x.calls for x in xs),
                sum(x.errors for x in xs),
                sum(x.errors for x in xs) / max(1, sum(x.calls for x in xs)),
                None,
                None,
                None,
                sum(x.input_tokens for x in xs),
                sum(x.output_tokens for x in xs),
                sum(x.cost for x in xs),
                sum(x.unpriced_calls for x in xs),
            )
            for b, xs in other.items()
        }
    return list(cells), cells


def _buckets(start: datetime, end: datetime, width: timedelta) -> list[datetime]:
    # Buckets are aligned like the store's time_bucket (origin 2000-01-01 UTC).
    origin = datetime(2000, 1, 1, tzinfo=UTC)
    first = origin + ((start - origin) // width) * width
    out = []
    b = first
    while b < end:
        out.append(b)
        b += width
    return out


@router.get("/")
def overview(
    request: Request,
    range_: Annotated[str, Query(alias="range")] = "7d",
    group: str = "model",
    scope: str = "llm",
) -> Response:
    """The overview page."""
    ctx = context(request)
    if range_ not in RANGES:
        raise PageError(400, f"range {range_!r} is not one of {', '.join(RANGES)}")
    if group not in GROUPS:
        raise PageError(400, f"group {group!r} is not one of {', '.join(GROUPS)}")
    if scope not in SCOPES:
        raise PageError(400, f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    length, width = RANGES[range_]
    end = datetime.now(UTC)
    start = end - length
    base = SpanFilter(project=ctx.project, kind="llm" if scope == "llm" else None)
    cur = base.with_(start=start, end=end)
    prev = base.with_(start=start - length, end=start)
    store = ctx.store
    # Three scans: this period at every level, the previous one per group, unpriced models.
    with ThreadPoolExecutor(max_workers=2) as pool:
        f_prev = pool.submit(store.aggregate_sets, prev, None, group)
        f_unpriced = pool.submit(store.unpriced_models, cur)
        now_sets = store.aggregate_sets(cur, width, group)
    prev_sets = f_prev.result()
    total, total_prev = now_sets.total, prev_sets.total
    buckets = _buckets(start, end, width)
    names, cells = _split(now_sets.by_bucket_group)
    latency = {a.bucket: a for a in now_sets.by_bucket if a.bucket is not None}

    def col(name: str, attr: str) -> list[float | None]:
        return [getattr(cells[name][b], attr) if b in cells[name] else None for b in buckets]

    def zero(name: str, attr: str) -> list[float | None]:
        return [getattr(cells[name][b], attr) if b in cells[name] else 0 for b in buckets]

    charts = {
        "calls": time_series(
            buckets,
            {n: zero(n, "calls") for n in names},
            title=f"Calls by {group}",
            kind="bar",
            stacked=True,
        ),
        "errors": time_series(
            buckets, {n: col(n, "error_rate") for n in names}, title=f"Error rate by {group}"
        ),
        "latency": time_series(
            buckets,
            {
                q: [getattr(latency[b], f"{q}_ms") if b in latency else None for b in buckets]
                for q in ("p50", "p95", "p99")
            },
            title="Latency (ms)",
            y_title="ms",
        ),
        "tokens": time_series(
            buckets,
            {
                "input": [latency[b].input_tokens if b in latency else 0 for b in buckets],
                "output": [latency[b].output_tokens if b in latency else 0 for b in buckets],
            },
            title="Tokens",
            kind="bar",
            stacked=True,
        ),
        "cost": time_series(
            buckets,
            {n: zero(n, "cost") for n in names},
            title=f"Cost (USD) by {group}",
            kind="bar",
            stacked=True,
        ),
    }
    charts["errors"]["layout"]["yaxis"]["tickformat"] = ".1%"
    groups_now = now_sets.by_group
    return render(
        request,
        "overview.html",
        title="Overview",
        range_=range_,
        ranges=list(RANGES),
        group=group,
        groups=GROUPS,
        scope=scope,
        scopes=SCOPES,
        total=total,
        total_prev=total_prev,
        charts=charts,
        by_group=sorted(groups_now, key=lambda a: -a.calls),
        movers=movers(groups_now, prev_sets.by_group),
        unpriced=f_unpriced.result(),
        route_hint=group == "route"
        and scope == "llm"
        and all(a.group is None for a in groups_now)
        and bool(groups_now),
    )

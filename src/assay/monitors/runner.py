"""One run of a monitor: the drift check as of the run's time, its result row, and the
alerts a change of state calls for. Blocking: the scheduler calls it in a thread."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from assay.drift.report import DriftSpec, run_check
from assay.drift.windows import GoldenWindow
from assay.embedders import Embedder
from assay.monitors.definition import spec_for
from assay.monitors.values import (
    ALERT_VERSION,
    SCHEDULE,
    Monitor,
    MonitorAlert,
    MonitorResult,
    new_state,
    should_alert,
)
from assay.store import Store

#: Characters of an error message kept in a result and an alert.
ERROR_CHARS = 2_000


def _feature_row(feature: Mapping[str, Any]) -> dict[str, Any]:
    """What a chart of drift over time needs from one feature of a report."""
    return {
        "feature": feature["feature"],
        "kind": feature["kind"],
        "verdict": feature["verdict"],
        "n_reference": feature["n_reference"],
        "n_current": feature["n_current"],
        "tests": [
            {
                "test": r["test"],
                "statistic": r["statistic"],
                "effect": r["effect"],
                "effect_name": r["effect_name"],
                "p_value": r["p_value"],
                "p_adjusted": r["p_adjusted"],
                "drifted": r["drifted"],
            }
            for r in feature["results"]
        ],
    }


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _bounds(monitor: Monitor, spec: DriftSpec | None) -> dict[str, Any]:
    """Window bounds of a run (none when its spec could not be built) and its reference."""
    golden = monitor.check.reference_goldens
    if spec is None:
        return {"reference": f"golden {golden}" if golden else monitor.check.reference}
    ref = spec.reference
    out: dict[str, Any] = {
        "window_start": spec.current.filter.start,
        "window_end": spec.current.filter.end,
    }
    if isinstance(ref, GoldenWindow):
        out["reference"] = f"golden {ref.text}"
    else:
        out.update(
            reference=ref.text, reference_start=ref.filter.start, reference_end=ref.filter.end
        )
    return out


def run_monitor(
    store: Store,
    monitor: Monitor,
    owner: str,
    *,
    now: datetime | None = None,
    trigger: str = SCHEDULE,
    next_run_at: datetime | None = None,
    default_embedder: str | None = None,
    embedder: Embedder | None = None,
    alert_lease_until: datetime | None = None,
) -> tuple[MonitorResult, list[MonitorAlert], bool]:
    """Run a monitor ``owner`` has claimed, as of ``now``, and record the result.

    A failing check (unknown golden set, embedding model down …) is a result in state
    ``error``, not an exception. Returns the result, the alerts queued for its change of
    state (none when the state did not change), and whether the lease was still held.
    """
    ran_at = now or datetime.now(UTC)
    started = time.perf_counter()
    spec: DriftSpec | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    try:
        spec = spec_for(monitor.project, monitor.check, ran_at, default_embedder)
        report = run_check(store, spec, embedder=embedder).to_json()
    except Exception as exc:  # a monitor reports a failed check instead of dying with it
        error = _describe(exc)
    verdict = None if report is None else str(report["verdict"])
    state = new_state(verdict, failed=error is not None)
    result = MonitorResult(
        result_id=uuid.uuid4().hex,
        project=monitor.project,
        monitor=monitor.name,
        ran_at=ran_at,
        trigger=trigger,
        verdict=verdict,
        state=state,
        previous_state=monitor.state,
        window_start=None,
        window_end=None,
        reference=None,
        reference_start=None,
        reference_end=None,
        drifted=tuple(report["drifted"]) if report else (),
        features=tuple(_feature_row(f) for f in report["features"]) if report else (),
        error=error,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        report=report,
    )
    result = replace(result, **_bounds(monitor, spec))
    alerts: list[MonitorAlert] = []
    if state is not None and should_alert(monitor.state, state):
        for url in monitor.webhooks:
            alert_id = uuid.uuid4().hex
            alerts.append(
                MonitorAlert(
                    alert_id=alert_id,
                    project=monitor.project,
                    monitor=monitor.name,
                    result_id=result.result_id,
                    url=url,
                    state=state,
                    previous_state=monitor.state,
                    payload=alert_payload(monitor, result, alert_id),
                    created_at=ran_at,
                )
            )
    owned = store.record_monitor_run(result, owner, next_run_at, alerts, alert_lease_until)
    return result, alerts if owned else [], owned


def _headline(feature: Mapping[str, Any]) -> dict[str, Any]:
    """A drifted feature for an alert: the tests that found drift, with their effects."""
    return {
        "feature": feature["feature"],
        "kind": feature["kind"],
        "tests": [
            {
                "test": t["test"],
                "effect_name": t["effect_name"],
                "effect": t["effect"],
                "p_adjusted": t["p_adjusted"],
            }
            for t in feature["tests"]
            if t["drifted"]
        ],
    }


def _text(monitor: Monitor, result: MonitorResult, drifted: list[dict[str, Any]]) -> str:
    """One line a chat webhook (Slack, Mattermost …) can show as it is."""
    where = f"assay monitor {monitor.name!r} (project {monitor.project})"
    if result.state == "error":
        return f"{where}: the drift check failed: {result.error}"
    if result.state == "ok":
        return f"{where}: back to no drift (was {result.previous_state})"
    parts = []
    for f in drifted:
        tests = f["tests"]
        if tests and isinstance(tests[0]["effect"], int | float):
            parts.append(f"{f['feature']} ({tests[0]['effect_name']} {tests[0]['effect']:.3g})")
        else:
            parts.append(f["feature"])
    return f"{where}: DRIFT in " + ", ".join(parts)


def alert_payload(monitor: Monitor, result: MonitorResult, alert_id: str) -> dict[str, Any]:
    """The JSON body of a webhook POST for a change of state."""
    drifted = [_headline(f) for f in result.features if f["verdict"] == "drift"]
    path = (
        f"/api/v1/monitors/{quote(monitor.name)}/results/{result.result_id}"
        f"?project={quote(monitor.project)}"
    )
    return {
        "version": ALERT_VERSION,
        "event": "monitor.state_changed",
        "alert_id": alert_id,
        "monitor": monitor.name,
        "project": monitor.project,
        "state": result.state,
        "previous_state": result.previous_state,
        "ran_at": result.ran_at.isoformat(),
        "result_id": result.result_id,
        "verdict": result.verdict,
        "window": {
            "start": result.window_start.isoformat() if result.window_start else None,
            "end": result.window_end.isoformat() if result.window_end else None,
        },
        "reference": result.reference,
        "drifted": drifted,
        "error": result.error,
        "result_path": path,
        "text": _text(monitor, result, drifted),
    }

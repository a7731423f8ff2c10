"""``assay demo``: a fresh database filled with a realistic example project."""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any

import click

from assay.cli.common import UsageFailure, console, print_json, settings_from_env

DEFAULT_DB = "assay-demo.duckdb"


@click.command()
@click.option(
    "--db",
    "db",
    default=DEFAULT_DB,
    help="Database file to create. ASSAY_DB is not read, so the demo never lands in your "
    "real database by accident (ASSAY_DEMO_DB sets this option).",
)
@click.option("--seed", default=7, type=click.IntRange(0, 2**31 - 1), help="Random seed.")
@click.option("--weeks", default=4, type=click.IntRange(2, 52), help="Weeks of traffic up to now.")
@click.option(
    "--traces",
    default=4000,
    type=click.IntRange(200, 200_000),
    help="Traces to generate (3-5 spans each).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was made as JSON.")
def demo(db: str, seed: int, weeks: int, traces: int, as_json: bool) -> None:
    """Create a new database holding an example project, clearly marked as demo data.

    Weeks of traces of a support bot (with a release in week 3 that makes answers longer,
    slower and dearer, and shifts what users ask), user feedback, an online judge's
    scores, an annotation queue two people are half-way through, a calibrated judge, a
    golden set with three versions, two eval runs with a regression, and drift monitors
    with their alerts. Nothing is sent anywhere: the models are simulated, seeded.

    \b
    assay demo && assay serve --db assay-demo.duckdb
    assay demo --db /tmp/demo.duckdb --traces 1000 --weeks 2
    """
    from assay.demo import DemoError, build_demo, check_empty
    from assay.store import StoreError, open_store

    settings = settings_from_env(db=db)
    existed = os.path.exists(db)
    if existed:
        # Looked at read-only first: a database that holds data is not touched at all.
        try:
            seen = open_store(db, read_only=True)
        except StoreError as exc:
            raise UsageFailure(f"{exc}. Pass a new path: assay demo --db new-demo.duckdb") from None
        try:
            check_empty(seen)
        except DemoError as exc:
            raise UsageFailure(str(exc)) from None
        except Exception as exc:  # a file of an older or foreign schema
            raise UsageFailure(
                f"{db!r} is not an empty assay database ({type(exc).__name__}); pass a new "
                "path: assay demo --db new-demo.duckdb"
            ) from None
        finally:
            seen.close()
    try:
        store = open_store(db)
    except StoreError as exc:
        raise UsageFailure(str(exc)) from None
    started = time.perf_counter()
    ok = False
    try:
        with console.status("assay demo: generating demo data", spinner="dots") as status:

            def progress(step: str) -> None:
                elapsed = time.perf_counter() - started
                if not as_json:
                    console.print(f"[dim]{elapsed:5.1f}s[/] {step}")
                status.update(f"assay demo: {step}")

            summary = build_demo(
                store, settings, seed=seed, weeks=weeks, traces=traces, progress=progress
            )
        ok = True
    except DemoError as exc:
        raise UsageFailure(str(exc)) from None
    finally:
        store.close()
        if not ok and not existed:
            # A half-built demo is worth nothing: remove the file this command created.
            for path in (db, db + ".wal"):
                with contextlib.suppress(OSError):
                    os.remove(path)
    elapsed = time.perf_counter() - started
    serve = f"assay serve --db {shlex.quote(db)}"
    if as_json:
        out: dict[str, Any] = {
            k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(summary).items()
        }
        out.update(db=db, seconds=round(elapsed, 1), serve=serve)
        print_json(out)
        return
    s = summary
    console.print(
        f"\n[bold]Demo data[/] written to [bold]{db}[/] in {elapsed:.1f}s "
        f"(project {s.project!r}, seed {s.seed}). It is example data, not a real app's.\n"
    )
    rows = [
        ("traces", f"{s.traces:,} traces, {s.spans:,} spans since {s.first_trace_at:%Y-%m-%d}"),
        ("release", f"{s.new_release} rolled out {s.rollout_start:%Y-%m-%d} (was {s.old_release})"),
        ("unpriced model", s.unpriced_model),
        ("a conversation", s.conversation_trace_id),
        ("feedback", f"{s.feedback:,} thumbs and resolutions"),
        ("online judge", f"{s.judge!r}: {s.judge_scores:,} scores (rule disabled after)"),
        (
            "annotation queue",
            f"{s.queue!r}: {s.queue_labelled} labelled by 2 people, {s.queue_open} open",
        ),
        ("calibrator", f"{s.judge!r} vs {s.labels!r} ({s.calibrator_method})"),
        (
            "golden set",
            f"{s.golden!r}: {len(s.golden_versions)} versions, case {s.promoted_case_id!r} "
            "promoted from production",
        ),
        ("eval runs", f"baseline {s.baseline_run}, candidate {s.candidate_run}"),
        (
            "monitors",
            f"{', '.join(s.monitors)}: {s.monitor_results} results, {s.alerts} alerts",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        console.print(f"  {key:<{width}}  {value}", highlight=False)
    console.print(
        f"\nCompare the runs:  assay eval compare {s.baseline_run} {s.candidate_run} "
        f"(with ASSAY_DB={shlex.quote(db)})",
        highlight=False,
    )
    console.print(f"See it all:        [bold]{serve}[/]", highlight=False)

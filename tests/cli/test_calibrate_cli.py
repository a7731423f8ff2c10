"""`assay calibrate` and `assay quality` as a user runs them against a database file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from click.testing import CliRunner, Result

from assay.cli import cli
from assay.store.duckdb import DuckDBStore
from calibration_support import P, bulk_add, judge, label, span, table_2x2


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The STATS.md 2x2 table as judge "help" against labels "human-help", and a
    probabilistic judge "prob" over spans of the last day, half of them labelled."""
    path = tmp_path_factory.mktemp("calibrate") / "c.duckdb"
    store = DuckDBStore(str(path))
    store.create_project(P)
    table_2x2(store)
    now = datetime.now(UTC)
    rng = np.random.default_rng(0)
    items = range(1000, 1400)
    store.insert_spans([span(i, now - timedelta(hours=2)) for i in items])
    p = rng.random(len(items))
    passed = rng.random(len(items)) < p**2  # over-confident judge
    bulk_add(store, [judge(i, float(p[k]), name="prob") for k, i in enumerate(items)])
    bulk_add(
        store,
        [label(i, bool(passed[k]), name="human-prob") for k, i in enumerate(items) if k % 2],
    )
    store.close()
    # Nothing listens on port 9: the app runs in-process on the database file.
    yield {"ASSAY_DB": str(path), "ASSAY_URL": "http://127.0.0.1:9"}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, auto_envvar_prefix="ASSAY")


def test_calibrate_judge_prints_the_report(env: dict[str, str]) -> None:
    out = run(env, "calibrate", "judge", "help", "--labels", "human-help")
    assert out.exit_code == 0, out.output
    assert "50 labelled pairs of 50 judge-scored spans" in out.output
    assert "Cohen's κ" in out.output and "0.400" in out.output
    assert "0.394" in out.output and "+0.100" in out.output
    assert "judge fail │ 20" in out.output
    assert "note: 50 of 50 labels are not a random sample" in out.output
    as_json = json.loads(run(env, "calibrate", "judge", "help", "--labels", "human-help",
                             "--json").output)  # fmt: skip
    assert as_json["confusion"]["counts"] == [[20, 5], [10, 15]]


def test_fit_then_show_quality_and_threshold(env: dict[str, str]) -> None:
    fit = run(env, "calibrate", "judge", "prob", "--labels", "human-prob", "--window",
              "last 1d", "--fit", "platt")  # fmt: skip
    assert fit.exit_code == 0, fit.output
    assert "reliability (equal-mass bins): ECE" in fit.output
    assert "fitted the platt calibrator on 200 labels and stored it" in fit.output
    shown = run(env, "calibrate", "show", "prob", "--limit", "3", "--json")
    body = json.loads(shown.output)
    assert body["calibrator"]["method"] == "platt"
    assert all(s["calibrated"] is not None for s in body["scores"])
    assert "prob" in run(env, "calibrate", "list").output

    refused = run(env, "quality", "estimate", "prob", "--labels", "human-prob", "--window",
                  "last 1d")  # fmt: skip
    assert refused.exit_code == 1
    assert "not a random sample of the window" in refused.output

    est = run(env, "quality", "estimate", "prob", "--labels", "human-prob", "--window",
              "last 1d", "--assume-random")  # fmt: skip
    assert est.exit_code == 0, est.output
    assert "ASSUMED RANDOM" in est.output
    assert "N = 400 judge-scored spans, n = 200" in est.output
    for row in ("PPI++ (judge + labels)", "human labels only", "judge only"):
        assert row in est.output
    assert "labels gained from the judge" in est.output
    assert "label-free estimate:" in est.output and "holds only while" in est.output

    old = run(env, "quality", "estimate", "prob", "--labels", "human-prob", "--until", "3d",
              "--assume-random")  # fmt: skip
    assert old.exit_code == 1 and "at least 2 labelled pairs" in old.output

    t = run(env, "calibrate", "threshold", "prob", "--labels", "human-prob", "--risk", "0.1")
    assert t.exit_code == 0, t.output
    assert "answer when the judge's score >=" in t.output and "(calibrated" in t.output
    none = run(env, "calibrate", "threshold", "prob", "--labels", "human-prob", "--risk",
               "0.001")  # fmt: skip
    assert none.exit_code == 0
    assert "no threshold meets risk 0.001" in none.output

    assert run(env, "calibrate", "rm", "prob").exit_code == 0
    again = run(env, "calibrate", "rm", "prob")
    assert again.exit_code == 1 and "no calibrator is stored" in again.output


def test_bad_input_exits_1_with_the_reason(env: dict[str, str]) -> None:
    bad = run(env, "calibrate", "judge", "help", "--window", "whenever")
    assert bad.exit_code == 1 and "window" in bad.output
    few = run(env, "calibrate", "judge", "nobody")
    assert few.exit_code == 1 and "at least 2 labelled pairs" in few.output
    usage = run(env, "calibrate", "threshold", "help")
    assert usage.exit_code == 2 and "--risk" in usage.output

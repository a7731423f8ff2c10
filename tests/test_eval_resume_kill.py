"""A real `assay eval run` process killed with SIGKILL mid-run, then resumed: the run
finishes, every (case, trial) is recorded once, and only unrecorded trials run again; and
the finished-but-unwritten trials a kill can lose stay bounded."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pytest

from assay.model import Case, EvalRun, Trial
from assay.runner import RunOptions, run_eval
from assay.scorers import build as build_scorer
from assay.targets import build_target

CASES = 60
TRIALS = 2
CONCURRENCY = 4

APP = """\
import os
import time


def slow(input, id):
    time.sleep(0.1)
    with open(os.environ["CALLS_FILE"], "a") as f:
        f.write(id + "\\n")
    return "answer " + input.split()[-1]
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any ASSAY_* variable, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")}
    env.update(extra)
    return env


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def recorded(db: str) -> tuple[str, str, Counter[str], int]:
    """(run id, status, recorded trials per case, rows) read from the file read-only."""
    con = duckdb.connect(db, read_only=True)
    try:
        ((run_id, status),) = con.execute("SELECT run_id, status FROM eval_runs").fetchall()
        rows = con.execute("SELECT case_id, trial FROM eval_trials WHERE error IS NULL").fetchall()
    finally:
        con.close()
    return run_id, status, Counter(c for c, _ in rows), len(rows)


@pytest.mark.slow
def test_killed_run_resumes_without_repeating_recorded_trials(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    golden = tmp_path / "qa.jsonl"
    golden.write_text(
        "".join(
            json.dumps({"id": f"c{i:02d}", "input": f"question {i}", "expected": f"answer {i}"})
            + "\n"
            for i in range(CASES)
        )
    )
    db = str(tmp_path / "e.duckdb")
    calls_file = tmp_path / "calls.txt"
    # Nothing listens on port 9: each process runs the app in-process on the file.
    env = clean_env(ASSAY_DB=db, ASSAY_URL="http://127.0.0.1:9", CALLS_FILE=str(calls_file))
    command = [
        *(sys.executable, "-m", "assay", "eval", "run", str(golden), "--target", "app:slow"),
        *("--scorer", "exact", "--concurrency", str(CONCURRENCY), "--trials", str(TRIALS)),
        "--no-progress",
    ]
    log = tmp_path / "first.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        # Kill once every case has a first trial and some have a second.
        deadline = time.monotonic() + 60
        while len(lines(calls_file)) < CASES + 10:
            assert proc.poll() is None, f"the run ended before the kill:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no progress:\n{log.read_text()}"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    first = Counter(lines(calls_file))
    run_id, status, before, n_before = recorded(db)
    assert status == "running"  # a killed run cannot mark itself
    assert CASES <= n_before < CASES * TRIALS
    assert all(first[c] >= k for c, k in before.items())  # recorded means it was called

    second_log = tmp_path / "second.log"
    done = subprocess.run(
        [*command, "--resume", run_id[:-1], "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
    )
    second_log.write_bytes(done.stdout + done.stderr)
    assert done.returncode == 0, second_log.read_text()
    summary = json.loads(done.stdout)["summary"]
    assert summary["run"]["run_id"] == run_id and summary["run"]["status"] == "finished"
    assert (summary["trials_done"], summary["trials_failed"]) == (CASES * TRIALS, 0)
    assert summary["scorers"]["exact"]["estimate"]["mean"] == 1.0

    total = Counter(lines(calls_file))
    second = total - first
    _, status, after, n_after = recorded(db)
    assert status == "finished" and n_after == CASES * TRIALS
    con = duckdb.connect(db, read_only=True)
    try:
        ((rows, keys),) = con.execute(
            "SELECT count(*), count(DISTINCT (case_id, trial)) FROM eval_trials"
        ).fetchall()
    finally:
        con.close()
    assert rows == keys == CASES * TRIALS  # every (case, trial) exactly once
    assert all(after[f"c{i:02d}"] == TRIALS for i in range(CASES))
    # The second process ran exactly the trials that were not recorded before the kill.
    for i in range(CASES):
        cid = f"c{i:02d}"
        assert second[cid] == TRIALS - before[cid], cid
    # Trials whose call had started or finished but whose write had not are run again:
    # never more than the runner's backlog bound (2 x concurrency; usually one per worker).
    repeats = sum(total.values()) - CASES * TRIALS
    assert 0 <= repeats <= 2 * CONCURRENCY


class SlowStore:
    """A recorder whose writes are slower than the target's answers."""

    def __init__(self) -> None:
        self.written = 0

    async def start_run(self, run: EvalRun) -> EvalRun:
        return run

    async def get_run(self, run_id: str) -> EvalRun | None:
        return None

    async def completed(self, run_id: str) -> set[tuple[str, int]]:
        return set()

    async def record(self, trials: Sequence[Trial]) -> None:
        await asyncio.sleep(0.01)
        self.written += len(trials)

    async def spans(self, otlp_protobuf: bytes) -> None:
        await asyncio.sleep(0.05)

    async def finish(self, run_id: str, status: str, trials: int | None = None) -> None:
        pass


async def test_finished_trials_waiting_for_a_write_stay_bounded() -> None:
    """What a kill can lose is bounded even when the store is slower than the target."""
    store = SlowStore()
    finished = 0
    backlog: list[int] = []

    async def instant(input: str) -> str:
        nonlocal finished
        finished += 1
        backlog.append(finished - store.written)
        return "x"

    cases = [Case(id=f"c{i:03d}", input=f"q {i}", expected="x") for i in range(300)]
    run = await run_eval(
        "g", "v" * 64, cases, build_target(instant), [build_scorer("exact")], store,
        RunOptions(concurrency=CONCURRENCY),
    )  # fmt: skip
    assert run.status == "finished" and store.written == finished == 300
    assert max(backlog) <= 2 * CONCURRENCY  # runner.BACKLOG_FACTOR

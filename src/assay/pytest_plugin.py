"""pytest plugin: golden sets run as tests inside an existing suite.

Files named ``*.golden.yaml`` / ``*.golden.yml`` / ``*.golden.jsonl`` / ``*.golden.csv``
are collected. Each file is evaluated once (K trials per case, every trial recorded in
assay like ``assay eval run``); then every case is a test that passes when each scorer's
pass rate over its trials reaches ``pass_threshold``, and every gate is a test of its own.

Where the settings come from, first match wins: the command line (``--assay-target``,
``--assay-scorer``, ``--assay-trials``, ``--assay-gate``), the file's ``eval:`` section
(YAML), then ``[tool.pytest.ini_options]`` (``assay_target`` …).

The ``assay_evaluate`` fixture runs an evaluation from a test and returns its result::

    def test_quality(assay_evaluate):
        result = assay_evaluate("goldens/support.yaml", target="app:answer",
                                scorers=["exact"], trials=3)
        assert result.summary.scorers["exact"].estimate.low >= 0.7
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_SUFFIXES = (".golden.yaml", ".golden.yml", ".golden.jsonl", ".golden.csv")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Command-line and ini options."""
    group = parser.getgroup("assay", "assay golden sets")
    group.addoption(
        "--assay-target", help="Target for *.golden.* files (openai:MODEL, module:function, URL)."
    )
    group.addoption(
        "--assay-scorer",
        action="append",
        default=[],
        help="Scorer (exact, contains:value=x, JSON); repeatable.",
    )
    group.addoption("--assay-trials", type=int, help="Trials per case.")
    group.addoption(
        "--assay-gate",
        action="append",
        default=[],
        help="Gate expression, e.g. 'exact.mean >= 0.8'; repeatable.",
    )
    group.addoption("--assay-concurrency", type=int, default=None, help="Calls in flight.")
    parser.addini("assay_target", "Default target for golden files.")
    parser.addini("assay_scorers", "Default scorers (one per line).", type="linelist")
    parser.addini("assay_trials", "Default trials per case.")
    parser.addini(
        "assay_pass_threshold",
        "A case passes when each scorer's trial mean is "
        "at least this (default 1.0: every trial passes).",
    )


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    """Collect golden-set files."""
    if file_path.name.endswith(_SUFFIXES):
        return GoldenFile.from_parent(parent, path=file_path)
    return None


class GoldenFile(pytest.File):
    """One golden-set file: evaluated once, reported as one test per case and per gate."""

    _result: Any = None
    _error: BaseException | None = None

    def collect(self) -> Iterator[pytest.Item]:
        """A test per case and per gate."""
        from assay.cli.evals import _file_config
        from assay.goldens import GoldenSetError, load_golden_set

        try:
            golden = load_golden_set(self.path)
        except GoldenSetError as exc:
            raise self.CollectError(str(exc)) from None
        self.golden = golden
        self.file_cfg = _file_config(str(self.path))
        for case in golden.cases:
            yield CaseItem.from_parent(self, name=case.id, case_id=case.id)
        for gate in self._gates():
            yield GateItem.from_parent(self, name=f"gate: {gate}", expression=gate)

    def _gates(self) -> list[str]:
        cli: list[str] = self.config.getoption("assay_gate") or []
        return cli or list(self.file_cfg.get("gates") or [])

    def _setting(self, option: str, key: str, ini: str) -> Any:
        value = self.config.getoption(option)
        if value not in (None, []):
            return value
        if key in self.file_cfg:
            return self.file_cfg[key]
        return self.config.getini(ini) or None

    def result(self) -> Any:
        """Run the evaluation once per session, on first use."""
        if self._result is None and self._error is None:
            try:
                self._result = self._evaluate()
            except BaseException as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._result

    def _evaluate(self) -> Any:
        from assay.cli.evals import parse_scorer
        from assay.evaluation import evaluate

        target = self._setting("assay_target", "target", "assay_target")
        if not target:
            raise pytest.UsageError(
                f"{self.path.name}: no target; pass --assay-target, add eval.target to the "
                "file, or set assay_target in the pytest ini options"
            )
        raw_scorers = self._setting("assay_scorer", "scorers", "assay_scorers") or []
        scorers = [parse_scorer(s) if isinstance(s, str) else s for s in raw_scorers]
        if not scorers:
            raise pytest.UsageError(
                f"{self.path.name}: no scorers; pass --assay-scorer or add eval.scorers"
            )
        trials = int(self._setting("assay_trials", "trials", "assay_trials") or 1)
        concurrency = self.config.getoption("assay_concurrency") or int(
            self.file_cfg.get("concurrency", 10)
        )
        return evaluate(
            self.golden,
            target,
            scorers,
            trials=trials,
            concurrency=concurrency,
            target_options=self.file_cfg.get("target_options"),
            name=f"pytest {self.path.name}",
        )

    def threshold(self) -> float:
        """Mean a scorer must reach on a case for the case to pass."""
        raw = self.file_cfg.get("pass_threshold") or self.config.getini("assay_pass_threshold")
        return float(raw) if raw not in (None, "") else 1.0


class CaseItem(pytest.Item):
    """One golden case: passes when every pass/fail scorer passed enough of its trials."""

    def __init__(self, *, case_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case_id = case_id

    def runtest(self) -> None:
        """Check this case's scores in the file's run."""
        parent: GoldenFile = self.parent  # type: ignore[assignment]
        summary = parent.result().summary
        if self.case_id in summary.failed_cases and self.case_id not in summary.case_scores:
            raise CaseFailure(f"target failed: {summary.failed_cases[self.case_id]}")
        threshold = parent.threshold()
        low = summary.failing(self.case_id, threshold)
        if low:
            scores = summary.case_scores.get(self.case_id, {})
            detail = "; ".join(
                f"{k}: passed {v:.0%} of trials (scores {scores.get(k)})"
                for k, v in sorted(low.items())
            )
            raise CaseFailure(f"below {threshold:.0%}: {detail} (run {summary.run.run_id})")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The assay reason, not a traceback into the plugin."""
        if isinstance(excinfo.value, CaseFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


class GateItem(pytest.Item):
    """One gate expression over the file's run."""

    def __init__(self, *, expression: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expression = expression

    def runtest(self) -> None:
        """Evaluate the gate."""
        from assay.results import evaluate_gates

        parent: GoldenFile = self.parent  # type: ignore[assignment]
        (result,) = evaluate_gates(parent.result().summary, [self.expression])
        if not result.passed:
            raise CaseFailure(f"gate failed: {result.expression} (value {result.value:.4g})")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The gate and its value."""
        if isinstance(excinfo.value, CaseFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


class CaseFailure(AssertionError):
    """A case or gate that did not pass."""


@pytest.fixture
def assay_evaluate() -> Callable[..., Any]:
    """Run an evaluation from a test: ``assay_evaluate(golden, target=..., scorers=[...])``
    (arguments as :func:`assay.evaluate`)."""
    from assay.evaluation import evaluate

    def run(golden: Any, target: Any, scorers: Any, **kwargs: Any) -> Any:
        return evaluate(golden, target, scorers, **kwargs)

    return run

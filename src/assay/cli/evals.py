"""``assay eval``: run golden sets, compare runs, gate CI, plan sample sizes.

Exit codes of ``assay eval run`` and ``assay eval compare``: 0 everything passed; 1 a
gate failed or a regression was found with ``--fail-on-regression``; 2 a usage or
configuration error (bad file, unknown scorer, unreachable target configuration …).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from assay.cli.common import (
    UsageFailure,
    check,
    connect,
    console,
    err_console,
    output_options,
    print_json,
    print_table,
    settings_from_env,
)
from assay.cli.goldens import load_file
from assay.evaluation import ApiError, EvalResult, acompare, aevaluate, build_scorers
from assay.goldens import GoldenSetError
from assay.llm import EndpointError
from assay.results import (
    GateError,
    GateResult,
    PairwiseSummary,
    RunComparison,
    RunSummary,
    check_gates,
    evaluate_gates,
    junit_xml,
    to_json,
)
from assay.runner import Progress as RunProgress
from assay.runner import RunError
from assay.scorers.base import ScorerError
from assay.targets import TargetConfigError

EXIT_FAILED = 1
_CONFIG_ERRORS = (
    ApiError,
    RunError,
    ScorerError,
    TargetConfigError,
    EndpointError,
    GoldenSetError,
    GateError,
    ValueError,
)


#: A configuration problem: exit code 2.
ConfigError = UsageFailure


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_scorer(text: str) -> Any:
    """A scorer from the command line: ``exact``, ``contains:value=refund,case_sensitive=true``
    (values read as JSON when they parse), or a JSON mapping ``{"contains": {...}}``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--scorer {text!r} is not valid JSON: {exc}") from None
    name, _, rest = text.partition(":")
    if not rest:
        return name
    args: dict[str, Any] = {}
    for item in rest.split(","):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"--scorer {text!r}: {item!r} must be key=value, e.g. "
                "'contains:value=refund' or 'judge:key=correct,rubric_file=rubric.md'"
            )
        args[key.strip()] = _value(raw)
    return {"name": name, **args}


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs (values read as JSON when they parse)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--target-option {item!r} must be key=value, e.g. system='Be brief'")
        out[key] = _value(raw)
    return out


def _file_config(path: str) -> Mapping[str, Any]:
    """The ``eval`` section of a golden YAML file (scorers, target, trials …), if any."""
    if not path.endswith((".yaml", ".yml")):
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    section = data.get("eval") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table; undefined values show as '—'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def print_summary(s: RunSummary) -> None:
    """The run's scorer table and totals."""
    run = s.run
    rows = []
    for key, sc in s.scorers.items():
        e = sc.estimate
        pass_k = " ".join(f"@{k}={v:.2f}" for k, v in sc.pass_at_k.items() if k > 1)
        pass_hat = " ".join(f"^{k}={v:.2f}" for k, v in sc.pass_hat_k.items() if k > 1)
        flaky = sc.agreement.flaky_share
        rows.append(
            [
                key,
                fmt(e.mean),
                f"[{fmt(e.low)}, {fmt(e.high)}] {e.method}",
                f"{len(sc.agreement.flaky)} ({fmt(flaky, 2)})" if flaky is not None else "—",
                f"{pass_k} {pass_hat}".strip() or "—",
                str(sc.n_errors) if sc.n_errors else "",
            ]
        )
    print_table(
        f"run {run.run_id} · {run.golden} {run.golden_version[:12]} · {run.trials} trial(s) "
        f"· {run.status}",
        ["scorer", "mean", "95% interval", "flaky cases", "pass@k / pass^k", "score errors"],
        rows,
    )
    total = s.trials_done + s.trials_failed
    console.print(
        f"{s.n_cases} cases, {total} trials ({s.trials_failed} failed) · latency p50 "
        f"{fmt(s.latency_p50_ms, 0)} ms, p95 {fmt(s.latency_p95_ms, 0)} ms · "
        f"{s.input_tokens:,} in / {s.output_tokens:,} out tokens · ${s.cost:.4f}"
        + (f" (+ ${s.scoring_cost:.4f} judging)" if s.scoring_cost else ""),
        highlight=False,
    )
    if s.first_failure:
        err_console.print(f"first failed trial: {s.first_failure}", highlight=False)
    for key, sc in s.scorers.items():
        if sc.first_error:
            err_console.print(f"{key}: {sc.n_errors} scoring error(s), e.g. {sc.first_error}")
        if sc.agreement.flaky:
            shown = ", ".join(sc.agreement.flaky[:10])
            more = f" (+{len(sc.agreement.flaky) - 10})" if len(sc.agreement.flaky) > 10 else ""
            console.print(f"{key} flaky: {shown}{more}", highlight=False)


def print_comparison(c: RunComparison) -> None:
    """Verdict per scorer with the paired difference and its interval."""
    rows = []
    for key, cmp in c.scorers.items():
        p = cmp.p_adjusted if cmp.p_adjusted is not None else cmp.p_value
        verdict: str = cmp.verdict
        if verdict == "no detectable change":
            verdict += f" (MDE {fmt(cmp.mde)})"
        rows.append(
            [
                key,
                f"{fmt(cmp.baseline_mean)} → {fmt(cmp.candidate_mean)}",
                f"{cmp.diff:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}]",
                f"{p:.3g} ({cmp.test})",
                str(cmp.n_cases),
                f"+{len(cmp.flipped_to_pass)} / -{len(cmp.flipped_to_fail)}",
                verdict,
            ]
        )
    print_table(
        f"{c.baseline.run_id} (baseline) vs {c.candidate.run_id} (candidate)",
        ["scorer", "mean", "difference [95%]", "p", "cases", "flipped", "verdict"],
        rows,
    )
    if len(c.scorers) > 1:
        console.print("p-values adjusted across scorers (Benjamini–Hochberg).")
    for key, why in c.skipped.items():
        console.print(f"{key}: not compared ({why})", highlight=False)
    for note in c.notes:
        err_console.print(f"note: {note}", highlight=False)
    for key, cmp in c.scorers.items():
        if cmp.flipped_to_fail:
            console.print(
                f"{key} now failing: {', '.join(cmp.flipped_to_fail[:20])}", highlight=False
            )


@click.group("eval")
def eval_() -> None:
    """Evaluations: golden sets × targets × scorers × trials, with statistics."""


@eval_.command("run")
@click.argument("golden", type=click.Path(dir_okay=False))
@click.option(
    "--target",
    "target",
    help="openai:MODEL (vllm:, ollama:, litellm:), "
    "module:function, or an http(s):// URL. Default: the file's eval.target.",
)
@click.option(
    "--target-option",
    "target_options",
    multiple=True,
    help="key=value for the target (system, template, base_url, params, "
    "response_path …); repeatable.",
)
@click.option(
    "--scorer",
    "scorers",
    multiple=True,
    help="exact | contains:value=refund | JSON; repeatable. Default: the file's eval.scorers.",
)
@click.option("--trials", type=click.IntRange(1, 1000), help="Trials per case [default: 1].")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=10)
@click.option("--timeout", "timeout_s", type=float, default=120.0, help="Seconds per trial.")
@click.option("--name", help="A label for the run.")
@click.option("--resume", help="Resume this run id: only unfinished or failed trials run.")
@click.option(
    "--cache",
    type=click.Path(dir_okay=False),
    help="Answer repeated identical chat requests from this SQLite file.",
)
@click.option("--baseline", help="Compare with this run when done.")
@click.option(
    "--fail-on-regression", is_flag=True, help="Exit 1 if a scorer regressed against --baseline."
)
@click.option(
    "--gate",
    "gates",
    multiple=True,
    help="e.g. 'correct.mean >= 0.8', 'correct.low > 0.7', 'cost.total < 2'; "
    "exit 1 when one fails.",
)
@click.option("--junit", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option("--project", help="Project (admin / loopback only).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@output_options
def run(
    golden: str,
    target: str | None,
    target_options: tuple[str, ...],
    scorers: tuple[str, ...],
    trials: int | None,
    concurrency: int,
    timeout_s: float,
    name: str | None,
    resume: str | None,
    cache: str | None,
    baseline: str | None,
    fail_on_regression: bool,
    gates: tuple[str, ...],
    junit: str | None,
    project: str | None,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Run the golden set in GOLDEN (a YAML, JSONL or CSV file) against a target."""
    if fail_on_regression and not baseline:
        raise ConfigError("--fail-on-regression needs --baseline RUN_ID")
    golden_set = load_file(golden)
    file_cfg = _file_config(golden)
    target = target or file_cfg.get("target")
    if not target:
        raise ConfigError("no target: give --target (e.g. openai:gpt-4o-mini or app:answer)")
    scorer_cfgs = [parse_scorer(s) for s in scorers] or list(file_cfg.get("scorers") or [])
    if not scorer_cfgs:
        raise ConfigError("no scorers: give --scorer (e.g. --scorer exact) or eval.scorers")
    options = {**dict(file_cfg.get("target_options") or {}), **parse_options(target_options)}
    file_gates = file_cfg.get("gates") or ()
    gates = gates or ((file_gates,) if isinstance(file_gates, str) else tuple(file_gates))
    try:
        n_trials = trials or int(file_cfg.get("trials", 1))
    except (TypeError, ValueError):
        raise ConfigError(
            f"{golden}: eval.trials {file_cfg.get('trials')!r} must be a whole number, e.g. 3"
        ) from None
    try:
        # Scorers are built and gates checked before the run: a typo costs no target calls.
        built = build_scorers(scorer_cfgs)
        check_gates(gates, [s.spec.label for s in built], None if resume else n_trials)
    except _CONFIG_ERRORS as exc:
        raise ConfigError(str(exc)) from None
    settings = settings_from_env()
    show = not no_progress and not as_json and sys.stderr.isatty()
    try:
        result, comparison = asyncio.run(
            _run(
                golden_set,
                target,
                built,
                options,
                n_trials,
                concurrency,
                timeout_s,
                name,
                resume,
                cache,
                baseline,
                project,
                settings,
                show,
            )
        )
    except _CONFIG_ERRORS as exc:
        raise ConfigError(str(exc)) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: finished trials are saved; rerun with --resume RUN_ID")
        sys.exit(130)
    try:
        gate_results = evaluate_gates(result.summary, gates)
    except GateError as exc:
        raise ConfigError(str(exc)) from None
    _report(result, comparison, gate_results, junit, as_json)
    failed = any(not g.passed for g in gate_results)
    if fail_on_regression and comparison is not None and comparison.regressions:
        failed = True
    if failed:
        sys.exit(EXIT_FAILED)


async def _run(
    golden_set: Any,
    target: str,
    scorer_cfgs: list[Any],
    options: dict[str, Any],
    trials: int,
    concurrency: int,
    timeout_s: float,
    name: str | None,
    resume: str | None,
    cache: str | None,
    baseline: str | None,
    project: str | None,
    settings: Any,
    show: bool,
) -> tuple[EvalResult, RunComparison | None]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[cost]} · {task.fields[failed]} failed"),
        console=err_console,
        disable=not show,
    )
    task = progress.add_task(golden_set.name, total=None, cost="$0.0000", failed=0)

    def on_progress(p: RunProgress) -> None:
        progress.update(
            task, completed=p.done, total=p.total, cost=f"${p.cost:.4f}", failed=p.failed
        )

    with progress:
        result = await aevaluate(
            golden_set,
            target,
            scorer_cfgs,
            trials=trials,
            concurrency=concurrency,
            timeout_s=timeout_s,
            name=name,
            resume=resume,
            target_options=options,
            cache=cache,
            settings=settings,
            progress=on_progress,
            project=project,
        )
    comparison = None
    if baseline:
        comparison = await acompare(baseline, result.run.run_id, settings=settings, project=project)
    return result, comparison


def _report(
    result: EvalResult,
    comparison: RunComparison | None,
    gates: list[GateResult],
    junit: str | None,
    as_json: bool,
) -> None:
    if junit:
        Path(junit).write_text(junit_xml(result.summary, gates, comparison), encoding="utf-8")
    if as_json:
        print_json(
            {
                "summary": to_json(result.summary),
                "gates": to_json(gates),
                "comparison": to_json(comparison) if comparison else None,
            }
        )
        return
    print_summary(result.summary)
    if comparison is not None:
        print_comparison(comparison)
    for g in gates:
        mark = "[green]pass[/]" if g.passed else "[red]FAIL[/]"
        console.print(f"gate {mark} {g.expression} (value {fmt(g.value, 4)})", highlight=False)


@eval_.command("compare")
@click.argument("baseline")
@click.argument("candidate")
@click.option("--lower-is-better", multiple=True, help="Scorers where lower is better.")
@click.option("--level", type=float, default=0.95, help="Confidence level.")
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 if a scorer regressed "
    "(or, with --pairwise-judge, if the judge prefers the baseline).",
)
@click.option(
    "--pairwise-judge",
    "pairwise",
    help="Also judge the two runs' outputs against each other, in both orders: "
    "pairwise_judge:rubric='...' or JSON.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    default=10,
    help="Pairwise judge calls in flight.",
)
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def compare_cmd(
    baseline: str,
    candidate: str,
    lower_is_better: tuple[str, ...],
    level: float,
    fail_on_regression: bool,
    pairwise: str | None,
    concurrency: int,
    project: str | None,
    as_json: bool,
) -> None:
    """Compare two runs case by case (paired): per scorer the difference with its
    interval and p-value, a verdict, and the cases that flipped; optionally a pairwise
    judge's preference between the two runs' outputs."""
    from assay.evaluation import apairwise

    settings = settings_from_env()
    judged = None
    try:
        result = asyncio.run(
            acompare(
                baseline,
                candidate,
                settings=settings,
                level=level,
                lower_is_better=lower_is_better,
                project=project,
            )
        )
        if pairwise:
            judged = asyncio.run(
                apairwise(
                    baseline,
                    candidate,
                    parse_scorer(pairwise),
                    settings=settings,
                    concurrency=concurrency,
                    level=level,
                    project=project,
                )
            )
    except _CONFIG_ERRORS as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        print_json({**to_json(result), "pairwise": to_json(judged) if judged else None})
    else:
        print_comparison(result)
        if judged is not None:
            print_pairwise(judged)
    regressed = bool(result.regressions) or (
        judged is not None and judged.verdict == "baseline preferred"
    )
    if fail_on_regression and regressed:
        sys.exit(EXIT_FAILED)


def print_pairwise(p: PairwiseSummary) -> None:
    """The pairwise judge's preference between two runs."""
    rate = "—" if p.win_rate is None else f"{p.win_rate:.3f} [{fmt(p.low)}, {fmt(p.high)}]"
    console.print(
        f"pairwise ({p.judge}, both orders): candidate wins {p.candidate_wins}, baseline wins "
        f"{p.baseline_wins}, ties {p.ties}, position-inconsistent {p.inconsistent}, errors "
        f"{p.errors} of {p.n_cases} cases · candidate win rate {rate}, "
        f"p={fmt(p.p_value)} → {p.verdict} · judging cost ${p.cost:.4f}",
        highlight=False,
    )


@eval_.command("list")
@click.option("--golden", help="Only runs of this golden set.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20)
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def list_runs(golden: str | None, limit: int, project: str | None, as_json: bool) -> None:
    """Runs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if golden:
        params["golden"] = golden
    if project:
        params["project"] = project
    with connect(settings_from_env()) as client:
        items = check(client.get("/api/v1/runs", params=params))["items"]
    if as_json:
        print_json(items)
        return
    print_table(
        "runs",
        ["run", "name", "golden", "version", "target", "trials", "status", "started (UTC)"],
        [
            [
                r["run_id"],
                r.get("name") or "",
                r["golden"],
                r["golden_version"][:12],
                r["target"].get("model") or r["target"].get("callable") or r["target"].get("url"),
                r["trials"],
                r["status"],
                r["created_at"][:19],
            ]
            for r in items
        ],
    )


def fetch_summary(run_id: str, project: str | None) -> RunSummary:
    """A recorded run's summary, or a configuration error (exit 2)."""
    from assay.evaluation import ApiRecorder, api_client

    async def fetch() -> RunSummary:
        async with api_client(settings_from_env()) as client:
            return await ApiRecorder(client, project).summary(run_id)

    try:
        return asyncio.run(fetch())
    except _CONFIG_ERRORS as exc:
        raise ConfigError(str(exc)) from None


@eval_.command("show")
@click.argument("run_id")
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def show(run_id: str, project: str | None, as_json: bool) -> None:
    """A run's statistics: per scorer the mean and 95% interval (cases as clusters),
    flaky cases, pass@k and pass^k; latency, tokens and cost."""

    summary = fetch_summary(run_id, project)
    if as_json:
        print_json(to_json(summary))
    else:
        print_summary(summary)


@eval_.command("plan")
@click.option("--delta", type=float, required=True, help="Change to detect, e.g. 0.03.")
@click.option("--run", "run_id", help="Use this run's variance (default: a pass rate).")
@click.option("--scorer", help="Scorer of --run (default: every scorer).")
@click.option(
    "--pass-rate",
    type=click.FloatRange(0, 1),
    default=0.5,
    help="Without --run: the expected pass rate.",
)
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05)
@click.option("--power", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8)
@click.option(
    "--correlation",
    type=click.FloatRange(-1, 1),
    help="Case-level correlation between runs (default: 0.5, or estimated).",
)
@click.option("--trials", "trial_counts", default="1,3,5,10", help="Trial counts to plan for.")
@click.option("--project", help="Project (admin / loopback only).")
@output_options
def plan(
    delta: float,
    run_id: str | None,
    scorer: str | None,
    pass_rate: float,
    alpha: float,
    power: float,
    correlation: float | None,
    trial_counts: str,
    project: str | None,
    as_json: bool,
) -> None:
    """How many cases (and trials) a comparison needs to detect a change of DELTA."""
    from assay.stats import plan as plan_sample
    from assay.stats import sample_size

    if delta <= 0:
        raise ConfigError("--delta must be > 0, e.g. 0.03 for a 3-point change")
    try:
        ks = [int(k) for k in trial_counts.split(",") if k.strip()]
    except ValueError:
        raise ConfigError(f"--trials {trial_counts!r} must be numbers like 1,3,5") from None
    if run_id is None:
        var = pass_rate * (1 - pass_rate)
        rho = 0.5 if correlation is None else correlation
        unpaired = sample_size(delta, 2 * var, alpha, power)
        paired = sample_size(delta, 2 * var * (1 - rho), alpha, power)
        data = {
            "delta": delta,
            "pass_rate": pass_rate,
            "alpha": alpha,
            "power": power,
            "correlation": rho,
            "cases_unpaired": unpaired,
            "cases_paired": paired,
        }
        if as_json:
            print_json(data)
            return
        console.print(
            f"To detect a change of {delta:g} around a pass rate of {pass_rate:g} "
            f"(α={alpha:g}, power={power:g}): {unpaired:,} cases per run unpaired, "
            f"{paired:,} paired (case correlation {rho:g}). Use --run RUN for figures "
            "from your own data, trials included.",
            highlight=False,
        )
        return

    summary = fetch_summary(run_id, project)
    keys = [scorer] if scorer else list(summary.scorers)
    out = {}
    for key in keys:
        per_case = {
            cid: scores[key] for cid, scores in summary.case_scores.items() if key in scores
        }
        if not per_case:
            raise ConfigError(f"run {summary.run.run_id} has no scores from {key!r}")
        try:
            out[key] = plan_sample(
                per_case,
                delta=delta,
                alpha=alpha,
                power=power,
                trials=ks,
                correlation=correlation,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if as_json:
        print_json(to_json(out))
        return
    for key, p in out.items():
        print_table(
            f"{key}: cases to detect Δ={delta:g} (α={alpha:g}, power={power:g}, "
            f"correlation {p.correlation:.2f} {p.correlation_source})",
            ["trials per case", "cases (paired)", "calls (paired)", "cases (unpaired)"],
            [
                [r.trials, f"{r.n_paired:,}", f"{r.calls_paired:,}", f"{r.n_unpaired:,}"]
                for r in p.rows
            ],
        )
        for note in p.notes:
            console.print(f"note: {note}", highlight=False)

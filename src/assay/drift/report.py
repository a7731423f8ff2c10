"""A drift check: read two windows, run the detectors per feature, correct for multiplicity,
and say what moved, how much, and which examples show it.

``run_check(store, spec)`` is the one entry point; the CLI, the HTTP API and (later)
monitors call it. Its :class:`DriftReport` is a frozen value with a versioned JSON form.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from assay.drift.features import (
    CATEGORICAL,
    DEFAULT_MAX_EMBEDDINGS,
    EMBEDDING,
    NUMERIC,
    Feature,
    Texts,
    categorical_values,
    embed_texts,
    feature_texts,
    numeric_values,
    resolve_embedder,
    select_features,
    window_fields,
)
from assay.drift.result import DriftResult, DriftTest, Method, correct, too_small_note
from assay.drift.windows import (
    DEFAULT_MAX_SAMPLES,
    SAMPLING_METHOD,
    GoldenWindow,
    SpanWindow,
    Window,
    WindowData,
    WindowError,
    golden_window,
    load_window,
    span_window,
    windows_overlap,
)
from assay.embedders import Embedder
from assay.store import Store

#: Version of :meth:`DriftReport.to_json` (persisted by monitors; bump on a breaking change).
REPORT_VERSION = 1
#: Characters of an example's text shown in a report.
SNIPPET_CHARS = 300
CORRECTIONS = ("holm", "bh")

DRIFT = "drift"
NO_DRIFT = "no drift"
TOO_SMALL = "too small"
NO_DATA = "no data"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class DriftSpec:
    """What to compare: a reference window, a current window of spans, and how."""

    reference: Window
    current: SpanWindow
    #: Feature names (:data:`assay.drift.features.FEATURES`, ``attr:KEY``); empty = all.
    features: tuple[str, ...] = ()
    #: Numeric span attributes to compare as well (online scores, feedback).
    score_attributes: tuple[str, ...] = ()
    #: Embedder name; None or ``auto`` picks one (see :func:`resolve_embedder`).
    embedder: str | None = None
    alpha: float = 0.05
    #: ``holm`` (family-wise error) or ``bh`` (false discovery rate), across all features.
    correction: Method = "holm"
    max_samples: int = DEFAULT_MAX_SAMPLES
    max_embeddings: int = DEFAULT_MAX_EMBEDDINGS
    seed: int = 0
    #: Current examples listed per drifted embedding feature.
    examples: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.current, SpanWindow):
            raise WindowError("the current window must be spans (a time range), not a golden set")
        if self.reference.project != self.current.project:
            raise WindowError(
                f"reference (project {self.reference.project!r}) and current (project "
                f"{self.current.project!r}) must be in the same project"
            )
        if not (isinstance(self.alpha, float | int) and 0 < self.alpha < 1):
            raise WindowError(f"alpha {self.alpha!r} must be between 0 and 1, e.g. 0.05")
        if self.correction not in CORRECTIONS:
            raise WindowError(
                f"correction {self.correction!r} is not one of holm (family-wise) or bh "
                "(false discovery rate)"
            )
        for name in ("max_samples", "max_embeddings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 10:
                raise WindowError(f"{name} {value!r} must be a whole number >= 10")
        if isinstance(self.examples, bool) or not 0 <= self.examples <= 1000:
            raise WindowError(f"examples {self.examples!r} must be between 0 and 1000")

    @property
    def project(self) -> str:
        """The project both windows belong to."""
        return self.current.project


def build_spec(
    project: str,
    *,
    current: str,
    reference: str | None = None,
    reference_goldens: str | None = None,
    filters: Mapping[str, str | None] | None = None,
    attributes: Mapping[str, str] | None = None,
    all_kinds: bool = False,
    now: datetime | None = None,
    **options: Any,
) -> DriftSpec:
    """A spec from what a user types: range strings, filters shared by both span windows
    (LLM spans only unless ``kind`` or ``all_kinds`` says otherwise), and options."""
    if (reference is None) == (reference_goldens is None):
        raise WindowError(
            "give exactly one reference: a time range (--reference '7d ago..1d ago') or a "
            "golden set (--reference-goldens NAME[@VERSION])"
        )
    now = now or datetime.now(UTC)
    shared = {k: v for k, v in (filters or {}).items() if v is not None}
    if not all_kinds and "kind" not in shared:
        shared["kind"] = "llm"
    cur = span_window(current, project, shared, attributes, now, "current")
    ref: Window
    if reference is not None:
        ref = span_window(reference, project, shared, attributes, now, "reference")
    else:
        assert reference_goldens is not None
        ref = golden_window(reference_goldens, project)
    return DriftSpec(reference=ref, current=cur, **options)


# -- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """A current span whose text is among the most unlike the reference."""

    trace_id: str
    span_id: str
    #: The detector's distance (or classifier confidence); larger is more unlike.
    score: float
    text: str


@dataclass(frozen=True)
class FeatureReport:
    """One feature's tests, verdict and explanation."""

    feature: str
    kind: str
    description: str
    #: ``drift``, ``no drift``, ``too small`` (not enough values) or ``no data``.
    verdict: str
    n_reference: int
    n_current: int
    results: tuple[DriftResult, ...] = ()
    #: Why a feature was not (fully) tested, in words.
    message: str | None = None
    #: Per window: counts and, for numbers, mean / median / p90.
    summary: Mapping[str, Any] = field(default_factory=dict)
    examples: tuple[Example, ...] = ()
    #: Categories whose share changed most (categorical features that drifted).
    shifts: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class WindowSummary:
    """A window as the report describes it."""

    kind: str  # spans | goldens
    text: str
    start: datetime | None
    end: datetime | None
    filters: Mapping[str, Any]
    #: Spans (or cases) in the window, and how many were read.
    total: int
    read: int
    golden: str | None = None

    @property
    def sampled(self) -> bool:
        """True when the window held more than was read."""
        return self.total > self.read


@dataclass(frozen=True)
class DriftReport:
    """The outcome of a drift check."""

    project: str
    #: ``drift`` when any feature drifted, ``no drift`` when every tested feature did not,
    #: ``inconclusive`` when nothing could be tested.
    verdict: str
    reference: WindowSummary
    current: WindowSummary
    features: tuple[FeatureReport, ...]
    alpha: float
    correction: Method
    embedder: str | None
    seed: int
    max_samples: int
    max_embeddings: int
    notes: tuple[str, ...]
    created_at: datetime
    elapsed_ms: float

    @property
    def drifted(self) -> list[str]:
        """Names of the features that drifted."""
        return [f.feature for f in self.features if f.verdict == DRIFT]

    def feature(self, name: str) -> FeatureReport:
        """One feature's report by name (KeyError when it was not checked)."""
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``version`` marks its format)."""
        out: dict[str, Any] = {
            "version": REPORT_VERSION,
            "project": self.project,
            "verdict": self.verdict,
            "drifted": self.drifted,
            "created_at": self.created_at.isoformat(),
            "elapsed_ms": round(self.elapsed_ms, 1),
            "alpha": self.alpha,
            "correction": self.correction,
            "embedder": self.embedder,
            "seed": self.seed,
            "sampling": {
                "method": SAMPLING_METHOD,
                "max_samples": self.max_samples,
                "max_embeddings": self.max_embeddings,
            },
            "reference": _window_json(self.reference),
            "current": _window_json(self.current),
            "features": [_feature_json(f) for f in self.features],
            "notes": list(self.notes),
        }
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _window_json(w: WindowSummary) -> dict[str, Any]:
    out: dict[str, Any] = _jsonable(asdict(w))
    out["sampled"] = w.sampled
    return out


def _feature_json(f: FeatureReport) -> dict[str, Any]:
    out: dict[str, Any] = _jsonable(asdict(f))
    return out


# -- running a check ---------------------------------------------------------------------------


@dataclass
class _Pending:
    """A feature being checked: its results before multiplicity correction."""

    feature: Feature
    n_reference: int = 0
    n_current: int = 0
    results: list[DriftResult] = field(default_factory=list)
    message: str | None = None
    no_data: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    reference_values: Any = None
    current_values: Any = None
    current_texts: Texts | None = None


def _summary_numbers(values: np.ndarray, missing: int) -> dict[str, Any]:
    if len(values) == 0:
        return {"n": 0, "missing": missing}
    return {
        "n": len(values),
        "missing": missing,
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "p90": float(np.quantile(values, 0.9)),
    }


def _window_summary(data: WindowData) -> WindowSummary:
    window = data.window
    if isinstance(window, GoldenWindow):
        return WindowSummary(
            kind="goldens",
            text=window.text,
            start=None,
            end=None,
            filters={},
            total=data.total,
            read=data.table.num_rows,
            golden=data.golden,
        )
    return WindowSummary(
        kind="spans",
        text=window.text,
        start=window.filter.start,
        end=window.filter.end,
        filters=window.filters(),
        total=data.total,
        read=data.table.num_rows,
    )


def _available(feature: Feature, data: WindowData) -> bool:
    if feature.attribute is not None:
        return f"attr:{feature.attribute}" in data.table.column_names
    return feature.source in data.fields


class _Check:
    """One run of a spec against a store (holds what every feature step needs)."""

    def __init__(self, store: Store, spec: DriftSpec, embedder: Embedder | None) -> None:
        self.store = store
        self.spec = spec
        self._embedder = embedder
        self.embedder_name: str | None = None
        self.notes: list[str] = []

    def embedder(self) -> Embedder:
        """The embedder, resolved on first use (no model loads unless a text is embedded)."""
        if self._embedder is None:
            self._embedder, note = resolve_embedder(self.spec.embedder)
            if note:
                self.notes.append(note)
        self.embedder_name = self._embedder.name
        return self._embedder

    def feature(self, p: _Pending, ref: WindowData, cur: WindowData) -> None:
        """Gather a feature's values from both windows and run its tests."""
        f = p.feature
        for role, data in (("reference", ref), ("current", cur)):
            if not _available(f, data):
                p.no_data = True
                p.message = (
                    f"not in the {role} window: a golden set has only inputs and expected answers"
                )
                return
        from assay.drift.detectors import DEFAULT_TESTS  # scipy loads with the first check

        tests = DEFAULT_TESTS[f.kind]
        if f.kind == NUMERIC:
            rv, rmiss = numeric_values(ref.table, f)
            cv, cmiss = numeric_values(cur.table, f)
            p.reference_values, p.current_values = rv, cv
            p.n_reference, p.n_current = len(rv), len(cv)
            p.summary = {
                "reference": _summary_numbers(rv, rmiss),
                "current": _summary_numbers(cv, cmiss),
            }
        elif f.kind == CATEGORICAL:
            rc = categorical_values(ref.table, f)
            cc = categorical_values(cur.table, f)
            p.reference_values, p.current_values = rc, cc
            p.n_reference, p.n_current = len(rc), len(cc)
            p.summary = {
                "reference": {"n": len(rc), "categories": len(set(rc))},
                "current": {"n": len(cc), "categories": len(set(cc))},
            }
        else:
            self._embeddings(p, ref, cur, tests)
        if p.n_reference == 0 or p.n_current == 0:
            empty = "reference" if p.n_reference == 0 else "current"
            p.no_data = True
            p.message = f"no {f.name} values in the {empty} window" + (
                " (are its models priced? see `assay models unpriced`)" if f.name == "cost" else ""
            )
            return
        self._run_tests(p, tests)

    def _embeddings(
        self, p: _Pending, ref: WindowData, cur: WindowData, tests: Sequence[DriftTest]
    ) -> None:
        f = p.feature
        limit = self.spec.max_embeddings
        rt = feature_texts(ref.table, f, limit)
        ct = feature_texts(cur.table, f, limit)
        p.n_reference, p.n_current = len(rt.texts), len(ct.texts)
        p.summary = {
            "reference": {"n": len(rt.texts), "missing": rt.missing},
            "current": {"n": len(ct.texts), "missing": ct.missing},
        }
        # Embedding costs time (and money with a remote model): not for a window too small.
        if min(p.n_reference, p.n_current) < min(t.min_samples for t in tests):
            p.reference_values = None
            return
        embedder = self.embedder()
        project = self.spec.project
        rv, r_new = embed_texts(self.store, project, embedder, f.cache_field, rt)
        cv, c_new = embed_texts(self.store, project, embedder, f.cache_field, ct)
        p.summary["reference"]["embedded_now"] = r_new
        p.summary["current"]["embedded_now"] = c_new
        p.reference_values, p.current_values = rv, cv
        p.current_texts = ct

    def _run_tests(self, p: _Pending, tests: Sequence[DriftTest]) -> None:
        """Run each test; one whose minimum sample size a window misses is recorded as an
        undecided result (``drifted`` None) with a note saying how many values it needs."""
        undecided: list[str] = []
        for test in tests:
            if min(p.n_reference, p.n_current) < test.min_samples or p.reference_values is None:
                note = too_small_note(test.name, test.min_samples, p.n_reference, p.n_current)
                result = DriftResult(
                    p.feature.name, test.name, math.nan, None, math.nan, "", p.n_reference,
                    p.n_current, note=note,
                )  # fmt: skip
            else:
                result = test.run(
                    p.feature.name, p.reference_values, p.current_values, seed=self.spec.seed
                )
            p.results.append(result)
            if result.drifted is None and result.note:
                undecided.append(result.note)
        if undecided:
            p.message = "; ".join(undecided) + (
                "; widen the window or loosen the filters" if len(undecided) == len(tests) else ""
            )

    def explain(self, p: _Pending) -> tuple[tuple[Example, ...], tuple[Mapping[str, Any], ...]]:
        """Examples (embedding features) or category shifts (categorical ones)."""
        if p.feature.kind == EMBEDDING and p.current_texts is not None and self.spec.examples:
            texts = p.current_texts
            from assay.drift.detectors import farthest_examples

            found = farthest_examples(
                p.reference_values, p.current_values, k=self.spec.examples, seed=self.spec.seed
            )
            return (
                tuple(
                    Example(
                        trace_id=texts.trace_ids[i],
                        span_id=texts.span_ids[i],
                        score=float(score),
                        text=_snippet(texts.texts[i]),
                    )
                    for i, score in found
                ),
                (),
            )
        if p.feature.kind == CATEGORICAL:
            from assay.drift.detectors import category_shifts

            shifts = category_shifts(p.reference_values, p.current_values, k=5)
            return (), tuple(_jsonable(s) for s in shifts)
        return (), ()


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def _verdict(p: _Pending, results: Sequence[DriftResult]) -> str:
    if p.no_data:
        return NO_DATA
    decided = [r for r in results if r.drifted is not None]
    if not decided:
        return TOO_SMALL
    return DRIFT if any(r.drifted for r in decided) else NO_DRIFT


def run_check(store: Store, spec: DriftSpec, embedder: Embedder | None = None) -> DriftReport:
    """Compare the spec's windows feature by feature and return the report.

    Every test with a p-value is corrected together with all the others (``spec.correction``
    across features); a feature drifted when any of its tests did after correction.
    ``embedder`` overrides ``spec.embedder`` (tests pass a counting or fake one).
    """
    started = time.perf_counter()
    features = select_features(spec.features, spec.score_attributes)
    fields, attributes = window_fields(features)
    ref = load_window(store, spec.reference, fields, attributes, spec.max_samples, spec.seed)
    cur = load_window(store, spec.current, fields, attributes, spec.max_samples, spec.seed)
    check = _Check(store, spec, embedder)
    if windows_overlap(spec.reference, spec.current):
        check.notes.append(
            "the reference and current windows overlap in time: spans in both make a "
            "change harder to see; use disjoint ranges such as '7d ago..1d ago' and 'last 1d'"
        )
    for role, data in (("reference", ref), ("current", cur)):
        if data.sampled:
            check.notes.append(
                f"the {role} window holds {data.total:,} spans; {data.table.num_rows:,} were "
                "read (a uniform sample, the same on every check)"
            )
    pending = [_Pending(f) for f in features]
    for p in pending:
        check.feature(p, ref, cur)
    flat = [r for p in pending for r in p.results]
    corrected = correct(flat, alpha=spec.alpha, method=spec.correction) if flat else []
    if len(corrected) != len(flat):
        raise RuntimeError("correct() must return one result per input result, in order")
    reports: list[FeatureReport] = []
    at = 0
    for p in pending:
        results = tuple(corrected[at : at + len(p.results)])
        at += len(p.results)
        verdict = _verdict(p, results)
        examples: tuple[Example, ...] = ()
        shifts: tuple[Mapping[str, Any], ...] = ()
        if verdict == DRIFT:
            examples, shifts = check.explain(p)
        reports.append(
            FeatureReport(
                feature=p.feature.name,
                kind=p.feature.kind,
                description=p.feature.description,
                verdict=verdict,
                n_reference=p.n_reference,
                n_current=p.n_current,
                results=results,
                message=p.message,
                summary=p.summary,
                examples=examples,
                shifts=shifts,
            )
        )
    verdicts = {r.verdict for r in reports}
    overall = DRIFT if DRIFT in verdicts else NO_DRIFT if NO_DRIFT in verdicts else INCONCLUSIVE
    if overall == INCONCLUSIVE:
        check.notes.append(
            "nothing could be tested: every feature lacked data or enough values in a window"
        )
    return DriftReport(
        project=spec.project,
        verdict=overall,
        reference=_window_summary(ref),
        current=_window_summary(cur),
        features=tuple(reports),
        alpha=float(spec.alpha),
        correction=spec.correction,
        embedder=check.embedder_name,
        seed=spec.seed,
        max_samples=spec.max_samples,
        max_embeddings=spec.max_embeddings,
        notes=tuple(check.notes),
        created_at=datetime.now(UTC),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )

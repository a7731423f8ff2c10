"""End to end: a store with a known shift injected, checked feature by feature."""

from __future__ import annotations

import json

import pytest

from assay.drift.report import DriftReport, build_spec, run_check
from assay.drift.windows import WindowError
from assay.store import Store
from drift_support import CURRENT, DAY1, DAY2, NEW_TOPIC, REFERENCE, CountingEmbedder, traffic

pytestmark = pytest.mark.all_backends

N_TRACES = 150  # per window: 300 LLM calls (the answer and a judge call per trace)
UNRELATED = ("latency_ms", "input_tokens", "output_tokens", "model", "status", "finish_reason")


def check(
    store: Store, embedder: CountingEmbedder | None = None, **kw: object
) -> DriftReport:
    options: dict[str, object] = {"reference": REFERENCE, "current": CURRENT, **kw}
    spec = build_spec("default", **options)  # type: ignore[arg-type]
    return run_check(store, spec, embedder=embedder or CountingEmbedder())


@pytest.fixture
def shifted(store: Store) -> Store:
    """Reference: day 1. Current: day 2, answers twice as long, 40% of questions about crypto."""
    store.insert_spans(traffic(N_TRACES, DAY1, seed=1))
    store.insert_spans(traffic(N_TRACES, DAY2, seed=2, new_topic=0.4, longer_outputs=True))
    return store


def test_injected_shift_is_flagged_on_the_right_features_with_examples(
    shifted: Store,
) -> None:
    report = check(shifted)
    assert report.verdict == "drift"
    assert {"output_length", "input_embedding"} <= set(report.drifted)
    assert not set(UNRELATED) & set(report.drifted), report.drifted
    assert report.current.total == report.reference.total == 2 * N_TRACES

    length = report.feature("output_length")
    ks = next(r for r in length.results if r.test == "ks")
    assert ks.drifted and ks.p_adjusted is not None and ks.p_adjusted < 1e-6
    assert length.summary["current"]["median"] > 1.5 * length.summary["reference"]["median"]

    topic = report.feature("input_embedding")
    assert len(topic.examples) == 10
    on_topic = [e for e in topic.examples if e.text.split()[0] in NEW_TOPIC]
    assert len(on_topic) >= 8, [e.text[:40] for e in topic.examples]
    ids = {(s.trace_id, s.span_id) for s in shifted.list_spans(_all(), 1000, None).items}
    assert all((e.trace_id, e.span_id) in ids for e in topic.examples)

    # Every test with a p-value was corrected over the whole family.
    for f in report.features:
        for r in f.results:
            assert (r.p_value is None) == (r.p_adjusted is None)
            if r.p_value is not None:
                assert r.p_adjusted is not None and r.p_adjusted >= r.p_value


def _all():  # type: ignore[no-untyped-def]
    from assay.query import SpanFilter

    return SpanFilter("default", kind="llm")


def test_no_shift_no_drift(store: Store) -> None:
    store.insert_spans(traffic(N_TRACES, DAY1, seed=3))
    store.insert_spans(traffic(N_TRACES, DAY2, seed=4))
    report = check(store)
    assert report.verdict == "no drift", [
        (f.feature, [(r.test, r.p_adjusted, r.effect) for r in f.results if r.drifted])
        for f in report.features
        if f.verdict == "drift"
    ]
    assert all(not f.examples and not f.shifts for f in report.features)
    assert report.feature("cost").verdict == "no data"  # decoded without prices
    assert "priced" in (report.feature("cost").message or "")


def test_changed_model_mix_lists_the_categories_that_moved(store: Store) -> None:
    import dataclasses

    store.insert_spans(traffic(N_TRACES, DAY1, seed=5))
    # Half of the answers now come from a new model (every other trace's answer span).
    moved = [
        dataclasses.replace(s, model="gpt-5") if s.name == "ChatCompletion" and i % 8 == 2 else s
        for i, s in enumerate(traffic(N_TRACES, DAY2, seed=6))
    ]
    store.insert_spans(moved)
    report = check(store, features=("model", "latency_ms"))
    model = report.feature("model")
    assert model.verdict == "drift" and report.drifted == ["model"]
    top = model.shifts[0]
    assert top["category"] == "gpt-5" and top["reference_share"] == 0.0
    assert top["current_share"] > 0.15


def test_second_check_embeds_nothing(shifted: Store) -> None:
    embedder = CountingEmbedder()
    first = check(shifted, embedder, features=("input_embedding", "output_embedding"))
    texts = embedder.texts
    assert texts == 4 * 2 * N_TRACES  # two fields × two windows, every LLM call once
    assert first.feature("input_embedding").summary["current"]["embedded_now"] == 2 * N_TRACES
    second = check(shifted, embedder, features=("input_embedding", "output_embedding"))
    assert embedder.texts == texts
    assert second.feature("input_embedding").summary["current"]["embedded_now"] == 0
    assert [f.verdict for f in second.features] == [f.verdict for f in first.features]


def test_golden_set_as_the_reference(store: Store) -> None:
    reference = [s for s in traffic(N_TRACES, DAY1, seed=7) if s.name == "ChatCompletion"]
    cases = [{"id": f"c{i}", "input": s.input_text} for i, s in enumerate(reference)]
    store.save_golden_set("default", "support", "a" * 64, cases)
    store.insert_spans(traffic(N_TRACES, DAY2, seed=8, new_topic=0.5))
    spec = build_spec(
        "default",
        reference_goldens="support",
        current=CURRENT,
        filters={"name": "ChatCompletion"},
        features=("input_embedding", "input_length", "output_length", "latency_ms"),
    )
    report = run_check(store, spec, embedder=CountingEmbedder())
    assert report.reference.kind == "goldens" and report.reference.golden == f"support@{'a' * 64}"
    assert report.feature("input_embedding").verdict == "drift"
    assert report.feature("input_length").verdict == "no drift"
    assert report.feature("output_length").verdict == "no data"  # the cases have no expected
    latency = report.feature("latency_ms")
    assert latency.verdict == "no data" and "golden set" in (latency.message or "")


def test_a_window_too_small_says_so(shifted: Store) -> None:
    embedder = CountingEmbedder()
    report = check(
        shifted,
        embedder,
        current="2026-03-02T00:00:00Z..2026-03-02T00:05:00Z",
        features=("output_length", "input_embedding"),
    )
    assert report.verdict == "inconclusive"
    for name in ("output_length", "input_embedding"):
        f = report.feature(name)
        assert f.verdict == "too small" and f.n_current == 10
        assert "window too small" in (f.message or "") and "widen the window" in (f.message or "")
    assert embedder.texts == 0  # nothing embedded for a window that cannot be tested


def test_report_json_is_versioned_and_serialisable(shifted: Store) -> None:
    report = check(shifted, max_samples=100, features=("output_length", "tools", "attr:x"))
    data = report.to_json()
    text = json.dumps(data, allow_nan=False)
    assert data["version"] == 1 and json.loads(text)["verdict"] == report.verdict
    assert data["reference"]["sampled"] and data["reference"]["read"] == 100
    assert data["sampling"]["max_samples"] == 100 and "hash" in data["sampling"]["method"]
    assert any("uniform sample" in n for n in data["notes"])
    assert [f["feature"] for f in data["features"]] == ["output_length", "tools", "attr:x"]
    assert data["features"][2]["verdict"] == "no data"


def test_spec_errors() -> None:
    with pytest.raises(WindowError, match="exactly one reference"):
        build_spec("default", current="last 1d")
    with pytest.raises(WindowError, match="exactly one reference"):
        build_spec("default", current="last 1d", reference="7d..1d", reference_goldens="g")
    with pytest.raises(WindowError, match="correction"):
        build_spec("default", current="last 1d", reference="7d..1d", correction="bonferroni")
    spec = build_spec("default", current="last 1d", reference="7d..1d")
    assert spec.current.filter.kind == "llm"
    every = build_spec("default", current="last 1d", reference="7d..1d", all_kinds=True)
    assert every.current.filter.kind is None
    tools = build_spec("default", current="last 1d", reference="7d..1d", filters={"kind": "tool"})
    assert tools.reference.filter.kind == "tool"  # type: ignore[union-attr]


def test_overlapping_windows_get_a_note(shifted: Store) -> None:
    report = check(
        shifted,
        reference="2026-03-01..2026-03-03",
        features=("latency_ms",),
    )
    assert any("overlap" in n for n in report.notes)

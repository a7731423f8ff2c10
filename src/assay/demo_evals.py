"""The eval half of ``assay demo``: the golden cases, the support bot as a deterministic
Python-callable target (baseline and candidate prompts), and a recorder that writes a run
straight to the store, as the server's API does."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from assay.demo_traces import NEW_RELEASE, TOPICS, Topic
from assay.model import Case, EvalRun, Output, Trial
from assay.pricing import PriceTable
from assay.store import Store

TARGET_REF = "assay.demo_evals:demo_app_for"
GOLDEN_DESCRIPTION = "Support questions with the fact a correct answer must contain."


def _topic_of(case: Case) -> Topic:
    name = case.metadata.get("topic")
    for t in TOPICS:
        if t.name == name:
            return t
    text = json.dumps(case.input).lower()
    for t in TOPICS:
        if t.name.replace("-", " ") in text or t.name in text:
            return t
    return TOPICS[0]


def _unit(*parts: object) -> float:
    return random.Random(":".join(str(p) for p in parts)).random()


def _reliable(seed: int, case_id: str) -> bool:
    return _unit(seed, "case", case_id) < 0.72


def dropped_cases(seed: int, cases: Sequence[Case]) -> frozenset[str]:
    """The cases the candidate's prompt breaks: a third of those the baseline gets right,
    so the regression is there whatever the seed."""
    reliable = sorted(
        (c.id for c in cases if _reliable(seed, c.id)), key=lambda i: _unit(seed, "drops", i)
    )
    return frozenset(reliable[: max(3, len(cases) // 3)])


def demo_app_for(
    seed: int, variant: str, prices: PriceTable, dropped: frozenset[str]
) -> Callable[..., Any]:
    """The support bot as an eval target: deterministic per (seed, variant, case, trial).

    The candidate (the v1.9 prompt) drops the key fact on the ``dropped`` cases; both cite
    their source equally often. Some cases are flaky: they pass on some trials only.
    """
    calls: dict[str, int] = {}

    async def demo_app(case: Case) -> Output:
        # Trials of one case start in order (the runner goes trial by trial), so the count
        # of calls so far is the trial number.
        k = calls.get(case.id, 0)
        calls[case.id] = k + 1
        topic = _topic_of(case)
        kind = _unit(seed, "case", case.id)
        p_fact = 0.97 if _reliable(seed, case.id) else (0.5 if kind < 0.9 else 0.12)
        if variant == "candidate" and case.id in dropped:
            p_fact = 0.08
        has_fact = _unit(seed, "fact", case.id, k) < p_fact
        p_cite = 0.9 if _unit(seed, "cite-case", case.id) < 0.8 else 0.45
        cites = _unit(seed, "cite", case.id, k) < p_cite
        if variant == "candidate" and _unit(seed, "recite", case.id, k) < 0.3:
            # Sampling noise: the candidate's citing is redrawn now and then, unbiased.
            cites = _unit(seed, "cite-again", case.id, k) < p_cite
        fact = topic.answer if has_fact else "It depends on your plan and settings."
        text = fact + (f" [doc-{1 + int(kind * 39)}]" if cites else "")
        if variant == "candidate":
            text = (
                "Thanks for reaching out, happy to help! "
                + text
                + " Let me know if there is anything else I can do for you."
            )
        model = "gpt-4.1" if variant == "candidate" else "gpt-4o-mini"
        tin = 420 + len(json.dumps(case.input)) // 4
        tout = max(1, len(text) // 4)
        latency = 350.0 + tout * (24.0 if variant == "candidate" else 13.0)
        latency *= 0.8 + 0.4 * _unit(seed, "latency", variant, case.id, k)
        return Output(
            text=text,
            model=model,
            input_tokens=tin,
            output_tokens=tout,
            cost=prices.cost(model, tin, tout),
            latency_ms=round(latency, 1),
        )

    return demo_app


class StoreRecorder:
    """The runner's recorder writing straight to the store (what the server's API does)."""

    def __init__(self, store: Store, project: str, prices: PriceTable) -> None:
        self.store = store
        self.project = project
        self.prices = prices

    async def start_run(self, run: EvalRun) -> EvalRun:
        self.store.create_run(replace(run, project=self.project))
        stored = self.store.get_run(self.project, run.run_id)
        assert stored is not None
        return stored

    async def get_run(self, run_id: str) -> EvalRun | None:
        return self.store.get_run(self.project, run_id)

    async def completed(self, run_id: str) -> set[tuple[str, int]]:
        return self.store.completed_trials(self.project, run_id)

    async def record(self, trials: Sequence[Trial]) -> None:
        self.store.record_trials(self.project, trials)

    async def spans(self, otlp_protobuf: bytes) -> None:
        from assay.otlp import decode

        self.store.insert_spans(decode(otlp_protobuf, False, self.project, self.prices).spans)

    async def finish(self, run_id: str, status: str, trials: int | None = None) -> None:
        self.store.set_run_status(self.project, run_id, status, trials)


# -- golden cases ----------------------------------------------------------------------------


def cases_v1() -> list[dict[str, Any]]:
    cases = []
    for topic in TOPICS[:5]:
        for i, q in enumerate(topic.questions, 1):
            question = q.format(order="A-20417", days=6, seats=12)
            cases.append(
                {
                    "id": f"{topic.name}-{i}",
                    "input": question,
                    "expected": topic.fact,
                    "metadata": {"topic": topic.name},
                }
            )
    extra = (
        ("refund", "Can I get a refund if I cancel in the first week?"),
        ("shipping", "Do you ship to the Canary Islands?"),
        ("password", "How long is the password reset link valid?"),
        ("billing", "Where do I download last month's invoice?"),
        ("api", "How many requests per minute can one API key make?"),
        ("api", "What does Retry-After mean on a 429?"),
        ("billing", "I need invoices sent to accounting@example.com automatically."),
        ("password", "Can I turn on two-factor authentication?"),
    )
    topics = {t.name: t for t in TOPICS}
    for i, (name, question) in enumerate(extra, 1):
        cases.append(
            {
                "id": f"{name}-x{i}",
                "input": question,
                "expected": topics[name].fact,
                "metadata": {"topic": name},
            }
        )
    return cases


def cases_v2() -> list[dict[str, Any]]:
    """v1 with three cases edited and the new plan and SSO questions added."""
    cases = cases_v1()
    edits = {
        "refund-3": {"input": "What's your refund policy? I bought the wrong plan 3 days ago."},
        "shipping-2": {"expected": "tracking link"},
        "api-3": {"input": "Is there a sandbox (test mode) for the API?"},
    }
    for c in cases:
        c.update(edits.get(c["id"], {}))
    cases[[c["id"] for c in cases].index("shipping-2")]["metadata"] = {
        "topic": "shipping",
        "note": "edited: accept the tracking link answer",
    }
    for topic in TOPICS[5:]:
        for i, q in enumerate(topic.questions, 1):
            cases.append(
                {
                    "id": f"{topic.name}-{i}",
                    "input": q.format(order="A-31337", days=4, seats=40),
                    "expected": topic.fact,
                    "metadata": {"topic": topic.name, "added_for": NEW_RELEASE},
                }
            )
    cases.append(
        {
            "id": "sso-chat-1",
            "input": [
                {"role": "user", "content": "We use Okta."},
                {"role": "assistant", "content": "Great, how can I help with Okta?"},
                {"role": "user", "content": "How do I turn on SSO for everyone?"},
            ],
            "expected": "SAML",
            "metadata": {"topic": "sso", "added_for": NEW_RELEASE},
        }
    )
    return cases

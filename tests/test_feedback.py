"""Feedback on traces: validation, idempotency, conflicts, the SDK client and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from assay.cli import cli
from assay.feedback import FeedbackClient, FeedbackError, make_feedback
from assay.server import create_app
from assay.settings import Settings
from assay.store import Store

#: Tests with the `store` fixture run on each store backend (tests/conftest.py).
pytestmark = pytest.mark.all_backends

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "name 'bad name'"),
        ({"trace_id": "xyz"}, "32 hex characters"),
        ({"span_id": "12"}, "16 hex characters"),
        ({"source": "boss"}, "user, reviewer, judge, code"),
        ({"value": float("nan")}, "finite"),
        ({"value": None}, "give a value"),
        ({"value": ["a"]}, "not list"),
        ({"value": ""}, "1-200 characters"),
        ({"id": " padded "}, "surrounding spaces"),
    ],
)
def test_bad_feedback_is_refused_with_a_reason(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"trace_id": TRACE, "name": "helpfulness", "value": 4, **kwargs}
    trace_id, name, value = args.pop("trace_id"), args.pop("name"), args.pop("value")
    with pytest.raises(FeedbackError, match=message):
        make_feedback("p", trace_id, name, value, **args)


def test_value_kinds() -> None:
    assert make_feedback("p", TRACE, "thumbs", True).kind == "boolean"
    assert make_feedback("p", TRACE, "thumbs", False).number == 0.0
    assert make_feedback("p", TRACE, "stars", 4).number == 4.0
    assert make_feedback("p", TRACE, "topic", "billing").category == "billing"
    only = make_feedback("p", TRACE.upper(), "note", comment="slow", span_id=SPAN.upper())
    assert (only.kind, only.trace_id, only.span_id) == ("comment", TRACE, SPAN)


@pytest.fixture
def http(db_path: str, store: Store) -> Iterator[TestClient]:
    app = create_app(Settings(db=db_path, decode_workers=0), store=store)
    with TestClient(app) as client:
        yield client


def test_client_send_is_idempotent_and_conflicts_are_409(http: TestClient) -> None:
    fb = FeedbackClient(http=http)
    first = fb.send(TRACE, "thumbs", True, source="user", author="u1", id="fb-1")
    again = fb.send(TRACE, "thumbs", True, source="user", author="u1", id="fb-1")
    assert first == again and first["value"] is True
    with pytest.raises(httpx.HTTPStatusError, match=r"409.*already hold different feedback"):
        fb.send(TRACE, "thumbs", False, source="user", author="u1", id="fb-1")
    fb.send(TRACE, "stars", 4, span_id=SPAN, source="reviewer", author="ana")
    listed = http.get("/api/v1/feedback", params={"trace_id": TRACE}).json()["items"]
    assert sorted(f["name"] for f in listed) == ["stars", "thumbs"]
    by_source = http.get("/api/v1/feedback", params={"source": "reviewer"}).json()["items"]
    assert [f["author"] for f in by_source] == ["ana"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"items": []}, 422, ""),
        ({"items": [{"trace_id": "nope", "name": "x", "value": 1}]}, 422, "items[0]: trace_id"),
        (
            {"items": [{"trace_id": TRACE, "name": "x", "value": 1, "source": "boss"}]},
            422,
            "source",
        ),
        (
            {
                "items": [
                    {"trace_id": TRACE, "name": "x", "value": 1, "id": "a"},
                    {"trace_id": TRACE, "name": "y", "value": 1, "id": "a"},
                ]
            },
            422,
            "share one id",
        ),
    ],
)
def test_api_refuses_bad_feedback(
    http: TestClient, body: dict[str, Any], status: int, reason: str
) -> None:
    resp = http.post("/api/v1/feedback", json=body)
    assert resp.status_code == status and reason in resp.text
    assert http.get("/api/v1/feedback", params={"source": "boss"}).status_code == 400


def test_cli_add_and_list(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"ASSAY_DB": db_path, "ASSAY_URL": "http://127.0.0.1:9"}
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["feedback", "add", TRACE, "--name", "helpfulness", "--value", "4", "--author", "ana"],
        env=env,
    )
    assert out.exit_code == 0, out.output
    assert "helpfulness = 4" in out.output
    listed = runner.invoke(cli, ["feedback", "list", "--json"], env=env)
    assert '"author": "ana"' in listed.output and '"source": "reviewer"' in listed.output
    bad = runner.invoke(cli, ["feedback", "add", "zz", "--name", "x", "--value", "1"], env=env)
    assert bad.exit_code == 1 and "32 hex characters" in bad.output

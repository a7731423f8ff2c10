"""`assay drift check|features` as a user runs them against a database file (no server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from assay.cli import cli
from assay.store.duckdb import DuckDBStore
from drift_support import CURRENT, DAY1, DAY2, REFERENCE, traffic


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A database whose day-2 traffic has answers twice as long as day 1's."""
    path = tmp_path_factory.mktemp("drift") / "d.duckdb"
    store = DuckDBStore(str(path))
    store.insert_spans(traffic(100, DAY1, seed=1))
    store.insert_spans(traffic(100, DAY2, seed=2, longer_outputs=True))
    store.save_golden_set("default", "support", "b" * 64, [{"id": "a", "input": "hello"}])
    store.close()
    # Nothing listens on port 9: the app runs in-process on the database file.
    yield {"ASSAY_DB": str(path), "ASSAY_URL": "http://127.0.0.1:9", "ASSAY_EMBEDDER": "hashing"}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, auto_envvar_prefix="ASSAY")


FEATURES = "output_length,latency_ms,model,output_embedding"


def test_check_prints_verdicts_effects_and_what_moved(env: dict[str, str]) -> None:
    out = run(env, "drift", "check", "--reference", REFERENCE, "--current", CURRENT,
              "--features", FEATURES)  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "DRIFT in 1 of 4 tested features: output_length" in out.output
    assert "output_length: median" in out.output and "(+100%)" in out.output
    assert "holm" in out.output and "200 spans" in out.output


def test_check_json_and_fail_on_drift(env: dict[str, str]) -> None:
    args = ["drift", "check", "--reference", REFERENCE, "--current", CURRENT,
            "--features", FEATURES, "--json"]  # fmt: skip
    out = run(env, *args)
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["version"] == 1 and report["drifted"] == ["output_length"]
    assert report["embedder"] == "hashing:512"
    assert report["current"]["filters"] == {"kind": "llm"}
    failed = run(env, *args, "--fail-on-drift")
    assert failed.exit_code == 1
    calm = run(env, "drift", "check", "--reference", REFERENCE, "--current", CURRENT,
               "--features", "latency_ms", "--fail-on-drift")  # fmt: skip
    assert calm.exit_code == 0 and "no drift detected in 1 tested features" in calm.output


def test_check_filters_reach_both_windows(env: dict[str, str]) -> None:
    out = run(env, "drift", "check", "--reference", REFERENCE, "--current", CURRENT,
              "--features", "output_length", "--model", "gpt-4o", "--attr", "x=1",
              "--json")  # fmt: skip
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["reference"]["total"] == 0
    assert report["current"]["filters"] == {
        "kind": "llm",
        "model": "gpt-4o",
        "attributes": {"x": "1"},
    }
    assert report["verdict"] == "inconclusive"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--current", CURRENT], "exactly one reference"),
        (["--reference", "1d ago..7d ago"], "write the older time first"),
        (["--reference", REFERENCE, "--features", "latency"], "unknown drift feature"),
        (["--reference-goldens", "nope"], "no golden set 'nope'"),
        (["--reference", REFERENCE, "--embedder", "word2vec"], "embedder"),
        (["--reference", REFERENCE, "--attr", "novalue"], "key=value"),
    ],
)
def test_usage_errors_exit_2_with_the_reason(
    env: dict[str, str], args: list[str], reason: str
) -> None:
    out = run(env, "drift", "check", *args)
    assert out.exit_code == 2, out.output
    assert reason in out.output


def test_features_lists_every_feature(env: dict[str, str]) -> None:
    out = run(env, "drift", "features", "--json")
    assert out.exit_code == 0
    names = [f["name"] for f in json.loads(out.output)]
    assert names[:2] == ["input_embedding", "output_embedding"] and "tools" in names
    assert "drift" in run(env, "--help").output
    assert "--reference-goldens" in run(env, "drift", "check", "-h").output


def test_golden_reference_from_the_cli(env: dict[str, str], tmp_path: Path) -> None:
    out = run(env, "drift", "check", "--reference-goldens", "support@bbbb", "--current", CURRENT,
              "--features", "input_length,latency_ms", "--json")  # fmt: skip
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["reference"]["kind"] == "goldens"
    assert [f["verdict"] for f in report["features"]] == ["too small", "no data"]

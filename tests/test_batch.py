"""Arrow interchange: pyarrow's pandas probe is skipped without hiding pandas."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_pyarrow_no_longer_imports_pandas_for_plain_arrays() -> None:
    out = _run(
        """
        import sys
        from assay.batch import skip_pandas_probe
        skip_pandas_probe()
        import datetime as dt, pyarrow as pa
        pa.array(["a", None]); pa.array([1.5, None])
        pa.array([dt.datetime.now(dt.UTC)], pa.timestamp("us", tz="UTC"))
        print("pandas" in sys.modules)
        """
    )
    assert out == "False"


def test_pandas_still_works_after_the_probe_is_skipped() -> None:
    pytest.importorskip("pandas")
    out = _run(
        """
        from assay.batch import skip_pandas_probe
        skip_pandas_probe()
        import pandas as pd, pyarrow as pa
        t = pa.Table.from_pandas(pd.DataFrame({"x": [1, 2]}))
        print(t.num_rows, t.to_pandas()["x"].sum())
        """
    )
    assert out == "2 3"

"""assay: traces, costs, evals, drift and calibrated judges for LLM applications."""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assay.evaluation import EvalResult, aevaluate, compare, evaluate
    from assay.goldens import GoldenSet, load_golden_set
    from assay.model import (
        Aggregate,
        ApiKey,
        Case,
        EvalRun,
        Output,
        Project,
        Score,
        ScorerSpec,
        Span,
        TraceSummary,
        Trial,
        UnpricedModel,
    )
    from assay.pricing import Price, PriceTable, load_prices
    from assay.query import Page, SpanFilter
    from assay.scorers import Scorer, custom, scorer
    from assay.settings import Settings
    from assay.store import Store, open_store
    from assay.targets import Target

#: Public names imported on first use, with the module that defines them.
_LAZY = {
    **dict.fromkeys(
        (
            "Aggregate",
            "ApiKey",
            "Case",
            "EvalRun",
            "Output",
            "Project",
            "Score",
            "ScorerSpec",
            "Span",
            "TraceSummary",
            "Trial",
            "UnpricedModel",
        ),
        "assay.model",
    ),
    "Price": "assay.pricing",
    "PriceTable": "assay.pricing",
    "load_prices": "assay.pricing",
    "Page": "assay.query",
    "SpanFilter": "assay.query",
    "Settings": "assay.settings",
    "Store": "assay.store",
    "open_store": "assay.store",
    "EvalResult": "assay.evaluation",
    "aevaluate": "assay.evaluation",
    "compare": "assay.evaluation",
    "evaluate": "assay.evaluation",
    "GoldenSet": "assay.goldens",
    "load_golden_set": "assay.goldens",
    "Scorer": "assay.scorers",
    "custom": "assay.scorers",
    "scorer": "assay.scorers",
    "Target": "assay.targets",
}


def __getattr__(name: str) -> Any:
    # Nothing is imported up front: evaluation pulls in HTTP clients and statistics, the
    # store DuckDB, pyarrow and numpy, and a decode worker process (assay.decode_worker)
    # must stay small, so each name loads its module on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'assay' has no attribute {name!r}")


__all__ = [
    "Aggregate",
    "ApiKey",
    "Case",
    "EvalResult",
    "EvalRun",
    "GoldenSet",
    "Output",
    "Page",
    "Price",
    "PriceTable",
    "Project",
    "Score",
    "Scorer",
    "ScorerSpec",
    "Settings",
    "Span",
    "SpanFilter",
    "Store",
    "Target",
    "TraceSummary",
    "Trial",
    "UnpricedModel",
    "__version__",
    "aevaluate",
    "compare",
    "custom",
    "evaluate",
    "load_golden_set",
    "load_prices",
    "open_store",
    "scorer",
]

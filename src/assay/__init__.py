"""assay: traces, costs, evals, drift and calibrated judges for LLM applications."""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from typing import TYPE_CHECKING, Any

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
from assay.settings import Settings
from assay.store import Store, open_store

if TYPE_CHECKING:
    from assay.evaluation import EvalResult, aevaluate, compare, evaluate
    from assay.goldens import GoldenSet, load_golden_set
    from assay.scorers import Scorer, custom, scorer
    from assay.targets import Target

#: Public names imported on first use, with the module that defines them.
_LAZY = {
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
    # Evaluation pulls in HTTP clients and statistics; `assay serve` and the trace
    # commands should not pay for them at start-up.
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

"""assay: traces, costs, evals, drift and calibrated judges for LLM applications."""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from assay.model import Aggregate, ApiKey, Project, Span, TraceSummary, UnpricedModel
from assay.pricing import Price, PriceTable, load_prices
from assay.query import Page, SpanFilter
from assay.settings import Settings
from assay.store import Store, open_store

__all__ = [
    "Aggregate",
    "ApiKey",
    "Page",
    "Price",
    "PriceTable",
    "Project",
    "Settings",
    "Span",
    "SpanFilter",
    "Store",
    "TraceSummary",
    "UnpricedModel",
    "__version__",
    "load_prices",
    "open_store",
]

"""Scorers turn an output into a Score: a registry of factories, built-ins, plugins.

``build("exact")`` or ``build({"contains": {"value": "refund"}})`` makes a Scorer;
``available()`` lists every name; ``@scorer`` registers a factory; ``@custom`` turns a
plain function into a registered Scorer. See docs/scorers.md.
"""

from __future__ import annotations

from assay.scorers.base import Scorer, ScorerError, case_options
from assay.scorers.deterministic import (
    contains,
    exact,
    json_schema,
    json_valid,
    normalize,
    normalized,
    numeric,
    regex,
)
from assay.scorers.embedding import embedding_similarity
from assay.scorers.registry import (
    PLUGIN_GROUP,
    Factory,
    FunctionScorer,
    available,
    build,
    custom,
    describe,
    scorer,
    to_spec,
)

__all__ = [
    "PLUGIN_GROUP",
    "Factory",
    "FunctionScorer",
    "Scorer",
    "ScorerError",
    "available",
    "build",
    "case_options",
    "contains",
    "custom",
    "describe",
    "embedding_similarity",
    "exact",
    "json_schema",
    "json_valid",
    "normalize",
    "normalized",
    "numeric",
    "regex",
    "scorer",
    "to_spec",
]

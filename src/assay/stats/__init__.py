"""Statistics for evaluation runs: intervals, non-determinism, paired comparison, power.

Inputs are plain Python sequences and mappings; results are frozen dataclasses. The
formulas and their sources are in docs/statistics.md.
"""

from __future__ import annotations

from assay.stats.intervals import Estimate, clustered_se, estimate_mean, wilson_interval
from assay.stats.paired import (
    Comparison,
    Verdict,
    benjamini_hochberg,
    compare_many,
    compare_paired,
    mcnemar_exact,
)
from assay.stats.power import (
    Plan,
    PlanRow,
    case_correlation,
    minimum_detectable_effect,
    plan,
    sample_size,
    variance_components,
)
from assay.stats.trials import (
    TrialAgreement,
    average_pass_at_k,
    average_pass_hat_k,
    pass_at_k,
    pass_hat_k,
    trial_agreement,
)

__all__ = [
    "Comparison",
    "Estimate",
    "Plan",
    "PlanRow",
    "TrialAgreement",
    "Verdict",
    "average_pass_at_k",
    "average_pass_hat_k",
    "benjamini_hochberg",
    "case_correlation",
    "clustered_se",
    "compare_many",
    "compare_paired",
    "estimate_mean",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "pass_at_k",
    "pass_hat_k",
    "plan",
    "sample_size",
    "trial_agreement",
    "variance_components",
    "wilson_interval",
]

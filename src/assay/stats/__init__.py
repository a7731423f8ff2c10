"""Statistics for evaluation runs: intervals, non-determinism, paired comparison, power.

Also for judges: agreement with people, prediction-powered quality estimates (PPI++),
calibration, and conformal abstention thresholds.

Inputs are plain Python sequences and mappings; results are frozen dataclasses. The
formulas and their sources are in docs/statistics.md.
"""

from __future__ import annotations

from assay.stats.agreement import (
    ConfusionMatrix,
    JudgeAgreement,
    cohen_kappa,
    confusion_matrix,
    judge_agreement,
    krippendorff_alpha,
    scott_pi,
)
from assay.stats.calibration import (
    CalibrationReport,
    Calibrator,
    IsotonicCalibrator,
    PassRateEstimate,
    PlattCalibrator,
    ReliabilityBin,
    ReliabilityDiagram,
    brier_score,
    calibration_report,
    calibrator_from_dict,
    expected_calibration_error,
    expected_pass_rate,
    fit_calibrator,
    reliability_diagram,
)
from assay.stats.conformal import ConformalThreshold, conformal_threshold
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
from assay.stats.ppi import PPIEstimate, ppi_mean
from assay.stats.trials import (
    TrialAgreement,
    average_pass_at_k,
    average_pass_hat_k,
    pass_at_k,
    pass_hat_k,
    trial_agreement,
)

__all__ = [
    "CalibrationReport",
    "Calibrator",
    "Comparison",
    "ConformalThreshold",
    "ConfusionMatrix",
    "Estimate",
    "IsotonicCalibrator",
    "JudgeAgreement",
    "PPIEstimate",
    "PassRateEstimate",
    "Plan",
    "PlanRow",
    "PlattCalibrator",
    "ReliabilityBin",
    "ReliabilityDiagram",
    "TrialAgreement",
    "Verdict",
    "average_pass_at_k",
    "average_pass_hat_k",
    "benjamini_hochberg",
    "brier_score",
    "calibration_report",
    "calibrator_from_dict",
    "case_correlation",
    "clustered_se",
    "cohen_kappa",
    "compare_many",
    "compare_paired",
    "conformal_threshold",
    "confusion_matrix",
    "estimate_mean",
    "expected_calibration_error",
    "expected_pass_rate",
    "fit_calibrator",
    "judge_agreement",
    "krippendorff_alpha",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "pass_at_k",
    "pass_hat_k",
    "plan",
    "ppi_mean",
    "reliability_diagram",
    "sample_size",
    "scott_pi",
    "trial_agreement",
    "variance_components",
    "wilson_interval",
]

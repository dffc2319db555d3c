"""Honest few-shot evaluation: protocols, baselines, GTL arms, paired comparisons, reports.

Every arm is fitted on the same folds with the same per-fold seed; nothing is tuned on a test fold.

Examples
--------
>>> from gtlomics.evaluation import StratifiedKFoldCV, baseline_arms, evaluate, summarize
>>> X = np.random.default_rng(0).poisson(20, size=(20, 30))
>>> y = np.repeat(["a", "b"], 10)
>>> result = evaluate(baseline_arms(["logreg", "knn"]), X, y, protocol=StratifiedKFoldCV(2),
...                   n_repeats=1, progress=False)
>>> list(summarize(result).index)
['logreg', 'knn']
"""

import numpy as np  # noqa: F401  (used by the doctest above)

from gtlomics.evaluation.arms import (
    ABLATION_NAMES,
    BASELINE_NAMES,
    CONTROL_ARM_NAMES,
    ENCODING_BASELINE_NAMES,
    GTL_ARM_NAMES,
    Arm,
    baseline_arms,
    build_arms,
    gtl_arms,
    guide_mode_arms,
    regression_arms,
    scout_count_arms,
    select_arms,
)
from gtlomics.evaluation.baselines import (
    REGRESSION_BASELINE_NAMES,
    BaselineConfig,
    InnerCVLogisticRegression,
    make_baseline,
    make_regression_baseline,
)
from gtlomics.evaluation.compare import (
    PairedComparison,
    paired_comparison,
    pooled_scores,
    summarize,
)
from gtlomics.evaluation.experiment import ExperimentOutcome, ExperimentSpec, run_experiment
from gtlomics.evaluation.features import LogCPM, MostVariableGenes
from gtlomics.evaluation.history import TrainingHistory
from gtlomics.evaluation.metrics import (
    METRICS,
    REGRESSION_METRICS,
    Predictions,
    score_predictions,
    score_regression,
)
from gtlomics.evaluation.protocols import (
    CrossDataset,
    KFoldCV,
    LeaveOneGroupOut,
    LeaveOneOut,
    Split,
    StratifiedGroupKFoldCV,
    StratifiedKFoldCV,
    make_protocol,
)
from gtlomics.evaluation.regression import (
    RegressionResult,
    evaluate_regression,
    pooled_regression_scores,
    regression_summary,
    regression_summary_markdown,
    write_regression_report,
)
from gtlomics.evaluation.report import Report, summary_markdown, write_report
from gtlomics.evaluation.runner import EvaluationResult, evaluate

__all__ = [
    "ABLATION_NAMES",
    "BASELINE_NAMES",
    "CONTROL_ARM_NAMES",
    "ENCODING_BASELINE_NAMES",
    "GTL_ARM_NAMES",
    "METRICS",
    "REGRESSION_BASELINE_NAMES",
    "REGRESSION_METRICS",
    "Arm",
    "BaselineConfig",
    "CrossDataset",
    "EvaluationResult",
    "ExperimentOutcome",
    "ExperimentSpec",
    "InnerCVLogisticRegression",
    "KFoldCV",
    "LeaveOneGroupOut",
    "LeaveOneOut",
    "LogCPM",
    "MostVariableGenes",
    "PairedComparison",
    "Predictions",
    "RegressionResult",
    "Report",
    "Split",
    "StratifiedGroupKFoldCV",
    "StratifiedKFoldCV",
    "TrainingHistory",
    "baseline_arms",
    "build_arms",
    "evaluate",
    "evaluate_regression",
    "gtl_arms",
    "guide_mode_arms",
    "make_baseline",
    "make_protocol",
    "make_regression_baseline",
    "paired_comparison",
    "pooled_regression_scores",
    "pooled_scores",
    "regression_arms",
    "regression_summary",
    "regression_summary_markdown",
    "run_experiment",
    "score_predictions",
    "score_regression",
    "scout_count_arms",
    "select_arms",
    "summarize",
    "summary_markdown",
    "write_regression_report",
    "write_report",
]

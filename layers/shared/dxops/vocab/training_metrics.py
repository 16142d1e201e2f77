"""The training job's metric lines (stdout) and the regexes SageMaker reads them with.

ml/train.py prints `dxops-metric <name>=<value>`; CreateTrainingJob's MetricDefinitions (built by
the training state machine's prepare step) turn them into the job's metrics and CloudWatch metrics.
Standard library only: it also runs in the training image.
"""

from __future__ import annotations

METRIC_PREFIX = "dxops-metric"
METRIC_NAMES = (
    "cv_macro_f1",
    "cv_rare_recall",
    "test_accuracy",
    "test_macro_f1",
    "test_top3_accuracy",
    "test_rare_recall",
    "test_ece",
    "train_seconds",
)
METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": name, "Regex": rf"{METRIC_PREFIX} {name}=([-0-9.eE]+)"} for name in METRIC_NAMES
]

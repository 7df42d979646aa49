"""Thresholds from the scoring transforms' outputs in S3 (docs/architecture.md, *Thresholds*)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from training import prepare, thresholds
from training.custom_resource import jobs, naming
from training.custom_resource.errors import TrainingFailed
from training.custom_resource.scores import parse_csv_scores, parse_json_scores, parse_labels
from training.custom_resource.storage import Storage


@dataclass(frozen=True)
class Evaluation:
    fraud: thresholds.ThresholdChoice  # best-F1 cut-off on the validation split, with its confusion
    anomaly_threshold: float  # mean + k·std of the RCF scores on the training split


def transform_output_key(model: str, scoring_job: str) -> str:
    """Batch transform writes `<input file name>.out` under the job's output prefix."""
    return f"{naming.PREFIXES.transform}{scoring_job}/{Path(jobs.scored_file(model)).name}.out"


def evaluate(storage: Storage, bucket: str, *, data_prefix: str, scoring_jobs: dict[str, str]) -> Evaluation:
    labels = parse_labels(storage.read_text(bucket, data_prefix + prepare.XGBOOST_FILES["validation"]))
    probabilities = parse_csv_scores(
        storage.read_text(bucket, transform_output_key("fraud", scoring_jobs["fraud"]))
    )
    if len(probabilities) != len(labels):
        raise TrainingFailed(f"scoring returned {len(probabilities)} predictions for {len(labels)} rows")
    fraud = thresholds.best_f1_threshold(labels, probabilities)
    anomaly_scores = parse_json_scores(
        storage.read_text(bucket, transform_output_key("anomaly", scoring_jobs["anomaly"]))
    )
    return Evaluation(fraud=fraud, anomaly_threshold=thresholds.anomaly_threshold(anomaly_scores))

"""Parse the built-in algorithms' batch-transform outputs (and our labels) into plain lists."""

from __future__ import annotations

from contracts.sagemaker_formats import CSV, parse_rcf, parse_xgboost


def parse_csv_scores(text: str) -> list[float]:
    """XGBoost batch-transform output (`text/csv`)."""
    return parse_xgboost(text, CSV)


def parse_json_scores(text: str) -> list[float]:
    """RCF batch-transform output."""
    return parse_rcf(text)


def parse_labels(xgboost_csv: str) -> list[int]:
    """The label column (first) of an XGBoost training CSV."""
    return [int(float(line.split(",", 1)[0])) for line in xgboost_csv.splitlines() if line.strip()]

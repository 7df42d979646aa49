"""Parse the built-in algorithms' batch-transform outputs (and our labels) into plain lists."""

from __future__ import annotations

import json


def parse_csv_scores(text: str) -> list[float]:
    """XGBoost `text/csv` output: older containers join a batch's predictions with commas, newer ones
    with newlines; accept both."""
    return [float(token) for line in text.splitlines() for token in line.split(",") if token.strip()]


def parse_json_scores(text: str) -> list[float]:
    """RCF output, one JSON document per line: `{"score": s}` (jsonlines) or `{"scores": [{"score": s}]}`."""
    scores: list[float] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        document = json.loads(line)
        if "scores" in document:
            scores.extend(float(item["score"]) for item in document["scores"])
        else:
            scores.append(float(document["score"]))
    return scores


def parse_labels(xgboost_csv: str) -> list[int]:
    """The label column (first) of an XGBoost training CSV."""
    return [int(float(line.split(",", 1)[0])) for line in xgboost_csv.splitlines() if line.strip()]

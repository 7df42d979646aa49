"""The built-in algorithms' wire formats, read by the scorer (real-time responses) and by the
training custom resource (batch-transform outputs): one parser each.

- XGBoost `text/csv`: predictions joined by commas (older containers) or newlines (newer ones);
  `application/json`: `{"predictions": [{"score": p}, …]}`.
- Random Cut Forest `application/json`: `{"scores": [{"score": s}, …]}`; batch transform writes one
  JSON document per line, either that shape or `{"score": s}` (jsonlines).
"""

from __future__ import annotations

import json

CSV = "text/csv"
JSON = "application/json"


def parse_xgboost(text: str, content_type: str = CSV) -> list[float]:
    if content_type.startswith(JSON):
        return [float(item["score"]) for item in json.loads(text)["predictions"]]
    return [float(cell) for cell in text.replace("\n", ",").split(",") if cell.strip()]


def parse_rcf(text: str) -> list[float]:
    """RCF scores from one response body, or from a batch-transform output of one document per line."""
    try:
        documents = [json.loads(text)]
    except json.JSONDecodeError:
        documents = [json.loads(line) for line in text.splitlines() if line.strip()]
    scores: list[float] = []
    for document in documents:
        if "scores" in document:
            scores.extend(float(item["score"]) for item in document["scores"])
        else:
            scores.append(float(document["score"]))
    return scores

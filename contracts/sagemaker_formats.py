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

# InvokeEndpoint request body limits. Real-time: the service model's `Body` max (botocore
# sagemaker-runtime InvokeEndpoint, 6,291,456 bytes = 6 MiB). Serverless: "The maximum request and
# response payload size for serverless invocations is 4 MB" (SageMaker developer guide, Invoke a
# serverless endpoint), read as the smaller 4,000,000 bytes.
REALTIME_MAX_PAYLOAD_BYTES = 6_291_456
SERVERLESS_MAX_PAYLOAD_BYTES = 4_000_000
# Every request the scorer sends stays under the smaller limit, whatever kind of endpoint serves it.
MAX_REQUEST_BYTES = SERVERLESS_MAX_PAYLOAD_BYTES

# Container host names of the default deployment's one multi-container endpoint (direct invocation):
# InvokeEndpoint picks the model with TargetContainerHostname. The stack names the containers, the
# scorer targets them; both read these.
FRAUD_CONTAINER_HOSTNAME = "fraud"
ANOMALY_CONTAINER_HOSTNAME = "anomaly"

# What the models' rows hold, as the training custom resource reports it (FEATURE_SPEC_VERSION): the
# feature spec's `contracts.features.SPEC_VERSION` for the simulated (default) data, or this value for
# the creditcard.csv profile, whose rows are that dataset's 30 columns in file order.
CREDITCARD_FEATURE_SPEC_VERSION = "creditcard-30"


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

"""A Redis Stack filled by the real scoring handler, for the dashboard queries and the renderer."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from emulators.kinesis_events import kinesis_event

MINUTE_MS = 60_000


@dataclass(frozen=True)
class ScoredBatch:
    redis_url: str
    fraud_ids: tuple[str, ...]
    suspicious_ids: tuple[str, ...]
    legit_ids: tuple[str, ...]
    rejected: int
    now_ms: int


@pytest.fixture
def scored_batch(scorer_env, make_transaction, lambda_context) -> ScoredBatch:
    """One Kinesis batch scored by `handler.handler`: events spread over the last 10 minutes with every
    verdict (the test models make fraud probability = `fraud`, anomaly score = `anomaly`; thresholds
    0.5 and 3.0), plus one record that is not JSON, which the handler rejects into txn:rejected."""
    import handler

    now = int(time.time() * 1000)
    fraud = tuple(f"grafana-fraud-{i}" for i in range(3))
    suspicious = tuple(f"grafana-suspicious-{i}" for i in range(2))
    legit = tuple(f"grafana-legit-{i}" for i in range(5))
    events = []
    for offset, txn in enumerate(fraud + suspicious + legit):
        kind = txn.split("-")[1]
        events.append(
            make_transaction(
                txn,
                fraud={"fraud": 0.93, "suspicious": 0.2, "legit": 0.05}[kind],
                anomaly={"fraud": 1.0, "suspicious": 4.5, "legit": 0.5}[kind],
                amount=10.0 + offset,
                timestamp=now - (10 - offset) * MINUTE_MS,
                card_id=f"card-{offset:05d}",
                channel="online",
                merchant="m-0042",
            )
        )
    event = kinesis_event([*events, b"this record is not JSON"])

    response = handler.handler(event, lambda_context)

    assert response == {"batchItemFailures": []}
    return ScoredBatch(
        redis_url=scorer_env["REDIS_URL"],
        fraud_ids=fraud,
        suspicious_ids=suspicious,
        legit_ids=legit,
        rejected=1,
        now_ms=int(time.time() * 1000),
    )

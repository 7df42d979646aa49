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
    0.5 and 3.0), plus one record that is not JSON, which the handler rejects into the rejected stream."""
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


@dataclass(frozen=True)
class FlaggedBatch:
    redis_url: str
    fraud_id: str
    expected_features: dict[str, float]
    now_ms: int


AMOUNT_FLAGGED = 500.0


@pytest.fixture
def flagged_behavioural_batch(scorer_env, lambda_context, monkeypatch) -> FlaggedBatch:
    """v2 transactions (card + terminal, features computed online by the scorer) of one card over the
    last hour, the last one far above the card's usual amount; models on MODEL_FEATURES that flag an
    amount (TX_AMOUNT) of at least 500. The fraud's expected feature values come from the spec's own
    reference function over the same history."""
    import handler
    from contracts.features import MODEL_FEATURES, compute_dict
    from emulators.sagemaker_runtime import SageMakerRuntimeServer, rcf_endpoint, xgboost_endpoint
    from producer.events import transaction_event

    amount_at = MODEL_FEATURES.index("TX_AMOUNT")
    endpoints = {
        scorer_env["FRAUD_ENDPOINT_NAME"]: xgboost_endpoint(
            lambda rows: [0.97 if row[amount_at] >= AMOUNT_FLAGGED else 0.02 for row in rows]
        ),
        scorer_env["ANOMALY_ENDPOINT_NAME"]: rcf_endpoint(lambda rows: [0.5 for _ in rows]),
    }
    now = int(time.time() * 1000)
    amounts = [12.0, 20.5, 9.99, 31.0, AMOUNT_FLAGGED + 250]
    events = [
        transaction_event(
            transaction_id=f"why-{i}",
            timestamp_ms=now - (len(amounts) - i) * 5 * MINUTE_MS,
            card_id="card-why",
            terminal_id="term-why",
            amount=amount,
        )
        for i, amount in enumerate(amounts)
    ]
    last = events[-1]
    history = [(e["timestamp"], e["amount"]) for e in events[:-1]]
    expected = compute_dict(last["timestamp"], last["amount"], history, [(ts, None) for ts, _ in history])
    with SageMakerRuntimeServer(endpoints) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
        handler.reset_container_state()
        response = handler.handler(kinesis_event(events), lambda_context)
    assert response == {"batchItemFailures": []}
    return FlaggedBatch(scorer_env["REDIS_URL"], last["transaction_id"], expected, int(time.time() * 1000))

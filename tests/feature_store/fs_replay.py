"""Replay simulated transactions and their label events through the scoring Lambda's handler, the way
Kinesis would deliver them — several shards interleaved, retries, duplicate ids, partial-batch
failures, a Redis restart — and compare every stored feature vector with the offline computation.

Used by tests/feature_store/test_fs_exactness.py (reduced size) and as the longer replay command:

    .venv/bin/python tests/feature_store/fs_replay.py --customers 400 --terminals 800 --days 60

(starts its own Redis Stack with persistence and a local SageMaker runtime; prints the counts and
exits 1 on any mismatch).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from contracts.features import DAY_MS, FEATURES, MODEL_FEATURES
from emulators.kinesis_events import KinesisRecord, kinesis_event, next_sequence_number
from fraud_data.features import compute_features
from fraud_data.transactions import Transactions

SHARD_PREFIX = "shardId-00000000000"
# The producer's rule: a transaction's label is reported within this delay, a day inside the 7-day
# feature delay; that day is the cross-shard lag under which every label a feature needs is known.
MAX_REPORT_DELAY_MS = 6 * DAY_MS


def shifted(transactions: Transactions, end_ms: int) -> Transactions:
    """The same transactions with event times moved so the last one is at `end_ms` (order kept)."""
    offset = end_ms - max(transactions.timestamp)
    return Transactions(
        transaction_id=list(transactions.transaction_id),
        timestamp=[ts + offset for ts in transactions.timestamp],
        card_id=list(transactions.card_id),
        terminal_id=list(transactions.terminal_id),
        amount=list(transactions.amount),
        label=list(transactions.label),
        scenario=list(transactions.scenario),
    )


def shard_of(card_id: str, shards: int) -> str:
    # Kinesis hashes the partition key (the card) to a shard: a card lives in one shard.
    return f"{SHARD_PREFIX}{zlib.crc32(card_id.encode()) % shards}"


@dataclass(frozen=True)
class StreamRecord:
    time_ms: int  # when the producer sends it (event time, or the label's report time)
    record: KinesisRecord
    transaction_id: str
    kind: str  # "transaction" | "label" | "duplicate"


def build_stream(
    transactions: Transactions,
    *,
    shards: int,
    now_ms: int,
    rng: random.Random,
    duplicate_rate: float = 0.01,
) -> dict[str, list[StreamRecord]]:
    """Per shard, in send order: each transaction at its event time, its label event after a random
    delay (reported only if that is not in the future), and a few resends of earlier transactions."""
    per_shard: dict[str, list[tuple[int, int, dict, str, str]]] = {}
    for order, (tid, ts, card, terminal, amount, label, _) in enumerate(transactions.rows()):
        shard = shard_of(card, shards)
        event = {
            "transaction_id": tid,
            "timestamp": ts,
            "card_id": card,
            "terminal_id": terminal,
            "amount": amount,
        }
        items = per_shard.setdefault(shard, [])
        items.append((ts, order, event, tid, "transaction"))
        reported = ts + rng.randint(60_000, MAX_REPORT_DELAY_MS)
        if reported <= now_ms:
            label_event = {"type": "label", "transaction_id": tid, "label": label, "timestamp": reported}
            items.append((reported, order, label_event, tid, "label"))
        if rng.random() < duplicate_rate:
            # The producer resends it a little later (same content): must change nothing.
            items.append((ts + rng.randint(0, 3_600_000), order, event, tid, "duplicate"))
    stream: dict[str, list[StreamRecord]] = {}
    for shard, items in sorted(per_shard.items()):
        items.sort(key=lambda item: (item[0], item[1], item[4] != "transaction"))
        stream[shard] = [
            StreamRecord(
                time_ms=time_ms,
                record=KinesisRecord(
                    data=json.dumps(event).encode(),
                    partition_key=event.get("card_id", tid),
                    sequence_number=next_sequence_number(),
                    arrival_s=time.time(),
                ),
                transaction_id=tid,
                kind=kind,
            )
            for time_ms, _, event, tid, kind in items
        ]
    return stream


@dataclass
class ReplayStats:
    batches: int = 0
    deliveries: int = 0
    redeliveries: int = 0
    replays: int = 0
    failed_records: int = 0
    restarts: int = 0
    log: list[str] = field(default_factory=list)


def replay(
    stream: dict[str, list[StreamRecord]],
    deliver: Callable[[str, list[KinesisRecord]], list[str]],
    *,
    rng: random.Random,
    lag_ms: int = 12 * 3_600_000,
    max_batch: int = 300,
    replay_rate: float = 0.05,
    on_batch: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Deliver every shard's records like an event source mapping: batches in order per shard,
    shards interleaved with at most `lag_ms` of event time between them, a failed record and all
    after it delivered again (ReportBatchItemFailures), and some batches delivered twice."""
    position = dict.fromkeys(stream, 0)
    stats = ReplayStats()
    while True:
        heads = {s: stream[s][p].time_ms for s, p in position.items() if p < len(stream[s])}
        if not heads:
            return stats
        horizon = min(heads.values()) + lag_ms
        shard = rng.choice(sorted(s for s, t in heads.items() if t <= horizon))
        start = position[shard]
        stop = start
        size = rng.randint(1, max_batch)
        while stop < len(stream[shard]) and stop - start < size and stream[shard][stop].time_ms <= horizon:
            stop += 1
        batch = [item.record for item in stream[shard][start:stop]]
        if on_batch is not None:
            on_batch(stats.batches)
        stats.batches += 1
        stats.deliveries += 1
        failed = deliver(shard, batch)
        if failed:
            stats.failed_records += len(failed)
            stats.redeliveries += 1
            seqs = [r.sequence_number for r in batch]
            position[shard] = start + min(seqs.index(s) for s in failed)
            continue
        if rng.random() < replay_rate:
            stats.replays += 1
            stats.deliveries += 1
            if deliver(shard, batch):
                # Only a fault injected into the replay itself can fail it: deliver it again later.
                continue
        position[shard] = stop


def handler_deliver(context) -> Callable[[str, list[KinesisRecord]], list[str]]:
    import handler

    def deliver(shard: str, batch: list[KinesisRecord]) -> list[str]:
        response = handler.handler(kinesis_event(batch, shard_id=shard), context)
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    return deliver


@dataclass
class Comparison:
    compared: int
    missing: list[str]
    mismatches: list[tuple[str, str, object, object]]


def close(online: float, offline: float) -> bool:
    if online == offline:
        return True
    return math.isclose(online, offline, rel_tol=1e-9, abs_tol=0.0)


def compare(client, transactions: Transactions, *, since_ms: int | None = None) -> Comparison:
    """Every stored vector (of the transactions at or after `since_ms`, if given) against
    `fraud_data.features.compute_features` over all `transactions`: counts exactly, the rest within
    1e-9 relative."""
    offline = compute_features(transactions, MODEL_FEATURES)
    missing, mismatches, compared = [], [], 0
    ids = transactions.transaction_id
    for start in range(0, len(ids), 1000):
        pipe = client.pipeline(transaction=False)
        for tid in ids[start : start + 1000]:
            pipe.execute_command("JSON.GET", f"txn:{tid}", "$.features")
        for offset, reply in enumerate(pipe.execute()):
            i = start + offset
            if since_ms is not None and transactions.timestamp[i] < since_ms:
                continue
            if reply is None:
                missing.append(ids[i])
                continue
            stored = json.loads(reply)[0]
            compared += 1
            for name in MODEL_FEATURES:
                online, expected = stored[name], offline[name][i]
                exact = FEATURES[name].aggregation == "count"
                if (online != expected) if exact else not close(online, expected):
                    mismatches.append((ids[i], name, online, expected))
    return Comparison(compared, missing, mismatches)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - the longer replay command
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sys.path[:0] = [str(root), str(root / "lambda_src")]  # as pytest's pythonpath does

    import redis

    from emulators.lambda_context import LocalLambdaContext
    from emulators.redis_stack import RedisStackServer
    from emulators.sagemaker_runtime import SageMakerRuntimeServer, rcf_endpoint, xgboost_endpoint
    from fraud_data.simulator import SimulationConfig, simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--terminals", type=int, default=800)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args(argv)

    config = SimulationConfig(
        customers=args.customers, terminals=args.terminals, days=args.days, seed=args.seed
    )
    sim = simulate(config)
    now_ms = int(time.time() * 1000)
    transactions = shifted(sim.transactions, now_ms - 600_000)
    rng = random.Random(args.seed)
    endpoints = {
        "fraud": xgboost_endpoint(lambda rows: [min(1.0, max(0.0, r[1])) for r in rows]),
        "anomaly": rcf_endpoint(lambda rows: [r[2] for r in rows]),
    }
    with RedisStackServer(persistence=True) as server, SageMakerRuntimeServer(endpoints) as runtime:
        os.environ.update(
            {
                "REDIS_URL": server.url,
                "FRAUD_ENDPOINT_NAME": "fraud",
                "ANOMALY_ENDPOINT_NAME": "anomaly",
                "TS_RETENTION_MS": str((args.days + 2) * DAY_MS),
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime.url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
        )
        stream = build_stream(transactions, shards=args.shards, now_ms=now_ms, rng=rng)
        started = time.perf_counter()
        stats = replay(stream, handler_deliver(LocalLambdaContext(function_name="fraud-scorer")), rng=rng)
        elapsed = time.perf_counter() - started
        result = compare(redis.Redis.from_url(server.url), transactions)
    records = sum(len(s) for s in stream.values())
    print(
        f"{len(transactions)} transactions, {records} records in {args.shards} shards, {stats.deliveries} "
        f"deliveries in {elapsed:.1f} s; compared {result.compared}, missing {len(result.missing)}, "
        f"mismatches {len(result.mismatches)}"
    )
    for mismatch in result.mismatches[:10]:
        print("  mismatch", mismatch)
    return 0 if not result.missing and not result.mismatches else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

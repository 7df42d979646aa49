"""Measure the online feature store (figures for docs/architecture.md and docs/performance.md):

- backfill throughput (transactions/s, wall and CPU),
- per 500-record batch streamed through the scorer: Redis round-trip time of the feature read
  (documents' hashes + the cards' and terminals' windows) and of the effects write (state, labels,
  samples), p50/p99,
- Redis server time per stored transaction (INFO commandstats), behavioural vs creditcard profile,
- bytes per card, per terminal and per transaction document (MEMORY USAGE, index included).

    .venv/bin/python tests/feature_store/fs_measure.py [--customers 5000 --terminals 10000 --days 60]

Starts its own Redis Stack and local SageMaker runtime (toy models); prints one line per figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "lambda_src")]

from contracts.features import DAY_MS  # noqa: E402
from emulators.kinesis_events import kinesis_event  # noqa: E402


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * len(ordered))) - 1))]


def server_usec(client) -> tuple[float, dict[str, float]]:
    """Redis's own CPU time (user + sys, µs) since the last reset, and INFO commandstats per command
    (commands run inside scripts are counted both on their own and in EVALSHA)."""
    stats = client.info("commandstats")
    per = {name.removeprefix("cmdstat_"): float(v["usec"]) for name, v in stats.items()}
    cpu = client.info("cpu")
    return (cpu["used_cpu_user"] + cpu["used_cpu_sys"]) * 1e6, per


def _state_bytes(client) -> str:
    """Bytes per card and per terminal (MEMORY USAGE of their keys), events and records per card."""
    from contracts.redis_keys import split_state

    cards = list(client.scan_iter(match="card:*", count=1000))
    terminals = list(client.scan_iter(match="terminal:*", count=1000))
    card_bytes = sum(client.memory_usage(k, samples=0) for k in cards)
    terminal_bytes = sum(client.memory_usage(k, samples=0) for k in terminals)
    n_terminals = len({k.split(b"}")[0] for k in terminals})
    decoded = [split_state(client.get(k), True) for k in cards]
    card_events = sum(len(d.ts) for d in decoded)
    records = sum(d.records for d in decoded)
    return (
        f"{len(cards)} cards, {card_bytes / len(cards):,.0f} B per card ({card_events / len(cards):.1f} "
        f"events in {records / len(cards):.1f} records: {card_bytes / card_events:.0f} B per event); "
        f"{n_terminals} terminals, {terminal_bytes / n_terminals:,.0f} B per terminal; used_memory "
        f"{client.info('memory')['used_memory'] / 1e6:.1f} MB"
    )


def _update(client, feature_store, batch) -> None:
    pipe = client.pipeline(transaction=False)
    feature_store.queue_state_writes(pipe, batch)
    pipe.execute()


def main(argv: list[str] | None = None) -> int:
    import redis

    from emulators.redis_stack import RedisStackServer
    from emulators.sagemaker_runtime import SageMakerRuntimeServer, rcf_endpoint, xgboost_endpoint
    from fraud_data.simulator import SimulationConfig, simulate

    parser = argparse.ArgumentParser(description="measure the online feature store")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    sim = simulate(SimulationConfig(customers=args.customers, terminals=args.terminals, days=args.days))
    tx = sim.transactions
    now_ms = int(time.time() * 1000)
    offset = now_ms - 60_000 - max(tx.timestamp)
    stamps = [ts + offset for ts in tx.timestamp]
    cut = stamps[-1] - DAY_MS  # backfill everything but the last day, stream the last day
    n_hist = next(i for i, ts in enumerate(stamps) if ts >= cut)
    print(f"simulated {len(tx)} transactions in {time.perf_counter() - started:.1f} s; history {n_hist}")

    endpoints = {
        "fraud": xgboost_endpoint(lambda rows: [min(1.0, max(0.0, r[0] / 1000)) for r in rows]),
        "anomaly": rcf_endpoint(lambda rows: [0.5 for _ in rows]),
    }
    with RedisStackServer() as server, SageMakerRuntimeServer(endpoints) as runtime:
        os.environ.update(
            {
                "REDIS_URL": server.url,
                "FRAUD_ENDPOINT_NAME": "fraud",
                "ANOMALY_ENDPOINT_NAME": "anomaly",
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime.url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "POWERTOOLS_LOG_LEVEL": "ERROR",
                "POWERTOOLS_METRICS_NAMESPACE": "FraudDetection",
            }
        )
        from fraud_data.transactions import Transactions
        from fraud_scorer import entry
        from fraud_scorer.feature_store import backfill

        client = redis.Redis.from_url(server.url)

        # 1. backfill
        history = Transactions(
            tx.transaction_id[:n_hist],
            stamps[:n_hist],
            tx.card_id[:n_hist],
            tx.terminal_id[:n_hist],
            tx.amount[:n_hist],
            tx.label[:n_hist],
            tx.scenario[:n_hist],
        )
        cpu0, info0 = time.process_time(), client.info("cpu")
        stats = backfill(client, history)
        cpu1, info1 = time.process_time(), client.info("cpu")
        redis_cpu = sum(info1[k] - info0[k] for k in ("used_cpu_user", "used_cpu_sys"))
        print(
            f"backfill: {stats.transactions} tx, {stats.cards} cards, {stats.terminals} terminals in "
            f"{stats.seconds:.2f} s wall = {stats.transactions / stats.seconds:,.0f} tx/s; CPU: client "
            f"{cpu1 - cpu0:.2f} s, Redis {redis_cpu:.2f} s = "
            f"{stats.transactions / max(cpu1 - cpu0, redis_cpu):,.0f} tx/s on separate cores"
        )

        # 2. bytes per entity (again after the stream: streaming writes append small records, compacted later)
        print("state after the backfill: " + _state_bytes(client))

        # 3. stream the last day through the scorer, 500-record batches
        scorer = entry._container_scorer()
        live = list(range(n_hist, len(tx)))[: args.batch * args.batches]
        client.config_resetstat()
        cpu_before, _ = server_usec(client)
        used_before = client.info("memory")["used_memory"]
        reads, effects, totals, stored = [], [], [], 0
        for start in range(0, len(live), args.batch):
            events = [
                {
                    "transaction_id": tx.transaction_id[i],
                    "timestamp": stamps[i],
                    "card_id": tx.card_id[i],
                    "terminal_id": tx.terminal_id[i],
                    "amount": tx.amount[i],
                }
                for i in live[start : start + args.batch]
            ]
            clock = time.perf_counter()
            result = scorer.process(kinesis_event(events))
            totals.append((time.perf_counter() - clock) * 1000)
            assert not result.failed_sequence_numbers, result.failed_sequence_numbers[:3]
            reads.append(result.read_ms)
            effects.append(result.effects_ms)
            stored += result.stored
        usec, per = server_usec(client)
        usec -= cpu_before
        print("state after the stream: " + _state_bytes(client))
        docs = list(client.scan_iter(match="txn:*", count=1000))
        doc_bytes = sum(client.memory_usage(k, samples=0) for k in docs) / len(docs)
        grown = (client.info("memory")["used_memory"] - used_before) / stored
        both = [r + e for r, e in zip(reads, effects, strict=True)]
        print(
            f"stream: {stored} stored in {len(reads)} batches of {args.batch}; Redis round trips per batch: "
            f"read p50 {statistics.median(reads):.2f} / p99 {quantile(reads, 0.99):.2f} ms, effects p50 "
            f"{statistics.median(effects):.2f} / p99 {quantile(effects, 0.99):.2f} ms, read+effects p99 "
            f"{quantile(both, 0.99):.2f} ms; handler p50 {statistics.median(totals):.0f} ms"
        )
        top = sorted(per.items(), key=lambda kv: -kv[1])[:8]
        print(
            f"Redis server CPU per stored transaction (behavioural): {usec / stored:.1f} us; "
            "commandstats us per stored transaction: " + ", ".join(f"{k} {v / stored:.1f}" for k, v in top)
        )
        print(
            f"bytes per transaction: document {doc_bytes:,.0f} B (MEMORY USAGE); used_memory growth per "
            f"stored transaction {grown:,.0f} B (document + index + state + samples)"
        )

        # 3b. the feature store's own read and state update for one 500-transaction batch, repeated:
        # Redis's CPU (what a faster client cannot change), the client's CPU, and the wall time.
        from fraud_scorer import feature_store

        batch = [
            feature_store.StateEvent(
                tx.transaction_id[i], stamps[i], tx.card_id[i], tx.terminal_id[i], tx.amount[i]
            )
            for i in live[: args.batch]
        ]
        for name, run in (
            ("read", lambda: feature_store.read_state(client, batch)),
            ("update", lambda: _update(client, feature_store, batch)),
        ):
            run()
            cpu_before, _ = server_usec(client)
            client_before, wall_before = time.process_time(), time.perf_counter()
            for _ in range(10):
                run()
            cpu_after, _ = server_usec(client)
            print(
                f"feature {name} of {len(batch)} transactions: Redis CPU "
                f"{(cpu_after - cpu_before) / 10 / 1000:.1f} ms,"
                f" client CPU {(time.process_time() - client_before) * 100:.1f} ms, wall "
                f"{(time.perf_counter() - wall_before) * 100:.1f} ms (mean of 10)"
            )

        # 4. the creditcard profile (30 numbers, no state), the same way, for comparison
        client.config_resetstat()
        cpu_before, _ = server_usec(client)
        cc_stored = 0
        for b in range(args.batches // 2):
            events = [
                {
                    "transaction_id": f"cc-{b}-{i}",
                    "timestamp": now_ms - 60_000 + i,
                    "card_id": f"card-{i % 977}",
                    "amount": 10.0 + i,
                    "features": [float((i * 7 + j) % 13) / 13 for j in range(30)],
                }
                for i in range(args.batch)
            ]
            cc_stored += scorer.process(kinesis_event(events)).stored
        usec, per = server_usec(client)
        top = sorted(per.items(), key=lambda kv: -kv[1])[:6]
        print(
            "Redis server CPU per stored transaction (creditcard profile): "
            f"{(usec - cpu_before) / cc_stored:.1f} us; "
            "commandstats: " + ", ".join(f"{k} {v / cc_stored:.1f}" for k, v in top)
        )
        print(f"load average: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

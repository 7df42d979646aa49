"""Online features == offline features (issue 12): a reduced simulated dataset, its label events and
resends, replayed through the real handler over four interleaved shards with retries, partial-batch
failures and a Redis crash + restart; every stored vector must equal `fraud_data.features`."""

from __future__ import annotations

import random
import time

import pytest
import redis
from fs_replay import build_stream, compare, handler_deliver, replay, shifted
from redis.exceptions import ConnectionError as RedisConnectionError

import handler
from contracts.features import DAY_MS
from emulators.redis_stack import RedisStackServer
from fraud_data.simulator import SimulationConfig, simulate
from fraud_scorer.store import TransactionStore

# ~45 days: every 30-day card window and the terminal windows (up to 37 days back) fill up.
SMALL = SimulationConfig(customers=60, terminals=200, days=45, seed=11)


class Faults:
    """Injected into the store: a transaction's document write fails (the others of its batch are
    stored: a partial-batch failure), or the state round trip fails before or after Redis applied it
    (the reply lost)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.on = True
        self.document_failures = 0
        self.effects_failures = 0

    def install(self, monkeypatch) -> None:
        real_documents = TransactionStore.write_documents
        real_effects = TransactionStore.write_effects
        faults = self

        def write_documents(store, client, scored, rejections, **kwargs):
            if not (faults.on and len(scored) > 1 and faults.rng.random() < 0.08):
                return real_documents(store, client, scored, rejections, **kwargs)
            victim = faults.rng.randrange(len(scored))
            kept = [item for i, item in enumerate(scored) if i != victim]
            outcome = real_documents(store, client, kept, rejections, **kwargs)
            outcome.transactions.insert(victim, RedisConnectionError("injected: document not written"))
            faults.document_failures += 1
            return outcome

        def write_effects(store, client, *args, **kwargs):
            if faults.on and faults.rng.random() < 0.05:
                faults.effects_failures += 1
                if faults.rng.random() < 0.5:
                    real_effects(store, client, *args, **kwargs)  # applied, but the reply is lost
                raise RedisConnectionError("injected: state round trip failed")
            return real_effects(store, client, *args, **kwargs)

        monkeypatch.setattr(TransactionStore, "write_documents", write_documents)
        monkeypatch.setattr(TransactionStore, "write_effects", write_effects)


@pytest.fixture
def persistent_redis():
    with RedisStackServer(persistence=True) as server:
        yield server


@pytest.mark.timeout(300)
def test_every_stored_vector_equals_the_offline_computation(
    scorer_env, persistent_redis, monkeypatch, lambda_context
):
    # GIVEN a small simulated dataset shifted to end now, as four shards of transactions, label
    # events (each reported within 6 days) and resends, and a scorer on a Redis that persists
    now_ms = int(time.time() * 1000)
    transactions = shifted(simulate(SMALL).transactions, now_ms - 60_000)
    assert sum(transactions.label) > 0
    rng = random.Random(5)
    stream = build_stream(transactions, shards=4, now_ms=now_ms, rng=rng)
    monkeypatch.setenv("REDIS_URL", persistent_redis.url)
    monkeypatch.setenv("TS_RETENTION_MS", str((SMALL.days + 2) * DAY_MS))  # accept the whole history
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    handler.reset_container_state()
    faults = Faults(rng)
    faults.install(monkeypatch)
    deliver = handler_deliver(lambda_context)
    crash_at = 40

    def crash_and_restart(batch: int) -> None:
        if batch == crash_at:
            persistent_redis.kill()
            # A batch delivered while Redis is down fails as a whole and comes again.
            shard = next(iter(stream))
            assert deliver(shard, [stream[shard][0].record]) == [stream[shard][0].record.sequence_number]
            persistent_redis.start()

    # WHEN it is all delivered
    # (12 h of cross-shard lag: well inside the day between a label's latest report and its first use)
    stats = replay(
        stream,
        deliver,
        rng=rng,
        max_batch=250,
        replay_rate=0.1,
        lag_ms=12 * 3_600_000,
        on_batch=crash_and_restart,
    )

    # THEN the faults did happen
    assert stats.batches > crash_at
    assert faults.document_failures > 0
    assert faults.effects_failures > 0
    assert stats.replays > 0
    assert any(item.kind == "duplicate" for records in stream.values() for item in records)

    # AND every transaction is stored once, with exactly the offline feature values
    client = redis.Redis.from_url(persistent_redis.url)
    result = compare(client, transactions)
    assert result.missing == []
    assert result.mismatches == []
    assert result.compared == len(transactions)
    docs = client.ft("idx:txn").info()["num_docs"]
    assert int(docs) == len(transactions)
    # the terminal risk features saw frauds (the labels arrived in time), not just zeros
    risky = client.ft("idx:txn").search("@TERMINAL_ID_RISK_7DAY_WINDOW:[(0 +inf]").total
    assert risky > 0

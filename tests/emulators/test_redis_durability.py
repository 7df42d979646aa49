"""Issue 13: the self-hosted Redis keeps every acknowledged write across a crash.

The server is started by the deployment's own start script (stacks/redis/image/start-redis.sh), so
it runs with the deployed persistence settings: append-only file, `appendfsync always`: Redis
writes and fsyncs the AOF before it replies, so neither a killed process nor a lost machine loses an
acknowledged write.

Why not `everysec`: Redis then postpones the AOF write (for up to 2 s) while the previous
background fsync is still running, and replies meanwhile. Under disk pressure a SIGKILL lost
acknowledged writes here (3 of 2,288 in 2 s with a concurrent fsync-heavy writer; none on a quiet
disk), so a test of it could only be flaky. `redisAppendFsync=everysec` remains an opt-in.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

import handler
from contracts import redis_acl
from contracts import redis_keys as keys
from emulators.kinesis_events import kinesis_event
from emulators.redis_stack import RedisStackServer


@pytest.fixture
def persistent_redis():
    with RedisStackServer(start_script=True) as server:
        yield server


def admin_client(server: RedisStackServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True, protocol=2)


def test_the_deployed_persistence_settings_are_in_force(persistent_redis):
    config = admin_client(persistent_redis).config_get("*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "always"
    assert config["maxmemory-policy"] == "noeviction"
    assert config["dir"] == str(persistent_redis.aof_dir)


def kill_while_writing(server: RedisStackServer, write_one, *, after_s: float) -> list[int]:
    """Call `write_one(i)` for i = 0, 1, … until the server dies (killed with SIGKILL `after_s` in);
    returns the i's whose write was acknowledged."""
    acknowledged: list[int] = []
    killer = threading.Timer(after_s, server.kill)
    killer.start()
    i = 0
    try:
        while True:
            try:
                write_one(i)
            except (redis.ConnectionError, redis.TimeoutError):
                break
            acknowledged.append(i)
            i += 1
    finally:
        killer.join()
    return acknowledged


@pytest.mark.timeout(120)
def test_kill_9_mid_stream_loses_no_acknowledged_write(persistent_redis):
    # GIVEN a client writing as fast as it can, one reply per command (JSON documents, stream entries
    # and time-series samples: the scorer's data types)
    client = redis.Redis.from_url(persistent_redis.url, decode_responses=True, protocol=2, retry=None)
    client.ts().create("ts:probe", duplicate_policy="LAST")

    def write(i: int) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.json().set(keys.txn_key(f"probe-{i}"), "$", {"i": i})
        pipe.xadd("rejected:probe", {"i": i})
        pipe.ts().add("ts:probe", 1_000 + i, i)
        pipe.execute()

    # WHEN Redis is killed with SIGKILL mid-stream, then started again on the same files
    acknowledged = kill_while_writing(persistent_redis, write, after_s=2.0)
    persistent_redis.start()

    # THEN every acknowledged write is there (the one in flight may or may not be)
    assert len(acknowledged) > 20  # it really was mid-stream
    restored = admin_client(persistent_redis)
    last = acknowledged[-1]
    pipe = restored.pipeline(transaction=False)
    for i in acknowledged:
        pipe.exists(keys.txn_key(f"probe-{i}"))
    assert all(pipe.execute())
    assert restored.xlen("rejected:probe") >= len(acknowledged)
    assert restored.ts().info("ts:probe").total_samples >= len(acknowledged)
    assert int(restored.ts().get("ts:probe")[0]) >= 1_000 + last


@pytest.mark.timeout(180)
def test_kill_9_while_the_scorer_stores_batches_loses_no_acknowledged_transaction(
    persistent_redis, scorer_env, monkeypatch, make_transaction, lambda_context
):
    # GIVEN the real scorer path, as the scorer's ACL user, storing batches of 50 transactions
    monkeypatch.setenv("REDIS_URL", persistent_redis.url_for(redis_acl.SCORER_USER))
    handler.reset_container_state()
    at = int(time.time() * 1000) - 600_000
    batches: list[list[str]] = []

    def store_batch(i: int) -> None:
        ids = [f"b{i}-{j}" for j in range(50)]
        event = kinesis_event([make_transaction(t, timestamp=at + i) for t in ids])
        response = handler.handler(event, lambda_context)
        if response["batchItemFailures"]:
            # Not acknowledged: Kinesis would retry it. Redis is gone, so stop here.
            raise redis.ConnectionError("batch not acknowledged")
        batches.append(ids)

    # WHEN Redis is killed with SIGKILL while batches are being stored, then started again
    acknowledged = kill_while_writing(persistent_redis, store_batch, after_s=2.0)
    persistent_redis.start()
    handler.reset_container_state()

    # THEN every transaction of every acknowledged batch is stored, with its document intact
    assert len(acknowledged) >= 3
    restored = admin_client(persistent_redis)
    stored_ids = [t for ids in batches for t in ids]
    pipe = restored.pipeline(transaction=False)
    for transaction_id in stored_ids:
        pipe.execute_command("JSON.GET", keys.txn_key(transaction_id), "$.transaction_id")
    assert pipe.execute() == [f'["{t}"]' for t in stored_ids]
    assert restored.ts().info(keys.TS_SCORED).total_samples >= 1


def test_without_persistence_a_kill_loses_everything(redis_stack):
    # The contrast (and the previous deployment): no AOF, so a restart starts empty.
    with RedisStackServer(persistence=False) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        client.set("k", "v")
        server.kill()
        server.start()
        assert redis.Redis.from_url(server.url, decode_responses=True).get("k") is None

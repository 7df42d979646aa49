"""The entity state's block encoding and its writes against a real Redis Stack: what a read finds is
what was written, whichever client and path; writers that race on a terminal lose nothing; a replay
writes nothing; a failed command leaves the connection usable."""

from __future__ import annotations

import pytest
import redis

from contracts import redis_keys as keys
from contracts.features import CARD_RETENTION_MS, DAY_MS
from fraud_scorer import feature_store as fs
from fraud_scorer.feature_store import StateEvent, entity_state

T = 1_800_000_000_000


def ev(tid: str, ts: int, amount: float = 1.0, card: str = "c1", terminal: str = "t1") -> StateEvent:
    return StateEvent(tid, ts, card, terminal, amount)


def read_then_write(client, events):
    state = fs.read_state(client, events)
    fs.queue_state_writes(client, events)
    return state


def members(url: str, key: str) -> list[tuple[bytes, float]]:
    with redis.Redis.from_url(url) as raw:
        return raw.zrange(key, 0, -1, withscores=True)


def test_blocks_round_trip_bit_for_bit():
    ts = [T, T, T + 5]
    amounts = [0.1 + 0.2, 1e-300, 12345.678901234567]
    ids = [b"a", b"b:with:colons", b"c"]
    block = keys.encode_card_block(ts, amounts, ids)

    def decoded(columns):
        return [list(column) for column in columns]

    assert decoded(keys.decode_card_block(block)) == [ts, amounts, ids]
    assert decoded(keys.decode_terminal_block(keys.encode_terminal_block(ts, ids))) == [ts, ids]
    assert decoded(keys.decode_card_block(keys.encode_card_block([], [], []))) == [[], [], []]
    # the score names the block: the same content, the same score; 52 bits, exact as a float64
    assert keys.block_score(block) == keys.block_score(bytes(block))
    assert keys.block_score(block) != keys.block_score(keys.encode_card_block(ts[:2], amounts[:2], ids[:2]))
    assert 0 <= keys.block_score(block) < 2**52
    # the previous encoding (one text member per event) is still understood
    assert decoded(keys.decode_card_block(keys.card_member(T, 2.5, "x:y").encode())) == [[T], [2.5], [b"x:y"]]
    assert decoded(keys.decode_terminal_block(keys.terminal_member(T, "x").encode())) == [[T], [b"x"]]


@pytest.mark.parametrize("drop", [0, 1, 3])
def test_extending_a_block_gives_the_bytes_of_encoding_the_result(drop):
    ts, amounts, ids = [T, T + 1, T + 1], [1.5, 2.5, 3.5], [b"a", b"b", b"c:d"]
    new_ts, new_amounts, new_ids = [T + 1, T + 9], [4.5, 0.1], [b"d", b"e"]
    dropped = sum(len(i) + 1 for i in ids[:drop])
    card = keys.extend_block(
        keys.encode_card_block(ts, amounts, ids), drop, new_ts, new_amounts, new_ids, dropped
    )
    assert card == keys.encode_card_block(
        ts[drop:] + new_ts, amounts[drop:] + new_amounts, ids[drop:] + new_ids
    )
    terminal = keys.extend_block(keys.encode_terminal_block(ts, ids), drop, new_ts, [], new_ids, dropped)
    assert terminal == keys.encode_terminal_block(ts[drop:] + new_ts, ids[drop:] + new_ids)


@pytest.mark.parametrize("path", ["wire", "wire-without-hiredis-reader", "pipeline"])
@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
def test_what_is_written_is_read_back(redis_url, monkeypatch, path, decode):
    # GIVEN a client as the scorer's (bytes) or the tests' (decode_responses), through the feature
    # store's own wire (taking replies from hiredis's reader, or through redis-py's read_response) or
    # through the client's pipeline (what a cluster client gets)
    if path == "pipeline":
        monkeypatch.setattr(fs._Wire, "of", staticmethod(lambda target: None))
    if path == "wire-without-hiredis-reader":  # as with redis-py's pure-Python parser
        monkeypatch.setattr(fs, "_NOT_ENOUGH_DATA", None)
    client = redis.Redis.from_url(redis_url, decode_responses=decode)
    first = [ev("a", T - DAY_MS, 10.0), ev("b", T - 3_600_000, 20.0, terminal="t2")]
    second = [ev("c", T, 30.0), ev("d", T, 40.0, card="c2")]

    # WHEN two batches are read and written in turn
    read_then_write(client, first)
    state = read_then_write(client, second)

    # THEN the second read saw the first batch, and the stored state holds both (the second write
    # added a block of its events next to the first one)
    assert state.cards["c1"].events == [(T - DAY_MS, 10.0, "a"), (T - 3_600_000, 20.0, "b")]
    assert entity_state(client, card_id="c1", terminal_id="t1") == {
        "card": [(T - DAY_MS, 10.0, "a"), (T - 3_600_000, 20.0, "b"), (T, 30.0, "c")],
        "terminal": [(T - DAY_MS, "a"), (T, "c"), (T, "d")],  # same time: in id order
        "frauds": [],
    }
    assert [len(members(redis_url, keys.card_events_key(c))) for c in ("c1", "c2")] == [2, 1]
    client.close()


def test_a_replay_or_a_partial_retry_writes_nothing(redis_client, redis_url):
    batch = [ev("a", T - 60_000), ev("b", T, card="c2")]
    read_then_write(redis_client, batch)
    before = {k: members(redis_url, k) for k in redis_client.keys("*")}
    ttl = redis_client.pttl(keys.card_events_key("c1"))

    redis_client.config_resetstat()
    read_then_write(redis_client, batch)
    read_then_write(redis_client, batch[1:])

    assert {k: members(redis_url, k) for k in redis_client.keys("*")} == before
    stats = redis_client.info("commandstats")
    assert not any(
        name in stats for name in ("cmdstat_evalsha", "cmdstat_zadd", "cmdstat_zrem", "cmdstat_pexpire")
    )
    assert redis_client.pttl(keys.card_events_key("c1")) <= ttl


def test_blocks_are_merged_when_there_are_enough_of_them(redis_client, redis_url):
    key = keys.card_events_key("c1")
    for i in range(fs.MAX_BLOCKS):
        read_then_write(redis_client, [ev(f"e{i}", T + i, float(i))])
    assert len(members(redis_url, key)) == fs.MAX_BLOCKS
    read_then_write(redis_client, [ev("last", T + 99)])
    assert len(members(redis_url, key)) == 1
    expected = [(T + i, float(i), f"e{i}") for i in range(fs.MAX_BLOCKS)] + [(T + 99, 1.0, "last")]
    assert entity_state(redis_client, card_id="c1")["card"] == expected


def test_writers_racing_on_a_terminal_lose_nothing(redis_client, redis_url, monkeypatch):
    monkeypatch.setattr(fs, "MAX_BLOCKS", 2)  # so that the third write merges
    # GIVEN a terminal with history, read by two batches (two shards) before either writes
    read_then_write(redis_client, [ev("old", T - DAY_MS, card="x")])
    shard_a = [ev("a1", T, card="a")]
    shard_b = [ev("b1", T + 1, card="b")]
    fs.read_state(redis_client, shard_a)
    snapshot_a = dict(fs._last_read["entities"])
    fs.read_state(redis_client, shard_b)
    snapshot_b = dict(fs._last_read["entities"])

    # WHEN both write what they read plus their own event (A, then B, in either order)
    for snapshot, events in ((snapshot_a, shard_a), (snapshot_b, shard_b)):
        fs._last_read["entities"] = snapshot
        fs.queue_state_writes(redis_client, events)

    # THEN both events are there (three blocks, read as one window)
    terminal = keys.terminal_events_key("t1")
    assert len(members(redis_url, terminal)) == 3
    expected = [(T - DAY_MS, "old"), (T, "a1"), (T + 1, "b1")]
    assert entity_state(redis_client, terminal_id="t1")["terminal"] == expected
    # AND the next write of that terminal merges them into one block again
    read_then_write(redis_client, [ev("c1", T + 2, card="c")])
    assert len(members(redis_url, terminal)) == 1
    assert entity_state(redis_client, terminal_id="t1")["terminal"] == [*expected, (T + 2, "c1")]


def test_a_write_drops_what_no_window_can_need_and_sets_the_ttl(redis_client, redis_url):
    cutoff = T - CARD_RETENTION_MS - keys.ENTITY_TTL_MARGIN_MS  # for a write of events at T
    # an event a slack older than the cut-off makes the write merge the blocks and drop what is at or
    # before the cut-off (younger than the slack alone, events wait for the next merge)
    events = [ev("very-old", cutoff - fs.COMPACT_SLACK_MS), ev("at-cutoff", cutoff), ev("kept", cutoff + 1)]
    read_then_write(redis_client, events)
    read_then_write(redis_client, [ev("new", T)])
    assert [tid for _, _, tid in entity_state(redis_client, card_id="c1")["card"]] == ["kept", "new"]
    assert len(members(redis_url, keys.card_events_key("c1"))) == 1
    assert 0 < redis_client.pttl(keys.card_events_key("c1")) <= fs.CARD_TTL_MS


def test_a_failed_command_leaves_the_client_usable(redis_client):
    # GIVEN a card key holding another type (an operator's mistake): its read fails
    redis_client.set(keys.card_events_key("c1"), "not a sorted set")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        fs.read_state(redis_client, [ev("a", T), ev("b", T, card="c2")])
    # THEN the connection did not keep the unread replies: the next commands get their own
    assert redis_client.ping() is True
    state = fs.read_state(redis_client, [ev("b", T, card="c2")])
    assert state.cards["c2"].events == []

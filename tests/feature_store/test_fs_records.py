"""The entity state's record encoding and its writes against a real Redis Stack: what a read finds is
what was written, whichever client and path; writers that race on a terminal lose nothing; a replay
writes nothing; the TTL is set when the key is created and refreshed a week later; a failed command
leaves the connection usable; a corrupt value is refused with a clear error."""

from __future__ import annotations

import threading

import pytest
import redis

from contracts import redis_keys as keys
from contracts.features import CARD_RETENTION_MS, DAY_MS
from fraud_scorer import feature_store as fs
from fraud_scorer import redis_wire
from fraud_scorer.feature_store import StateEvent, entity_state

T = 1_800_000_000_000


def ev(tid: str, ts: int, amount: float = 1.0, card: str = "c1", terminal: str = "t1") -> StateEvent:
    return StateEvent(tid, ts, card, terminal, amount)


def read_then_write(client, events):
    state = fs.read_state(client, events)
    fs.queue_state_writes(client, events)
    return state


def raw_value(url: str, key: str) -> bytes:
    with redis.Redis.from_url(url) as raw:
        return raw.get(key) or b""


def records(url: str, key: str, card: bool = True) -> int:
    """How many events and marks records the key's value holds."""
    return keys.split_state(raw_value(url, key), card).records


def calls(client, command: str) -> int:
    return client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def test_records_round_trip_bit_for_bit():
    ts = [T, T, T + 5]
    amounts = [0.1 + 0.2, 1e-300, 12345.678901234567]
    ids = [b"a", b"b:with:colons", b"c"]
    card = keys.encode_header(b"n" * 8, 42) + keys.encode_card_events(ts, amounts, ids)
    card += keys.encode_card_events([T + 9], [2.5], [b"d"])

    decoded = keys.split_state(card, True)

    assert list(decoded.ts) == [*ts, T + 9]
    assert list(decoded.amounts) == [*amounts, 2.5]  # the float64 itself: bit for bit
    assert b"\n".join(decoded.ids).split(b"\n") == [*ids, b"d"]
    assert (decoded.in_order, decoded.ttl_set_at_ms, decoded.records) == (True, 42, 2)
    terminal = keys.encode_terminal_events(ts, ids) + keys.encode_marks(
        [T, T + 5], [T + 7, T + 8], [1, 0], ids[::2]
    )
    terminal += keys.encode_terminal_events([T + 1], [b"late"])  # starts before the previous record ends
    decoded = keys.split_state(terminal, False)
    assert list(decoded.ts) == [*ts, T + 1]
    assert decoded.marks == [(T, T + 7, 1, b"a"), (T + 5, T + 8, 0, b"c")]
    assert (decoded.in_order, decoded.records) == (False, 3)
    assert keys.split_state(keys.encode_card_events([], [], []), True).records == 1


@pytest.mark.parametrize(
    ("value", "card", "message"),
    [
        (keys.encode_card_events([T], [1.0], [b"a"])[:-3], True, "truncated"),
        (keys.encode_card_events([T], [1.0], [b"a"]), False, "record kind 3 in a terminal"),
        (keys.encode_marks([T], [T], [1], [b"a"]), True, "record kind 5 in a card"),
        (keys.encode_marks([T, T], [T, T], [1, 1], [b"a"]), False, "wrong id count"),
        (b"\x09" + bytes(15), True, "record kind 9"),
        (b"\x03\0\0", True, "truncated"),
        (keys.encode_header(bytes(8), 0)[:20], True, "truncated"),
    ],
    ids=[
        "cut-short",
        "card-in-terminal",
        "marks-in-card",
        "ids-missing",
        "unknown-kind",
        "tiny",
        "cut-header",
    ],
)
def test_a_corrupt_value_is_refused_with_a_clear_error(value, card, message):
    with pytest.raises(keys.CorruptStateError, match=message):
        keys.split_state(value, card)


def test_marks_apply_in_order_and_the_latest_label_wins(redis_client):
    fs.queue_label(redis_client, "t1", T, "x", 1, T + 1)
    fs.queue_label(redis_client, "t1", T, "x", 0, T + 2)
    fs.queue_label(redis_client, "t1", T + 5, "y", 1, T + 3)
    fs.queue_label(redis_client, "t1", T + 5, "y", 1, T + 3)  # a replayed label event
    assert entity_state(redis_client, terminal_id="t1")["frauds"] == [(T + 5, T + 3, "y")]
    assert 0 < redis_client.pttl(keys.terminal_state_key("t1")) <= fs.TERMINAL_TTL_MS


@pytest.mark.parametrize("path", ["wire", "wire-without-hiredis-reader", "pipeline"])
@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
def test_what_is_written_is_read_back(redis_url, monkeypatch, path, decode):
    # GIVEN a client as the scorer's (bytes) or the tests' (decode_responses), through the feature
    # store's own wire (taking replies from hiredis's reader, or through redis-py's read_response) or
    # through the client's pipeline (what a cluster client gets: one GET per key)
    if path == "pipeline":
        monkeypatch.setattr(redis_wire.Wire, "of", staticmethod(lambda target: None))
    if path == "wire-without-hiredis-reader":  # as with redis-py's pure-Python parser
        monkeypatch.setattr(redis_wire, "NOT_ENOUGH_DATA", None)
    client = redis.Redis.from_url(redis_url, decode_responses=decode)
    first = [ev("a", T - DAY_MS, 10.0), ev("b", T - 3_600_000, 20.0, terminal="t2")]
    second = [ev("c", T, 30.0), ev("d", T, 40.0, card="c2")]

    # WHEN two batches are read and written in turn
    read_then_write(client, first)
    state = read_then_write(client, second)

    # THEN the second read saw the first batch, and the stored state holds both (the second write
    # appended a record of its events after the first one)
    assert state.cards["c1"].events == [(T - DAY_MS, 10.0, "a"), (T - 3_600_000, 20.0, "b")]
    assert entity_state(client, card_id="c1", terminal_id="t1") == {
        "card": [(T - DAY_MS, 10.0, "a"), (T - 3_600_000, 20.0, "b"), (T, 30.0, "c")],
        "terminal": [(T - DAY_MS, "a"), (T, "c"), (T, "d")],  # same time: in id order
        "frauds": [],
    }
    assert [records(redis_url, keys.card_state_key(c)) for c in ("c1", "c2")] == [2, 1]
    client.close()


def test_a_replay_or_a_partial_retry_writes_nothing(redis_client, redis_url):
    batch = [ev("a", T - 60_000), ev("b", T, card="c2")]
    read_then_write(redis_client, batch)
    before = {k: raw_value(redis_url, k) for k in redis_client.keys("*")}

    redis_client.config_resetstat()
    read_then_write(redis_client, batch)
    read_then_write(redis_client, batch[1:])

    assert {k: raw_value(redis_url, k) for k in redis_client.keys("*")} == before
    assert not any(calls(redis_client, c) for c in ("append", "eval", "pexpire", "set"))


def test_the_ttl_is_set_when_the_key_is_created_and_again_a_week_later(redis_client, redis_url, monkeypatch):
    key = keys.card_state_key("c1")
    now = {"ms": T}
    monkeypatch.setattr(fs, "_now_ms", lambda: now["ms"])
    read_then_write(redis_client, [ev("a", T)])
    assert fs.CARD_TTL_MS - 60_000 < redis_client.pttl(key) <= fs.CARD_TTL_MS
    redis_client.config_resetstat()
    # within a week of the last setting (an hour, a day, six days later): one APPEND per entity (card and
    # terminal) and write, no PEXPIRE
    assert fs.TTL_REFRESH_MS == 7 * DAY_MS
    for i, later in enumerate((3_600_000, DAY_MS, 6 * DAY_MS), start=1):
        now["ms"] = T + later
        read_then_write(redis_client, [ev(f"b{i}", T + i)])
    assert (calls(redis_client, "append"), calls(redis_client, "pexpire")) == (6, 0)
    # a week after it: set again (and noted in the value, so the next writes skip it again)
    now["ms"] = T + fs.TTL_REFRESH_MS
    redis_client.pexpire(key, 5_000)
    read_then_write(redis_client, [ev("c", T + 10)])
    assert redis_client.pttl(key) > fs.CARD_TTL_MS - 60_000
    assert keys.split_state(raw_value(redis_url, key), True).ttl_set_at_ms == T + fs.TTL_REFRESH_MS


def test_records_are_compacted_when_there_are_enough_of_them(redis_client, redis_url):
    key = keys.card_state_key("c1")
    for i in range(fs.MAX_RECORDS):
        read_then_write(redis_client, [ev(f"e{i}", T + i, float(i))])
    assert records(redis_url, key) == fs.MAX_RECORDS
    read_then_write(redis_client, [ev("last", T + 99)])
    assert records(redis_url, key) == 1
    expected = [(T + i, float(i), f"e{i}") for i in range(fs.MAX_RECORDS)] + [(T + 99, 1.0, "last")]
    assert entity_state(redis_client, card_id="c1")["card"] == expected
    assert fs.CARD_TTL_MS - 60_000 < redis_client.pttl(key) <= fs.CARD_TTL_MS


def _read_as(client, events):
    fs.read_state(client, events)
    return dict(fs._last_read["entities"])


def _write_as(client, snapshot, events):
    fs._last_read["entities"] = snapshot
    fs.queue_state_writes(client, events)


def test_writers_racing_on_a_terminal_lose_nothing(redis_client, redis_url, monkeypatch):
    monkeypatch.setattr(fs, "MAX_RECORDS", 2)  # so that a write after two records compacts
    terminal = keys.terminal_state_key("t1")
    read_then_write(redis_client, [ev("old", T - DAY_MS, card="x")])
    read_then_write(redis_client, [ev("older", T - 2 * DAY_MS, card="y")])
    # GIVEN three batches (three shards) that read the terminal before any of them writes
    shard_a, shard_b, shard_c = (
        [ev("a1", T, card="a")],
        [ev("b1", T + 1, card="b")],
        [ev("c1", T + 2, card="c")],
    )
    snapshots = [_read_as(redis_client, shard) for shard in (shard_a, shard_b, shard_c)]

    # WHEN A compacts, then B (its read is stale: a compaction came in between) and C write
    for snapshot, events in zip(snapshots, (shard_a, shard_b, shard_c), strict=True):
        _write_as(redis_client, snapshot, events)

    # THEN A's compaction happened, B's and C's fell back to appending: every event is there
    expected = [(T - 2 * DAY_MS, "older"), (T - DAY_MS, "old"), (T, "a1"), (T + 1, "b1"), (T + 2, "c1")]
    assert entity_state(redis_client, terminal_id="t1")["terminal"] == expected
    assert records(redis_url, terminal, card=False) == 3

    # AND a compaction whose read predates another one (of a value that was already compacted: the
    # nonce changed) is refused too, and appends instead
    snapshot = _read_as(redis_client, [ev("d1", T + 3, card="d")])
    _write_as(redis_client, _read_as(redis_client, [ev("e1", T + 4, card="e")]), [ev("e1", T + 4, card="e")])
    _write_as(redis_client, snapshot, [ev("d1", T + 3, card="d")])
    assert entity_state(redis_client, terminal_id="t1")["terminal"] == [
        *expected,
        (T + 3, "d1"),
        (T + 4, "e1"),
    ]
    # e1's write compacted (3 records read); d1's read predates it: its compaction was refused
    assert records(redis_url, terminal, card=False) == 2


def test_a_compaction_keeps_a_label_appended_after_the_read(redis_client, redis_url, monkeypatch):
    monkeypatch.setattr(fs, "MAX_RECORDS", 2)
    read_then_write(redis_client, [ev("x", T - DAY_MS, card="p")])
    read_then_write(redis_client, [ev("y", T - 1, card="q")])
    snapshot = _read_as(redis_client, [ev("z", T, card="r")])
    fs.queue_label(redis_client, "t1", T - DAY_MS, "x", 1, T)  # between that read and its write
    _write_as(redis_client, snapshot, [ev("z", T, card="r")])
    state = entity_state(redis_client, terminal_id="t1")
    assert state["frauds"] == [(T - DAY_MS, T, "x")]
    assert [tid for _, tid in state["terminal"]] == ["x", "y", "z"]
    assert records(redis_url, keys.terminal_state_key("t1"), card=False) == 2  # compacted + the mark


def test_a_write_drops_what_no_window_can_need(redis_client, redis_url):
    cutoff = T - CARD_RETENTION_MS - keys.ENTITY_TTL_MARGIN_MS  # for a write of events at T
    # an event a slack older than the cut-off makes the write compact and drop what is at or before
    # the cut-off (younger than the slack alone, events wait for the next compaction)
    events = [ev("very-old", cutoff - fs.COMPACT_SLACK_MS), ev("at-cutoff", cutoff), ev("kept", cutoff + 1)]
    read_then_write(redis_client, events)
    read_then_write(redis_client, [ev("new", T)])
    assert [tid for _, _, tid in entity_state(redis_client, card_id="c1")["card"]] == ["kept", "new"]
    assert records(redis_url, keys.card_state_key("c1")) == 1


def test_aged_events_wait_a_week_past_the_cut_off_before_a_write_compacts_for_them(redis_client, redis_url):
    # (at a day, a card paying twice a day compacted at about every other write: docs/performance.md)
    assert fs.COMPACT_SLACK_MS == 7 * DAY_MS
    cutoff = T - CARD_RETENTION_MS - keys.ENTITY_TTL_MARGIN_MS  # for a write of events at T
    key = keys.card_state_key("c1")
    # six days past the cut-off: the write appends, and the aged event stays until a compaction
    read_then_write(redis_client, [ev("six-days", cutoff - 6 * DAY_MS), ev("recent", T - DAY_MS)])
    read_then_write(redis_client, [ev("new", T)])
    assert records(redis_url, key) == 2
    assert [tid for _, _, tid in entity_state(redis_client, card_id="c1")["card"]] == [
        "six-days",
        "recent",
        "new",
    ]
    # a week past it (for a write of events a day later): compacted, the aged event dropped
    read_then_write(redis_client, [ev("later", T + DAY_MS)])
    assert records(redis_url, key) == 1
    assert [tid for _, _, tid in entity_state(redis_client, card_id="c1")["card"]] == [
        "recent",
        "new",
        "later",
    ]


def test_a_failed_command_leaves_the_client_usable(redis_client):
    # GIVEN a card key holding another type (an operator's mistake): MGET reads it as absent, and
    # the write's APPEND fails
    redis_client.hset(keys.card_state_key("c1"), "not", "a string")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        read_then_write(redis_client, [ev("a", T), ev("b", T, card="c2")])
    # THEN the connection did not keep the unread replies: the next commands get their own
    assert redis_client.ping() is True
    state = fs.read_state(redis_client, [ev("b", T, card="c2")])
    assert state.cards["c2"].events == [(T, 1.0, "b")]


def test_a_corrupt_value_fails_the_read_with_its_key(redis_client):
    redis_client.set(keys.card_state_key("c1"), b"\x03garbage")
    with pytest.raises(keys.CorruptStateError, match=r"card:\{c1\}:state: truncated"):
        fs.read_state(redis_client, [ev("a", T)])
    # (an id list that does not match its times is refused too, whatever split it would give)
    redis_client.set(
        keys.card_state_key("c1"), keys.encode_card_events([T, T + 1], [1.0, 2.0], [b"a\nb\nc", b"d"])
    )
    with pytest.raises(keys.CorruptStateError, match=r"card:\{c1\}:state: 2 event times but 4"):
        fs.read_state(redis_client, [ev("a", T)])


def test_concurrent_writers_with_frequent_compactions_lose_no_event(redis_url, monkeypatch):
    # GIVEN four writers (own connections, own snapshots, as four shards' containers) adding events to
    # one terminal, each reading the value and writing right after, so that their reads and writes
    # interleave in Redis; a compaction every third record
    monkeypatch.setattr(fs, "MAX_RECORDS", 3)
    key = keys.terminal_state_key("t1")
    writers, per_writer = 4, 60
    compactions = []

    def write(tag: int) -> None:
        with redis.Redis.from_url(redis_url) as client:
            wire = redis_wire.Wire.of(client)
            for i in range(per_writer):
                value = wire.run([(b"GET", key.encode())])[0]
                event = (f"w{tag}-{i:03d}", T + i * writers + tag, f"card-{tag}", "t1", 1.0)
                commands, _, _ = fs._write_commands([event], {key: fs._decode(value, False)})
                replies = wire.run(commands)
                compactions.extend(r for c, r in zip(commands, replies, strict=True) if c[0] == b"EVAL")

    # WHEN they run at once
    threads = [threading.Thread(target=write, args=(tag,)) for tag in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN every event is there once, compactions happened, and some were refused (stale reads)
    with redis.Redis.from_url(redis_url) as client:
        stored = entity_state(client, terminal_id="t1")["terminal"]
    assert sorted(tid for _, tid in stored) == sorted(
        f"w{t}-{i:03d}" for t in range(writers) for i in range(per_writer)
    )
    assert compactions.count(1) > 0  # (≈ 65 of ≈ 150 here)
    assert compactions.count(0) > 0  # (≈ 70-90 here: the stale path is exercised, not just possible)


def test_lazy_ids_behave_as_the_list_they_stand_for():
    # GIVEN ids as read (one joined blob), a window's copy of them, and an empty entity's
    read = fs.LazyIds(b"a\nb:c\nd", 3)
    window = read.copy()
    empty = fs.LazyIds(b"", 0)

    # WHEN the window appends after its last id, then inserts before its second; the empty one appends
    window.insert(3, b"e")
    assert len(window) == 4
    window.insert(1, b"x")
    empty.insert(0, b"z")

    # THEN each reads as the list with those insertions, and what was read is unchanged
    assert list(window) == [b"a", b"x", b"b:c", b"d", b"e"]
    assert (window[1], window[-1], window[2:4], window.index(b"d")) == (b"x", b"e", [b"b:c", b"d"], 3)
    assert list(read) == [b"a", b"b:c", b"d"]
    assert len(read) == 3
    assert list(empty) == [b"z"]
    assert list(fs.LazyIds(b"", 0)) == []
    # AND a copy of a split list is its own
    twin = window.copy()
    twin.insert(0, b"q")
    assert (len(twin), len(window)) == (6, 5)


def test_a_prepared_write_applies_only_to_the_events_read_and_client_it_was_built_for(redis_url):
    client = redis.Redis.from_url(redis_url)
    history = [ev("h1", T - DAY_MS, 5.0), ev("h2", T - DAY_MS, 6.0, card="c2", terminal="t2")]
    read_then_write(client, history)
    batch = [ev("a", T, 10.0), ev("b", T + 1, 20.0, card="c2", terminal="t2")]

    # GIVEN the batch read, and its write prepared for every transaction being stored
    fs.read_state(client, batch)
    prepared = fs.prepare_state_writes(batch)

    # WHEN only "a" got stored (b's document write failed): the prepared write must not be sent
    fs.queue_state_writes(client, batch[:1], prepared)

    # THEN only "a" is in the state
    assert [e[2] for e in entity_state(client, card_id="c1")["card"]] == ["h1", "a"]
    assert [e[2] for e in entity_state(client, card_id="c2")["card"]] == ["h2"]

    # AND a write prepared after another client's read is not sent after this client's: built from
    # that older read it would append "e" again, which this client's read already finds
    other = redis.Redis.from_url(redis_url)
    late = [ev("e", T + 10, 50.0, card="c4", terminal="t4")]
    fs.read_state(other, late)
    stale = fs.prepare_state_writes(late)
    fs.queue_state_writes(other, late)
    fs.read_state(client, late)
    fs.queue_state_writes(client, late, stale)
    assert records(redis_url, keys.card_state_key("c4")) == 1
    assert records(redis_url, keys.terminal_state_key("t4"), card=False) == 1

    # AND a write prepared for exactly what is written leaves the state a fresh build would
    fresh = [ev("c", T + 2, 30.0), ev("d", T + 3, 40.0, card="c3", terminal="t2")]
    fs.read_state(client, fresh)
    fs.queue_state_writes(client, fresh, fs.prepare_state_writes(fresh))
    assert [e[2] for e in entity_state(client, card_id="c1")["card"]] == ["h1", "a", "c"]
    assert [e[2] for e in entity_state(client, card_id="c3")["card"]] == ["d"]
    assert [e[0] for e in entity_state(client, terminal_id="t2")["terminal"]] == [T - DAY_MS, T + 3]

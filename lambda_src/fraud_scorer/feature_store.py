"""Redis as the online feature store: each card's and terminal's recent events, and the vectors
computed from them exactly as the feature specification's reference function does.

State (docs/architecture.md, *Redis data model*; key names and encodings in `contracts.redis_keys`):

- `card:{<card>}:events` — ZSET of *blocks*: each member holds many of the card's events (event
  time, amount, transaction id), columnar and fixed-width (`keys.encode_card_block`); one to three.
- `terminal:{<terminal>}:events` — the same for the terminal (event time, transaction id).
- `terminal:{<terminal>}:frauds` — ZSET of reported frauds, score = the transaction's event time,
  member `<ts>:<reported at>:<transaction id>` (few: one member per fraud).

Why this shape:

- *Fast*: a 500-record batch reads ~1,000 entities' full windows (~50,000 events). One member per
  event made Redis return, and the client parse, 50,000 strings per batch; a block is one string
  that becomes arrays of times and amounts with a memory copy. The vector is then computed with bisection over
  the sorted event times and `math.fsum` over list slices (`BatchState.vector`), equal to
  `contracts.features.compute_vector` (tests/feature_store/test_fs_fast_vector.py proves it on the
  exactness data and edge cases). The feature store's commands are packed here and sent in one round
  trip each way (`_Wire`), not through redis-py's pipeline, whose per-command Python cost (7–11 µs)
  was most of the budget for ~1,500 reads + ~2,000 writes; a client without a plain connection pool
  (e.g. `RedisCluster`) gets the same commands through its own pipeline instead.
- *Exact*: the whole window is kept (no capped query, no pre-aggregated buckets).
- *Point in time*: a transaction's vector reads the entity's events that precede it in event order
  (`(ts, id) < (t, own id)`) and the frauds reported at or before t. Events already applied by an
  earlier attempt of the same batch (a retry) or later in the batch are not seen, so a retry computes
  the same vector as the first attempt.
- *Idempotent*: an event is identified by its transaction id; reads de-duplicate, and a write adds
  only events the batch's read did not find, so a replay, a duplicate or a partial retry writes
  nothing at all. The batch applies state only for transactions whose document it stored or finds
  stored with the same content (never for a conflicting reuse of an id).
- *Small writes*: a write adds one small block of the batch's new events for each entity; when the
  entity holds `MAX_BLOCKS` blocks (or events long past the cut-off, or members of the previous
  encoding) the write merges everything into one block instead (`_entity_commands`). Rewriting the
  whole window every time made Redis copy and hash a few KB per entity and batch.
- *Safe under concurrent writers* (a terminal is written by the batches of every shard): a merging
  write removes exactly the blocks its read returned (named by their score, a hash of the block); a
  block another writer added meanwhile stays, and the duplicates two writers may leave are dropped
  by readers and by the next merge.
- *Cluster-ready*: every key is hash-tagged by its entity, and every command touches one key.
- *Bounded*: a merging write drops events older than the longest window + delay (with a margin)
  before the earliest of the entity's events in the batch, and merges as soon as an event is
  `COMPACT_SLACK_MS` past that; every write sets the key's TTL to that horizon.
- *No cache*: nothing is kept between batches (the latest read's snapshot only serves its own
  batch's write), so a cold container does exactly the work of a warm one.

`backfill` loads history through the same encoding and commands (one block per entity, without a
read first).
"""

from __future__ import annotations

import contextlib
import math
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import hiredis
import redis
from redis.commands.core import Script

from contracts import redis_keys as keys
from contracts.features import (
    CARD_RETENTION_MS,
    FEATURES,
    MODEL_FEATURES,
    TERMINAL_RETENTION_MS,
    is_night,
    is_weekend,
)

# A margin beyond the longest window + delay, for both trimming and the TTL: cross-shard lag and
# retried batches never find an event they need trimmed away.
MARGIN_MS = keys.ENTITY_TTL_MARGIN_MS
CARD_TTL_MS = CARD_RETENTION_MS + MARGIN_MS
TERMINAL_TTL_MS = TERMINAL_RETENTION_MS + MARGIN_MS

# KEYS: terminal:{id}:frauds. ARGV: transaction event time, transaction id, label (0/1), reported at,
# TTL ms. The latest label event for a transaction wins: its old mark (any report time) is removed,
# and label 1 adds the new one. Applying the same label event again changes nothing. The frauds key is
# trimmed and its TTL set here only (not on every transaction at the terminal): a mark matters for
# TERMINAL_RETENTION_MS after its transaction, and the key's TTL from its latest mark covers that.
APPLY_LABEL_LUA = """
local prefix = ARGV[1] .. ':'
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[1], 'BYSCORE')) do
  local rest = string.sub(m, #prefix + 1)
  local sep = string.find(rest, ':', 1, true)
  if sep and string.sub(rest, sep + 1) == ARGV[2] then redis.call('ZREM', KEYS[1], m) end
end
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ':' .. ARGV[4] .. ':' .. ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
"""
APPLY_LABEL = Script(None, APPLY_LABEL_LUA.encode())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class StateEvent:
    """What the entity state needs from a transaction."""

    transaction_id: str
    timestamp_ms: int
    card_id: str
    terminal_id: str
    amount: float


def _locate(
    ts: Sequence[int], ids: Sequence[bytes], timestamp_ms: int, transaction_id: bytes
) -> tuple[int, bool]:
    """Where `(timestamp_ms, transaction_id)` sits in events sorted by (time, id): how many events
    precede it in event order, and whether it is itself among them."""
    p = bisect_left(ts, timestamp_ms)
    n = len(ts)
    while p < n and ts[p] == timestamp_ms:  # same millisecond: ordered by id (rare)
        other = ids[p]
        if other >= transaction_id:
            return p, other == transaction_id
        p += 1
    return p, False


class CardWindow:
    """A card's events sorted by (event time, transaction id), as parallel lists (ids as ASCII bytes)."""

    __slots__ = ("amounts", "ids", "ts")

    def __init__(
        self, ts: list[int] | None = None, amounts: list[float] | None = None, ids: list[bytes] | None = None
    ) -> None:
        self.ts = ts if ts is not None else []
        self.amounts = amounts if amounts is not None else []
        self.ids = ids if ids is not None else []

    def add(self, event: StateEvent) -> None:
        """Insert in event order; an event already there (same id) changes nothing."""
        tid = event.transaction_id.encode()
        p, present = _locate(self.ts, self.ids, event.timestamp_ms, tid)
        if not present:
            self.ts.insert(p, event.timestamp_ms)
            self.amounts.insert(p, event.amount)
            self.ids.insert(p, tid)

    @property
    def events(self) -> list[tuple[int, float, str]]:
        return [(t, a, i.decode()) for t, a, i in zip(self.ts, self.amounts, self.ids, strict=True)]


class TerminalWindow:
    """A terminal's events sorted by (event time, id), and its reported frauds."""

    __slots__ = ("frauds", "ids", "ts")

    def __init__(
        self,
        ts: list[int] | None = None,
        ids: list[bytes] | None = None,
        frauds: dict[str, int] | None = None,
    ) -> None:
        self.ts = ts if ts is not None else []
        self.ids = ids if ids is not None else []
        # transaction id -> when its fraud was reported (the latest label event's, label 1 only)
        self.frauds = frauds if frauds is not None else {}

    def add(self, event: StateEvent) -> None:
        tid = event.transaction_id.encode()
        p, present = _locate(self.ts, self.ids, event.timestamp_ms, tid)
        if not present:
            self.ts.insert(p, event.timestamp_ms)
            self.ids.insert(p, tid)

    def apply_label(self, transaction_id: str, label: int, reported_at_ms: int) -> None:
        if label:
            self.frauds[transaction_id] = reported_at_ms
        else:
            self.frauds.pop(transaction_id, None)

    def fraud_positions(self, timestamp_ms: int) -> list[int]:
        """Indices of the events whose fraud was reported at or before `timestamp_ms`."""
        out = []
        ids = self.ids
        for transaction_id, reported_at in self.frauds.items():
            if reported_at <= timestamp_ms:
                # (a mark whose event is not in the state counts nowhere)
                with contextlib.suppress(ValueError):
                    out.append(ids.index(transaction_id.encode()))
        return out

    @property
    def events(self) -> list[tuple[int, str]]:
        return [(t, i.decode()) for t, i in zip(self.ts, self.ids, strict=True)]


@lru_cache(maxsize=16)
def _plan(names: tuple[str, ...]) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple]]:
    """For a feature list: the distinct (window, delay) of the card's and the terminal's features,
    and per feature (source 0 transaction / 1 card / 2 terminal, feature, index of its window)."""
    windows: dict[str, list[tuple[int, int]]] = {"card": [], "terminal": []}
    steps = []
    for name in names:
        feature = FEATURES[name]
        if feature.entity == "transaction":
            steps.append((0, feature, 0))
            continue
        entity_windows = windows[feature.entity]
        window = (feature.window_ms, feature.delay_ms)
        if window not in entity_windows:
            entity_windows.append(window)
        steps.append((1 if feature.entity == "card" else 2, feature, entity_windows.index(window)))
    return windows["card"], windows["terminal"], steps


@lru_cache(maxsize=16)
def _compiled(names: tuple[str, ...]) -> Callable[..., list[int | float]]:
    """A function `(card window, terminal window, t, amount, own id) -> vector` for `names`, written
    out once per feature list: each distinct window is cut once (two bisections), its sum taken once,
    and the vector is one list display — a generic loop over the features cost twice as much per
    transaction. The rules are `contracts.features`' (see `window_rule`), evaluated on index ranges:
    a window (t - delay - w, t - delay] over the events before the transaction in event order, plus
    the transaction itself when the delay is 0."""
    card_windows, terminal_windows, steps = _plan(names)
    needs_sum = {w for source, feature, w in steps if source == 1 and feature.aggregation in _SUMMED}
    lines = ["def vector(card, terminal, t, amount, own):"]
    for prefix, entity, windows in (("c", "card", card_windows), ("k", "terminal", terminal_windows)):
        if not windows:
            continue
        lines.append(f"    {prefix}ts = {entity}.ts")
        lines.append(f"    {prefix}p = _locate({prefix}ts, {entity}.ids, t, own)[0]")
        for i, (window_ms, delay_ms) in enumerate(windows):
            hi, lo, n = f"{prefix}h{i}", f"{prefix}l{i}", f"{prefix}n{i}"
            if delay_ms:
                lines.append(f"    {hi} = bisect_right({prefix}ts, t - {delay_ms}, 0, {prefix}p)")
                lines.append(f"    {lo} = bisect_right({prefix}ts, t - {delay_ms + window_ms}, 0, {hi})")
                lines.append(f"    {n} = {hi} - {lo}")
            else:
                lines.append(f"    {hi} = {prefix}p")
                lines.append(f"    {lo} = bisect_right({prefix}ts, t - {window_ms}, 0, {hi})")
                lines.append(f"    {n} = {hi} - {lo} + 1")
            if prefix == "c" and i in needs_sum:
                lines.append(f"    v = card.amounts[{lo}:{hi}]")
                if not delay_ms:
                    lines.append("    v.append(amount)")
                lines.append(f"    cs{i} = fsum(v)")
                lines.append(f"    cm{i} = cs{i} / {n} if {n} else 0.0")
    if any(source == 2 and feature.aggregation == "fraud_share" for source, feature, _ in steps):
        lines.append("    frauds = terminal.fraud_positions(t) if terminal.frauds else ()")
    values = []
    for source, feature, i in steps:
        aggregation = feature.aggregation
        if source == 0:
            values.append(
                {"amount": "amount", "is_weekend": "is_weekend(t)", "is_night": "is_night(t)"}[aggregation]
            )
        elif source == 1 and aggregation == "count":
            values.append(f"cn{i}")
        elif source == 1 and aggregation == "sum_amount":
            values.append(f"cs{i}")
        elif source == 1 and aggregation == "mean_amount":
            values.append(f"cm{i}")
        elif source == 1 and aggregation == "amount_to_mean":
            values.append(f"(amount / cm{i} if cm{i} else 1.0)")
        elif source == 1 and aggregation == "seconds_since_previous":
            values.append(f"((t - cts[ch{i} - 1]) / 1000 if ch{i} > cl{i} else {feature.window_ms / 1000!r})")
        elif source == 2 and aggregation == "count":
            values.append(f"kn{i}")
        elif source == 2 and aggregation == "fraud_share":
            values.append(f"(sum(1 for j in frauds if kl{i} <= j < kh{i}) / kn{i} if kn{i} else 0.0)")
        else:  # pragma: no cover - contracts.features refuses these combinations
            raise ValueError(f"no fast rule for {feature.name} ({feature.entity}/{aggregation})")
    lines.append(f"    return [{', '.join(values)}]")
    namespace = {
        "_locate": _locate,
        "bisect_right": bisect_right,
        "fsum": math.fsum,
        "is_weekend": is_weekend,
        "is_night": is_night,
    }
    exec(compile("\n".join(lines), f"<feature vector {len(names)}>", "exec"), namespace)  # noqa: S102
    return namespace["vector"]


_SUMMED = {"sum_amount", "mean_amount", "amount_to_mean"}


class BatchState:
    """The batch's working copy of its entities' state, read in one round trip, updated in stream
    order as vectors are computed (so a card's later transactions in the batch see its earlier ones)."""

    def __init__(self, cards: dict[str, CardWindow], terminals: dict[str, TerminalWindow]) -> None:
        self.cards = cards
        self.terminals = terminals

    def vector(self, event: StateEvent, names: Sequence[str] = MODEL_FEATURES) -> list[int | float]:
        """The event's feature vector, point in time: only events before it in event order, only
        frauds reported at or before its time. The same values as `contracts.features.compute_vector`
        over the same history: the same rules, evaluated with bisection over the sorted event times
        and `math.fsum` over slices of the amounts, by a function generated once per feature list
        (`_compiled`; tests/feature_store/test_fs_fast_vector.py proves the equality)."""
        compute = _compiled(names if isinstance(names, tuple) else tuple(names))
        return compute(
            self.cards[event.card_id],
            self.terminals[event.terminal_id],
            event.timestamp_ms,
            event.amount,
            event.transaction_id.encode(),
        )

    def add(self, event: StateEvent) -> None:
        self.cards[event.card_id].add(event)
        self.terminals[event.terminal_id].add(event)


# --- the wire: the feature store's commands in one round trip -----------------------------------------


class _Wire:
    """Sends a list of commands on one pooled connection in one write and reads their replies, raw
    (`bytes`, whatever the client's `decode_responses`). redis-py's pipeline spends 7–11 µs of Python
    per command packing it and dispatching its reply through callbacks; this spends ~1–2 µs, and the
    feature store sends ~2,500 commands per 500-record batch. The connection's own retry policy
    applies (every command here is a read or idempotent); any error disconnects the connection, so a
    half-read reply stream is never reused."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.pool = pool

    @staticmethod
    def of(target: Any) -> _Wire | None:
        """For a `redis.Redis` or its pipeline; None for anything else (e.g. `RedisCluster`, which
        routes per slot): those get the same commands through their own pipeline."""
        pool = getattr(target, "connection_pool", None)
        return _Wire(pool) if isinstance(pool, redis.ConnectionPool) else None

    def run(self, commands: Sequence[tuple[bytes, ...]]) -> list[Any]:
        if not commands:
            return []
        payload = b"".join(map(_pack, commands))
        count = len(commands)
        conn = self.pool.get_connection()
        try:
            retry = getattr(conn, "retry", None)
            if retry is None:
                return self._exchange(conn, payload, count)
            return retry.call_with_retry(
                lambda: self._exchange(conn, payload, count), lambda _error: conn.disconnect()
            )
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self.pool.release(conn)

    @staticmethod
    def _exchange(conn: Any, payload: bytes, count: int) -> list[Any]:
        conn.send_packed_command([payload])
        parser = getattr(conn, "_parser", None)
        reader = getattr(parser, "_reader", None)
        if _NOT_ENOUGH_DATA is None or reader is None or not hasattr(parser, "read_from_socket"):
            read = conn.read_response  # the pure-Python parser: its own loop
            return [read(disable_decoding=True) for _ in range(count)]
        # hiredis: take the replies straight from its reader (redis-py's read_response adds ~2 µs of
        # Python per reply); an error reply is raised, after which the connection is dropped.
        out: list[Any] = []
        gets, fill = reader.gets, parser.read_from_socket
        while len(out) < count:
            reply = gets(False)
            if reply is _NOT_ENOUGH_DATA:
                fill()
            elif isinstance(reply, Exception):
                raise reply
            else:
                out.append(reply)
        return out


# What redis-py's hiredis reader returns while a reply is incomplete (None: not that parser).
try:
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
except ImportError:  # pragma: no cover - another redis-py layout
    _NOT_ENOUGH_DATA = None


def _pack(command: tuple[bytes, ...]) -> bytes:
    """One command in RESP: hiredis's own packer (C, ~1 µs; redis-py's Python packer takes ~3 µs)."""
    return hiredis.pack_command(command)


def _execute(target: Any, commands: Sequence[tuple[bytes, ...]]) -> list[Any]:
    """Run `commands` now, on the wire or (cluster clients) through a pipeline of the target's client."""
    wire = _Wire.of(target)
    if wire is not None:
        return wire.run(commands)
    pipe = target.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command, NEVER_DECODE=True)
    return pipe.execute()


# The latest read's view of each entity key (its blocks as read, and their events), kept for the
# batch's state write: the write merges into one block what the read found plus what is new, removes
# the blocks it read, and writes nothing for an entity with nothing new. One batch at a time per
# container (Lambda's model); a write for another client or an entity the read did not cover falls
# back to adding a block of its events (readers de-duplicate). Not a cache: every batch reads afresh.
class _Snapshot(NamedTuple):
    blocks: list[tuple[bytes, int]]  # (member, score) as read
    ts: array  # int64 event times, sorted
    amounts: array | tuple  # float64 (a card's), () for a terminal
    ids: tuple[bytes, ...]


_last_read: dict[str, Any] = {"origin": None, "entities": {}}


def _origin(target: Any) -> Any:
    return getattr(target, "connection_pool", None) or getattr(target, "nodes_manager", None)


def _score(raw: Any) -> int:
    return int(raw) if isinstance(raw, bytes) else int(float(raw))


def _pairs(reply: Any) -> list[tuple[bytes, int]]:
    """`ZRANGE … WITHSCORES` as (member, score): RESP2 gives a flat list, RESP3 pairs."""
    if not reply:
        return []
    if isinstance(reply[0], list):
        return [(m, _score(s)) for m, s in reply]
    if len(reply) == 2:  # one block: the usual case
        return [(reply[0], _score(reply[1]))]
    it = iter(reply)
    return [(m, _score(s)) for m, s in zip(it, it, strict=True)]


def _normalize(columns: list[list], ids: list[bytes]) -> tuple[list[tuple], list[bytes]]:
    """Events gathered from several blocks, sorted by (time, id), each id once."""
    merged = sorted(zip(columns[0], ids, *columns[1:], strict=True))
    keep = []
    seen: set[bytes] = set()
    for event in merged:
        if event[1] not in seen:
            seen.add(event[1])
            keep.append(event)
    if not keep:
        return [() for _ in columns], []
    ts, kept_ids, *rest = zip(*keep, strict=True)
    return [ts, *rest], list(kept_ids)


def _first_time(decoded: tuple) -> int:
    return decoded[0][0]


def _empty(width: int) -> tuple:
    return (array("q"), array("d"), ()) if width == 3 else (array("q"), ())


def _merge(decoded: list[tuple]) -> tuple:
    """Columns (times, [amounts,] ids) from several blocks' `*_block_columns` (ids still joined),
    sorted by (time, id), each id once. Each block is sorted. Usually the blocks follow one another
    in time (a card's batches come in order): then they are concatenated in that order (memory
    copies, one split of the ids). Else, with distinct ids and times, one C-level sort by time; else
    the general (slower) path."""
    width = len(decoded[0])
    if len(decoded) == 2:  # the most frequent merge: two non-empty blocks, one after the other
        a, b = decoded
        if len(a[0]) and len(b[0]):
            if b[0][-1] < a[0][0]:
                a, b = b, a
            if a[0][-1] < b[0][0]:
                ids = tuple(b"\n".join((a[-1], b[-1])).split(b"\n"))
                return (*(a[i] + b[i] for i in range(width - 1)), ids)
    decoded = sorted((d for d in decoded if len(d[0])), key=_first_time)
    if not decoded:
        return _empty(width)
    if all(a[0][-1] < b[0][0] for a, b in zip(decoded, decoded[1:], strict=False)):
        # strictly after one another: sorted, and no event twice (a repeat has an equal time)
        out: list = []
        for i in range(width - 1):
            column = decoded[0][i][:]
            for d in decoded[1:]:
                column.extend(d[i])
            out.append(column)
        return (*out, tuple(b"\n".join([d[-1] for d in decoded]).split(b"\n")))
    columns = [list(chain.from_iterable(column)) for column in zip(*decoded, strict=True)][:-1]
    ids = list(chain.from_iterable(d[-1].split(b"\n") for d in decoded))
    ts = columns[0]
    n = len(ts)
    if len(set(ids)) == n and len(set(ts)) == n:
        pick = itemgetter(*sorted(range(n), key=ts.__getitem__))
        columns = [pick(column) for column in (*columns, ids)]
    else:
        merged, kept_ids = _normalize(columns, ids)
        columns = [*merged, kept_ids]
    typecodes = ("q", "d") if width == 3 else ("q",)
    return (*(array(t, c) for t, c in zip(typecodes, columns, strict=False)), tuple(columns[-1]))


def _decode_card(blocks: list[tuple[bytes, int]]) -> tuple[array, array, tuple]:
    if not blocks:
        return _empty(3)
    if len(blocks) == 1:  # one block: written sorted and unique
        ts, amounts, ids = keys.card_block_columns(blocks[0][0])
        return ts, amounts, tuple(ids.split(b"\n")) if ts else ()
    return _merge([keys.card_block_columns(member) for member, _ in blocks])


def _decode_terminal(blocks: list[tuple[bytes, int]]) -> tuple[array, tuple]:
    if not blocks:
        return _empty(2)
    if len(blocks) == 1:
        ts, ids = keys.terminal_block_columns(blocks[0][0])
        return ts, tuple(ids.split(b"\n")) if ts else ()
    return _merge([keys.terminal_block_columns(member) for member, _ in blocks])


def read_state(client: redis.Redis, events: Sequence[StateEvent]) -> BatchState:
    """Every card's and terminal's state the events need, in one round trip."""
    pipe = client.pipeline(transaction=False)
    parse = queue_state_reads(pipe, events)
    return parse(iter(pipe.execute() if len(pipe) else ()))


def _read_commands(events: Sequence[StateEvent]) -> tuple[list[str], list[str], list[tuple[bytes, ...]]]:
    cards: dict[str, None] = {}
    terminal_from: dict[str, int] = {}
    for event in events:
        cards[event.card_id] = None
        ts = event.timestamp_ms
        if ts < terminal_from.get(event.terminal_id, ts + 1):
            terminal_from[event.terminal_id] = ts
    commands: list[tuple[bytes, ...]] = [
        (b"ZRANGE", keys.card_events_key(card_id).encode(), b"0", b"-1", b"WITHSCORES") for card_id in cards
    ]
    for terminal_id, start in terminal_from.items():
        commands.append(
            (b"ZRANGE", keys.terminal_events_key(terminal_id).encode(), b"0", b"-1", b"WITHSCORES")
        )
        commands.append(
            (
                b"ZRANGE",
                keys.terminal_frauds_key(terminal_id).encode(),
                b"(%d" % (start - TERMINAL_RETENTION_MS),
                b"+inf",
                b"BYSCORE",
            )
        )
    return list(cards), list(terminal_from), commands


def queue_state_reads(pipe: Any, events: Sequence[StateEvent]) -> Callable[[Iterator[Any]], BatchState]:
    """Read every card's and terminal's state the events need and return the function that gives the
    batch's state. On a `redis.Redis` or its pipeline the reads go out NOW, in their own round trip
    (`_Wire`: the caller's pipeline would cost ~10 µs of Python per command), and the returned
    function ignores its argument; on other clients (e.g. a cluster pipeline) they are queued on
    `pipe` and the function parses their replies, consumed in order from an iterator."""
    cards, terminals, commands = _read_commands(events)
    origin = _origin(pipe)
    wire = _Wire.of(pipe)
    if wire is not None:
        replies = wire.run(commands)
        return lambda _replies: _parse_state(cards, terminals, iter(replies), origin)
    for command in commands:
        pipe.execute_command(*command, NEVER_DECODE=True)
    return lambda replies: _parse_state(cards, terminals, replies, origin)


def read_with_state(
    target: Any, commands: Sequence[tuple[bytes, ...]], events: Sequence[StateEvent]
) -> tuple[list[Any], BatchState] | None:
    """`commands` (e.g. the batch's document reads, raw replies) and the state reads the events need,
    in ONE round trip on the wire: (the commands' replies, the batch's state). None for a target
    without a wire (e.g. a cluster client): the caller queues on its pipeline and uses
    `queue_state_reads`. The documents' ~500 reads through redis-py's pipeline cost its 7–11 µs of
    Python per command, and a round trip of their own. An error reply raises (a `redis.RedisError`),
    as the pipeline's `execute()` did."""
    wire = _Wire.of(target)
    if wire is None:
        return None
    cards, terminals, reads = _read_commands(events)
    replies = wire.run([*commands, *reads])
    n = len(commands)
    return replies[:n], _parse_state(cards, terminals, iter(replies[n:]), _origin(target))


def _parse_state(cards: list[str], terminals: list[str], replies: Iterator[Any], origin: Any) -> BatchState:
    snapshots: dict[str, _Snapshot] = {}
    card_windows: dict[str, CardWindow] = {}
    for card_id in cards:
        blocks = _pairs(next(replies))
        ts, amounts, ids = _decode_card(blocks)
        snapshots[keys.card_events_key(card_id)] = _Snapshot(blocks, ts, amounts, ids)
        card_windows[card_id] = CardWindow(ts[:], amounts[:], list(ids))  # copies: the snapshot stays
    terminal_windows: dict[str, TerminalWindow] = {}
    for terminal_id in terminals:
        blocks = _pairs(next(replies))
        ts, ids = _decode_terminal(blocks)
        snapshots[keys.terminal_events_key(terminal_id)] = _Snapshot(blocks, ts, (), ids)
        window = TerminalWindow(ts[:], list(ids))
        for member in next(replies):
            _, reported_at, transaction_id = keys.parse_fraud_member(_text(member))
            window.frauds[transaction_id] = reported_at
        terminal_windows[terminal_id] = window
    _last_read["origin"], _last_read["entities"] = origin, snapshots
    return BatchState(card_windows, terminal_windows)


# --- writing state --------------------------------------------------------------------------------------


_BLOCK_KINDS = (keys.CARD_BLOCK, keys.TERMINAL_BLOCK)
# A write adds a block of its new events; it merges everything into one block (and drops what no
# window can need) when the entity has MAX_BLOCKS blocks, holds events written by the previous
# encoding, or holds an event COMPACT_SLACK_MS older than the cut-off: rewriting the whole window on
# every write made each write cost Redis a few KB to copy and hash, where a small block costs ~1 µs.
# So an event stays at most CARD/TERMINAL_TTL_MS + COMPACT_SLACK_MS past the entity's latest events.
MAX_BLOCKS = 3
COMPACT_SLACK_MS = keys.ENTITY_TTL_MARGIN_MS


def _compact(snapshot: _Snapshot, cutoff: int) -> bool:
    blocks = snapshot.blocks
    return (
        len(blocks) >= MAX_BLOCKS
        or snapshot.ts[0] <= cutoff - COMPACT_SLACK_MS
        or any(member[0] not in _BLOCK_KINDS for member, _ in blocks)
    )


def _entity_commands(
    key: str,
    snapshot: _Snapshot | None,
    new: list[tuple[int, float, bytes]] | list[tuple[int, bytes]],
    ttl_ms: int,
    *,
    card: bool,
) -> list[tuple[bytes, ...]]:
    """THE state update of one entity, for streaming and backfill alike. `new`: its events, sorted by
    (time, id), unique, none of them in `snapshot` (what the batch read; None = not read). Returns
    the commands: usually add a block of the new events; when `_compact` says so, add one block of
    the snapshot's events younger than the cut-off plus the new ones and remove the blocks the
    snapshot read; then set the TTL. Nothing when there is nothing new."""
    if not new:
        return []
    kb = key.encode()
    ttl = (b"PEXPIRE", kb, b"%d" % ttl_ms)
    cutoff = new[0][0] - ttl_ms  # `new` is sorted: its earliest event
    new_ts, new_ids = [e[0] for e in new], [e[-1] for e in new]
    new_amounts = [e[1] for e in new] if card else []
    if snapshot is None or not snapshot.ts or not _compact(snapshot, cutoff):
        # A block of the new events alone, next to the ones there (most writes: small and cheap).
        block = (
            keys.encode_card_block(new_ts, new_amounts, new_ids)
            if card
            else keys.encode_terminal_block(new_ts, new_ids)
        )
        return [(b"ZADD", kb, b"%d" % keys.block_score(block), block), ttl]
    start = bisect_right(snapshot.ts, cutoff)  # events at or before the cut-off are dropped
    if (
        len(snapshot.blocks) == 1
        and snapshot.blocks[0][0][0] in _BLOCK_KINDS
        and (new_ts[0], new_ids[0]) > (snapshot.ts[-1], snapshot.ids[-1])
    ):
        # One block and the new events after it: splice, do not re-encode.
        dropped = sum(map(len, snapshot.ids[:start])) + start
        block = keys.extend_block(snapshot.blocks[0][0], start, new_ts, new_amounts, new_ids, dropped)
    else:
        ts, ids = list(snapshot.ts[start:]), list(snapshot.ids[start:])
        amounts = list(snapshot.amounts[start:])
        for event in new:
            p, _ = _locate(ts, ids, event[0], event[-1])
            ts.insert(p, event[0])
            ids.insert(p, event[-1])
            if card:
                amounts.insert(p, event[1])
        block = keys.encode_card_block(ts, amounts, ids) if card else keys.encode_terminal_block(ts, ids)
    score = keys.block_score(block)
    commands: list[tuple[bytes, ...]] = [(b"ZADD", kb, b"%d" % score, block)]
    legacy = []
    for member, old_score in snapshot.blocks:
        if member[0] in _BLOCK_KINDS:
            if old_score != score:
                commands.append((b"ZREMRANGEBYSCORE", kb, b"%d" % old_score, b"%d" % old_score))
        else:
            legacy.append(member)
    if legacy:
        commands.append((b"ZREM", kb, *legacy))
    commands.append(ttl)
    return commands


def _event_order(event: tuple) -> tuple[int, bytes]:
    return event[0], event[-1]


def _write_commands(
    events: Iterable[tuple[str, int, str, str, float]], snapshots: Mapping[str, _Snapshot] | None
) -> tuple[list[tuple[bytes, ...]], int, int]:
    """The commands adding `events` — (transaction id, event time ms, card id, terminal id, amount) — to
    their cards' and terminals' state, given what the batch read (`snapshots`, None = nothing)."""
    by_card: dict[str, dict[bytes, tuple[int, float, bytes]]] = {}
    by_terminal: dict[str, dict[bytes, tuple[int, bytes]]] = {}
    for tid, ts, card, terminal, amount in events:
        tid_b = tid.encode()
        found = by_card.get(card)
        if found is None:
            by_card[card] = {tid_b: (ts, amount, tid_b)}
        else:
            found[tid_b] = (ts, amount, tid_b)
        found = by_terminal.get(terminal)
        if found is None:
            by_terminal[terminal] = {tid_b: (ts, tid_b)}
        else:
            found[tid_b] = (ts, tid_b)
    commands: list[tuple[bytes, ...]] = []
    for entities, key_of, ttl_ms, card in (
        (by_card, keys.card_events_key, CARD_TTL_MS, True),
        (by_terminal, keys.terminal_events_key, TERMINAL_TTL_MS, False),
    ):
        for entity_id, found in entities.items():
            key = key_of(entity_id)
            snapshot = snapshots.get(key) if snapshots is not None else None
            new = list(found.values())
            if len(new) > 1:
                new.sort(key=_event_order)
            if snapshot is not None and snapshot.ts:
                ts, ids = snapshot.ts, snapshot.ids
                last = ts[-1]
                # An event later than everything read cannot be among it (the usual case): no search.
                new = [e for e in new if e[0] > last or not _locate(ts, ids, e[0], e[-1])[1]]
            commands += _entity_commands(key, snapshot, new, ttl_ms, card=card)
    return commands, len(by_card), len(by_terminal)


def queue_state_writes(pipe: Any, events: Iterable[StateEvent]) -> tuple[int, int]:
    """Add `events` to their cards' and terminals' state. Idempotent. On a `redis.Redis` or its
    pipeline the writes go out NOW in their own round trip (`_Wire`; raises `redis.RedisError` if one
    failed); on other clients they are queued on `pipe`. Uses what the latest read of the same client
    found (`queue_state_reads`): only events it did not find are written, as one block per entity, or
    merged with the entity's blocks when `_compact` says so. An entity that read did not cover (another
    client, e.g. after a reconnect) gets a block of all its events: correct (readers de-duplicate),
    merged later. Returns (cards, terminals) touched."""
    origin = _origin(pipe)
    snapshots = _last_read["entities"] if origin is not None and _last_read["origin"] is origin else None
    commands, cards, terminals = _write_commands(
        ((e.transaction_id, e.timestamp_ms, e.card_id, e.terminal_id, e.amount) for e in events), snapshots
    )
    wire = _Wire.of(pipe)
    if wire is not None:
        wire.run(commands)
    else:
        for command in commands:
            pipe.execute_command(*command, NEVER_DECODE=True)
    return cards, terminals


def queue_rows(pipe: Any, rows: Iterable[tuple[str, int, str, str, float]]) -> tuple[int, int]:
    """Queue on `pipe` the commands that add `rows` — (transaction id, event time ms, card id, terminal
    id, amount) — to the state without reading it first (the backfill): one block per entity, with
    the streaming write's encoding and TTL (`_entity_commands`); the entity's next streaming write
    merges it. Writing the same rows again writes the same blocks (a no-op). Returns (cards, terminals)."""
    commands, cards, terminals = _write_commands(rows, None)
    for command in commands:
        pipe.execute_command(*command, NEVER_DECODE=True)
    return cards, terminals


def queue_label(
    pipe: Any, terminal_id: str, timestamp_ms: int, transaction_id: str, label: int, reported_at_ms: int
) -> None:
    """Queue one label's effect on its terminal's fraud marks (the APPLY_LABEL script, by SHA)."""
    pipe.evalsha(
        APPLY_LABEL.sha,
        1,
        keys.terminal_frauds_key(terminal_id),
        timestamp_ms,
        transaction_id,
        int(label),
        reported_at_ms,
        TERMINAL_TTL_MS,
    )


def load_scripts(client: redis.Redis) -> None:
    client.script_load(APPLY_LABEL.script)


# --- bulk load (warm start) -------------------------------------------------------------------------


# Each entity's block is up to a few KB: ~2,000 commands keep a round trip to a few MB.
BACKFILL_COMMANDS_PER_ROUND_TRIP = 2_000


@dataclass(frozen=True)
class BackfillStats:
    transactions: int
    labels: int
    cards: int
    terminals: int
    seconds: float


def _columns(transactions: Any) -> tuple[list, list, list, list, list]:
    return (
        transactions.transaction_id,
        transactions.timestamp,
        transactions.card_id,
        transactions.terminal_id,
        transactions.amount,
    )


def backfill(
    client: redis.Redis, transactions: Any, *, labels: bool = True, chunk_size: int = 100_000
) -> BackfillStats:
    """Apply historical transactions to the entity state in bulk, with the streaming state logic
    (`_entity_commands`: the same encoding and commands, without a read first): one block per
    entity holding all its rows, sent `BACKFILL_COMMANDS_PER_ROUND_TRIP` commands per round trip.

    `transactions`: a `fraud_data.transactions.Transactions` or any object with the column lists
    `transaction_id, timestamp, card_id, terminal_id, amount` (and `label` when `labels`). Rows in any
    order. With `labels`, each fraud (label 1) is marked on its terminal as reported at the
    transaction's own time (known by the time any delayed window can include it), `chunk_size`
    labels per round trip. Writes no documents and no time series. Idempotent: the same rows give
    the same blocks, and adding a member already there changes nothing. Into a Redis that already
    holds some of these entities, the block is added next to theirs (readers de-duplicate; the
    entity's next streaming write merges them).
    """
    started = time.perf_counter()
    ids, stamps, card_ids, terminal_ids, amounts = _columns(transactions)
    n = len(ids)
    rows = zip(ids, map(int, stamps), card_ids, terminal_ids, map(float, amounts), strict=True)
    commands, cards, terminals = _write_commands(rows, None)
    step = BACKFILL_COMMANDS_PER_ROUND_TRIP
    for start in range(0, len(commands), step):
        _execute(client, commands[start : start + step])
    frauds = []
    if labels:
        frauds = [
            (terminal_ids[i], int(stamps[i]), ids[i], 1, int(stamps[i]))
            for i, label in enumerate(transactions.label)
            if int(label) == 1
        ]
    applied = backfill_labels(client, frauds, chunk_size=chunk_size) if frauds else 0
    return BackfillStats(n, applied, cards, terminals, time.perf_counter() - started)


def backfill_labels(
    client: redis.Redis, labels: Iterable[tuple[str, int, str, int, int]], *, chunk_size: int = 20_000
) -> int:
    """Apply labels as label events would: `(terminal_id, transaction timestamp_ms, transaction_id,
    label 0/1, reported_at_ms)`. Returns how many were applied."""
    load_scripts(client)
    count = 0
    pipe = client.pipeline(transaction=False)
    for terminal_id, ts, transaction_id, label, reported_at in labels:
        queue_label(pipe, terminal_id, ts, transaction_id, label, reported_at)
        count += 1
        if count % chunk_size == 0:
            pipe.execute()
            pipe = client.pipeline(transaction=False)
    if len(pipe):
        pipe.execute()
    return count


# --- reading state back (tests, the pipeline's checks, dashboards) --------------------------------


def _blocks(client: redis.Redis, key: str) -> list[tuple[bytes, int]]:
    return _pairs(_execute(client, [(b"ZRANGE", key.encode(), b"0", b"-1", b"WITHSCORES")])[0])


def entity_state(
    client: redis.Redis, card_id: str | None = None, terminal_id: str | None = None
) -> dict[str, list]:
    """The stored state of one card and/or terminal, decoded (each event once), in event order."""
    out: dict[str, list] = {}
    if card_id is not None:
        blocks = _blocks(client, keys.card_events_key(card_id))
        ts, amounts, ids = _decode_card(blocks)
        out["card"] = [(t, a, i.decode()) for t, a, i in zip(ts, amounts, ids, strict=True)]
    if terminal_id is not None:
        blocks = _blocks(client, keys.terminal_events_key(terminal_id))
        ts, ids = _decode_terminal(blocks)
        out["terminal"] = [(t, i.decode()) for t, i in zip(ts, ids, strict=True)]
        frauds = client.zrange(keys.terminal_frauds_key(terminal_id), 0, -1)
        out["frauds"] = sorted(keys.parse_fraud_member(_text(m)) for m in frauds)
    return out


def dump_entity_state(
    client: redis.Redis, *, as_of_ms: int | None = None, with_report_times: bool = False
) -> dict[str, list[str]]:
    """Every card/terminal state key -> its events (each once) as sorted text members
    (`keys.card_member` / `terminal_member` / `fraud_member`): the state's content, whatever blocks
    hold it (a backfill leaves one block per chunk, streaming one per entity).

    `as_of_ms`: keep only events a transaction at or after that time can still use (younger than
    the entity's retention): trimming happens per write, so two ways of loading the same history
    may keep different stale events. Without `with_report_times`, fraud marks drop the report time
    (`<ts>:<transaction id>`): a backfill and a label stream report at different times.
    """
    out: dict[str, list[str]] = {}
    for prefix, retention in (
        (keys.CARD_PREFIX, CARD_RETENTION_MS),
        (keys.TERMINAL_PREFIX, TERMINAL_RETENTION_MS),
    ):
        lower = -math.inf if as_of_ms is None else as_of_ms - retention
        for raw_key in client.scan_iter(match=f"{prefix}*", count=1000):
            key = _text(raw_key)
            if key.endswith(":frauds"):
                members = [_text(m) for m in client.zrange(key, 0, -1)]
                marks = [keys.parse_fraud_member(m) for m in members]
                members = [
                    keys.fraud_member(ts, reported, tid) if with_report_times else f"{ts}:{tid}"
                    for ts, reported, tid in marks
                    if ts > lower
                ]
            elif prefix == keys.CARD_PREFIX:
                ts, amounts, ids = _decode_card(_blocks(client, key))
                members = [
                    keys.card_member(t, a, i.decode())
                    for t, a, i in zip(ts, amounts, ids, strict=True)
                    if t > lower
                ]
            else:
                ts, ids = _decode_terminal(_blocks(client, key))
                members = [
                    keys.terminal_member(t, i.decode()) for t, i in zip(ts, ids, strict=True) if t > lower
                ]
            if members:
                out[key] = sorted(members)
    return out


def as_state_event(row: Mapping[str, Any]) -> StateEvent:
    return StateEvent(
        str(row["transaction_id"]),
        int(row["timestamp"]),
        str(row["card_id"]),
        str(row["terminal_id"]),
        float(row["amount"]),
    )

"""Redis as the online feature store: each card's and terminal's recent events, and the vectors
computed from them exactly as the feature specification's reference function does.

State (docs/architecture.md, *Redis data model*; key names and the record encoding in
`contracts.redis_keys`):

- `card:{<card>}:state` — a STRING of records of the card's events (event time, amount, transaction
  id), columnar and fixed-width (`keys.encode_card_events`).
- `terminal:{<terminal>}:state` — a STRING of records of the terminal's events (event time, id) and
  of its reported frauds (`keys.encode_marks`: applied in order, the latest label of a transaction
  wins).

Why this shape:

- *Fast*: a 500-record batch reads ~1,000 entities' full windows (~50,000 events) with ONE `MGET`,
  and writes each entity with one `APPEND` of its new events. Sorted sets of blocks took a `ZRANGE`
  per entity plus one per terminal for its fraud marks, and a `ZADD` and a `PEXPIRE` per write:
  ~4,000 commands and ~12 ms of Redis's time per batch, where these take ~1,000 commands and a few
  ms (docs/performance.md). A record becomes arrays of times and amounts with a memory copy; the
  vector is computed with bisection over the sorted event times and `math.fsum` over list slices
  (`BatchState.vector`), equal to `contracts.features.compute_vector`
  (tests/feature_store/test_fs_fast_vector.py proves it). The commands are packed here and sent in
  one round trip each way (`redis_wire.Wire`), not through redis-py's pipeline, whose per-command
  Python cost (7–11 µs) was most of the budget; a client without a plain connection pool (e.g.
  `RedisCluster`) sends one `GET` per entity through its own pipeline instead.
- *Exact*: the whole window is kept (no capped query, no pre-aggregated buckets).
- *Point in time*: a transaction's vector reads the entity's events that precede it in event order
  (`(ts, id) < (t, own id)`) and the frauds reported at or before t. Events already applied by an
  earlier attempt of the same batch (a retry) or later in the batch are not seen, so a retry computes
  the same vector as the first attempt.
- *Idempotent*: an event is identified by its (event time, transaction id) (an id reused after its
  document expired is another event); reads de-duplicate, and a write appends
  only events the batch's read did not find, so a replay, a duplicate or a partial retry writes
  nothing at all. The batch applies state only for transactions whose document it stored or finds
  stored with the same content (never for a conflicting reuse of an id).
- *Safe under concurrent writers* (a terminal is written by the batches of every shard): an `APPEND`
  never loses another writer's record, and readers merge records and drop repeated events. Now and then
  (`_compact`: `MAX_RECORDS` records, or an event `COMPACT_SLACK_MS` past the cut-off) a write
  replaces the value by one record of each kind instead, through `COMPACT_LUA`: only if the value
  still starts with the bytes the writer read (a compacted value starts with a fresh random nonce; a
  value nobody compacted only ever grows), keeping whatever others appended after them; otherwise it
  appends its new events like any write.
- *Cluster-ready*: every key is hash-tagged by its entity, and every command or script but the
  read's `MGET` touches one key (a cluster client reads with one `GET` per key).
- *Bounded*: a compaction drops events and marks older than the longest window + delay (with a
  margin) before the entity's earliest event in the batch. The key's TTL is that horizon plus
  `TTL_REFRESH_MS`, set by the write that creates the key, by every compaction and label, and again
  by the first write `TTL_REFRESH_MS` after the last setting (a header record says when): most
  writes are one `APPEND`.
- *No cache*: nothing is kept between batches (the latest read's snapshot only serves its own
  batch's write), so a cold container does exactly the work of a warm one.

`backfill` loads history through the same encoding and commands (one record per entity, without a
read first).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import redis

from contracts import redis_keys as keys
from contracts.features import (
    CARD_RETENTION_MS,
    DAY_MS,
    FEATURES,
    MODEL_FEATURES,
    TERMINAL_RETENTION_MS,
    is_night,
    is_weekend,
)
from fraud_scorer.redis_wire import Wire, pack, raise_first_error

# What a write keeps: events younger than the longest window + delay, with a margin for cross-shard
# lag and retried batches (they never find an event they need trimmed away).
MARGIN_MS = keys.ENTITY_TTL_MARGIN_MS
CARD_HORIZON_MS = CARD_RETENTION_MS + MARGIN_MS
TERMINAL_HORIZON_MS = TERMINAL_RETENTION_MS + MARGIN_MS
# The TTL is set again only by the first write this long after the last setting, so it covers that
# much more than the horizon: however the writes fall, a key outlives its latest write by a horizon.
# A week, not a day: a card paying twice a day refreshed at every other write (an APPEND, a PEXPIRE
# and a header record where one APPEND does), for idle keys living at most 6 days longer.
TTL_REFRESH_MS = 7 * 24 * 3600 * 1000
CARD_TTL_MS = CARD_HORIZON_MS + TTL_REFRESH_MS
TERMINAL_TTL_MS = TERMINAL_HORIZON_MS + TTL_REFRESH_MS

# KEYS[1]: one entity's state. ARGV: [1] the value's first bytes as the writer read them, [2] the
# length it read, [3] the compacted value, [4] the TTL in ms, [5] what to append instead. If the value
# still starts with those bytes, nobody compacted it since the read (a compacted value starts with a
# fresh random nonce; an uncompacted one only grows): it becomes the compacted value followed by
# whatever was appended after the read. Otherwise the writer's new events are appended like any
# write's. Sent with EVAL (Redis caches it by its hash): a Redis restart cannot make it NOSCRIPT. One
# GET and one SET: each call from a script costs Redis ~3 µs (STRLEN + GETRANGE + SET took 19 µs a
# run, this ~12 µs).
COMPACT_LUA = b"""
local value = redis.call('GET', KEYS[1])
local seen = tonumber(ARGV[2])
if value and #value >= seen and string.sub(value, 1, #ARGV[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[3] .. string.sub(value, seen + 1), 'PX', ARGV[4])
  return 1
end
redis.call('APPEND', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 0
"""
# A header appended after a TTL refresh names no compaction.
_NO_NONCE = bytes(8)


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


class LazyIds:
    """A window's transaction ids (ASCII bytes) in event order, as read: one `\n`-joined blob, split
    into objects only when an id is looked at (a same-millisecond tie, a fraud mark, a compaction).
    Most entities of a batch never are, and splitting every id of every window was ~30% of the
    time spent decoding a batch's state. Appending (a new event after all the others, the usual case)
    does not split either. Otherwise it behaves as the list it stands for."""

    __slots__ = ("_blob", "_items", "_size", "_tail")

    def __init__(self, blob: bytes, size: int) -> None:
        self._blob = blob  # `size` ids joined by b"\n" (b"" when size is 0)
        self._size = size
        self._items: list[bytes] | None = None
        self._tail: list[bytes] = []  # appended before anything was split

    def _list(self) -> list[bytes]:
        items = self._items
        if items is None:
            items = self._blob.split(b"\n") if self._size else []
            items += self._tail
            self._items, self._tail = items, []
        return items

    def copy(self) -> LazyIds:
        twin = LazyIds(self._blob, self._size)
        if self._items is not None:
            twin._items = list(self._items)
        else:
            twin._tail = list(self._tail)
        return twin

    def insert(self, position: int, transaction_id: bytes) -> None:
        if self._items is None and position == self._size + len(self._tail):
            self._tail.append(transaction_id)
        else:
            self._list().insert(position, transaction_id)

    def index(self, transaction_id: bytes) -> int:
        return self._list().index(transaction_id)

    def __getitem__(self, position: Any) -> Any:
        return self._list()[position]

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else self._size + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._list())


class CardWindow:
    """A card's events sorted by (event time, transaction id), as parallel lists (ids as ASCII bytes)."""

    __slots__ = ("amounts", "ids", "ts")

    def __init__(
        self,
        ts: Any = None,
        amounts: Any = None,
        ids: list[bytes] | LazyIds | None = None,
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
        ts: Any = None,
        ids: list[bytes] | LazyIds | None = None,
        frauds: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        self.ts = ts if ts is not None else []
        self.ids = ids if ids is not None else []
        # transaction id -> (its event time, when its fraud was reported: the latest label event's,
        # label 1 only)
        self.frauds = frauds if frauds is not None else {}

    def add(self, event: StateEvent) -> None:
        tid = event.transaction_id.encode()
        p, present = _locate(self.ts, self.ids, event.timestamp_ms, tid)
        if not present:
            self.ts.insert(p, event.timestamp_ms)
            self.ids.insert(p, tid)

    def apply_label(self, transaction_id: str, label: int, reported_at_ms: int, timestamp_ms: int) -> None:
        """`label` for the transaction of `transaction_id` at `timestamp_ms` (its event time)."""
        if label:
            self.frauds[transaction_id] = (timestamp_ms, reported_at_ms)
        else:
            self.frauds.pop(transaction_id, None)

    def fraud_positions(self, timestamp_ms: int) -> list[int]:
        """Indices of the events whose fraud was reported at or before `timestamp_ms`. Each mark is
        found by (event time, id), with a bisection: a scan per mark made a vector cost
        O(marks x events) at a busy terminal, and an id reused after its document expired would have
        found the older event."""
        out = []
        ts, ids = self.ts, self.ids
        for transaction_id, (event_ts, reported_at) in self.frauds.items():
            if reported_at <= timestamp_ms:
                p, present = _locate(ts, ids, event_ts, transaction_id.encode())
                if present:  # (a mark whose event is not in the state counts nowhere)
                    out.append(p)
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
    if any(source == 2 and feature.aggregation != "count" for source, feature, _ in steps):
        lines.append("    frauds = terminal.fraud_positions(t) if terminal.frauds else ()")
    listed = {i for source, feature, i in steps if source == 2 and feature.aggregation in _FRAUD_LISTED}
    for i in sorted(listed):
        lines.append(f"    kf{i} = [j for j in frauds if kl{i} <= j < kh{i}]")
    values = []
    for source, feature, i in steps:
        template = _VALUE_EXPRESSIONS.get((source, feature.aggregation))
        if template is None:  # pragma: no cover - contracts.features refuses these combinations
            raise ValueError(f"no fast rule for {feature.name} ({feature.entity}/{feature.aggregation})")
        values.append(
            template.format(
                i=i,
                window_s=feature.window_ms / 1000,
                none_days=(feature.window_ms + feature.delay_ms) / DAY_MS,
            )
        )
    lines.append(f"    return [{', '.join(values)}]")
    namespace = {
        "_locate": _locate,
        "DAY_MS": DAY_MS,
        "bisect_left": bisect_left,
        "bisect_right": bisect_right,
        "fsum": math.fsum,
        "is_weekend": is_weekend,
        "is_night": is_night,
    }
    exec(compile("\n".join(lines), f"<feature vector {len(names)}>", "exec"), namespace)  # noqa: S102
    return namespace["vector"]


# Each feature's value in the generated function, by (source: 0 transaction / 1 card / 2 terminal,
# aggregation); `{i}` is the index of its window among the entity's (`_plan`), whose count, sum, mean,
# bounds and times `_compiled` names `cn{i}`, `cs{i}`, `cm{i}`, `cl{i}`/`ch{i}`, `cts` (card) and
# `kn{i}`, `kl{i}`/`kh{i}` (terminal).
_VALUE_EXPRESSIONS = {
    (0, "amount"): "amount",
    (0, "is_weekend"): "is_weekend(t)",
    (0, "is_night"): "is_night(t)",
    (1, "count"): "cn{i}",
    (1, "sum_amount"): "cs{i}",
    (1, "mean_amount"): "cm{i}",
    (1, "amount_to_mean"): "(amount / cm{i} if cm{i} else 1.0)",
    (1, "seconds_since_previous"): "((t - cts[ch{i} - 1]) / 1000 if ch{i} > cl{i} else {window_s!r})",
    (2, "count"): "kn{i}",
    (2, "fraud_share"): "(sum(1 for j in frauds if kl{i} <= j < kh{i}) / kn{i} if kn{i} else 0.0)",
    # `kf{i}`: positions of the window's known frauds; the earliest is the smallest position, as the
    # times are sorted, and "since" starts at the first event sharing its time.
    (2, "fraud_count"): "len(kf{i})",
    (2, "days_since_first_fraud"): "((t - kts[min(kf{i})]) / DAY_MS if kf{i} else {none_days!r})",
    (2, "days_since_last_fraud"): "((t - kts[max(kf{i})]) / DAY_MS if kf{i} else {none_days!r})",
    (2, "fraud_share_since_first_fraud"): (
        "(len(kf{i}) / (kh{i} - bisect_left(kts, kts[min(kf{i})], kl{i}, kh{i})) if kf{i} else 0.0)"
    ),
}
_FRAUD_LISTED = {
    "fraud_count",
    "days_since_first_fraud",
    "days_since_last_fraud",
    "fraud_share_since_first_fraud",
}
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


def _execute(target: Any, commands: Sequence[tuple[bytes, ...]]) -> list[Any]:
    """Run `commands` now, on the wire or (cluster clients) through a pipeline of the target's client."""
    wire = Wire.of(target)
    if wire is not None:
        return wire.run(commands)
    pipe = target.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command, NEVER_DECODE=True)
    return pipe.execute()


# The latest read's view of each entity key, kept for the batch's state write: the write appends
# only what the read did not find, and a compaction folds exactly what was read. One batch at a time
# per container (Lambda's model); a write for another client or an entity the read did not cover
# appends a record of all its events (readers de-duplicate). Not a cache: every batch reads afresh.
class _Snapshot(NamedTuple):
    size: int  # bytes read (0: no key)
    prefix: bytes  # the value's first keys.STATE_PREFIX_BYTES: what a compaction checks
    records: int  # events and marks records
    ttl_set_at_ms: int  # when a writer last set the key's TTL (wall clock), 0 if never recorded
    ts: array  # int64 event times, sorted
    amounts: array | tuple  # float64 (a card's), () for a terminal
    ids: LazyIds | tuple[bytes, ...]
    marks: dict[bytes, tuple[int, int]]  # a terminal's frauds: id -> (event time, reported at)


_last_read: dict[str, Any] = {"origin": None, "entities": {}}


def _origin(target: Any) -> Any:
    return getattr(target, "connection_pool", None) or getattr(target, "nodes_manager", None)


def _normalize(columns: list, ids: list[bytes]) -> tuple[list[tuple], list[bytes]]:
    """Events gathered from several records, sorted by (time, id), each event once: an event is its
    (time, id), as for `_locate` (an id reused after its document expired is another event)."""
    merged = sorted(zip(columns[0], ids, *columns[1:], strict=True))
    keep = []
    seen: set[tuple[int, bytes]] = set()
    for event in merged:
        if event[:2] not in seen:
            seen.add(event[:2])
            keep.append(event)
    if not keep:
        return [() for _ in columns], []
    ts, kept_ids, *rest = zip(*keep, strict=True)
    return [ts, *rest], list(kept_ids)


def _decode(value: bytes | None, card: bool) -> _Snapshot:
    """A state value (None: no key) as the batch's snapshot: its events sorted by (time, id), each id
    once, and a terminal's effective fraud marks. Usually the records follow one another in time (a
    card's batches come in order; a compaction leaves one record): then their columns, copied from the
    bytes in order, are already the answer; else they are sorted and de-duplicated."""
    if not value:
        return _Snapshot(0, b"", 0, 0, array("q"), array("d") if card else (), (), {})
    records = keys.split_state(value, card)
    ts, amounts = records.ts, records.amounts if card else ()
    parts = records.ids
    joined = parts[0] if len(parts) == 1 else b"\n".join(parts)
    count = joined.count(b"\n") + 1 if parts else 0  # counted in C, not split
    if count != len(ts):
        raise keys.CorruptStateError(f"{len(ts)} event times but {count} transaction ids")
    ids: LazyIds | tuple[bytes, ...] = LazyIds(joined, count)
    if not records.in_order:
        columns, kept = _normalize([ts, amounts] if card else [ts], joined.split(b"\n"))
        ts, ids = array("q", columns[0]), tuple(kept)
        amounts = array("d", columns[1]) if card else ()
    marks: dict[bytes, tuple[int, int]] = {}
    for event_ts, reported_at, label, transaction_id in records.marks:
        if label:
            marks[transaction_id] = (event_ts, reported_at)
        else:
            marks.pop(transaction_id, None)
    return _Snapshot(
        len(value),
        value[: keys.STATE_PREFIX_BYTES],
        records.records,
        records.ttl_set_at_ms,
        ts,
        amounts,
        ids,
        marks,
    )


def read_state(client: redis.Redis, events: Sequence[StateEvent]) -> BatchState:
    """Every card's and terminal's state the events need, in one round trip."""
    pipe = client.pipeline(transaction=False)
    parse = queue_state_reads(pipe, events)
    return parse(iter(pipe.execute() if len(pipe) else ()))


def _read_commands(
    events: Sequence[StateEvent], *, one_command: bool
) -> tuple[list[str], list[str], list[tuple[bytes, ...]]]:
    """The batch's cards and terminals (each once, in order of appearance) and the commands reading
    their state: one MGET, or (`one_command` false: a cluster client) one GET per key."""
    cards = list(dict.fromkeys(e.card_id for e in events))
    terminals = list(dict.fromkeys(e.terminal_id for e in events))
    names = [keys.card_state_key(c).encode() for c in cards]
    names += [keys.terminal_state_key(t).encode() for t in terminals]
    if not names:
        return cards, terminals, []
    if one_command:
        return cards, terminals, [(b"MGET", *names)]
    return cards, terminals, [(b"GET", name) for name in names]


def _values(replies: Iterator[Any], count: int, one_command: bool) -> list[Any]:
    if not count:
        return []
    if one_command:
        return next(replies)
    return [next(replies) for _ in range(count)]


def queue_state_reads(pipe: Any, events: Sequence[StateEvent]) -> Callable[[Iterator[Any]], BatchState]:
    """Read every card's and terminal's state the events need and return the function that gives the
    batch's state. On a `redis.Redis` or its pipeline the read goes out NOW, in its own round trip
    (`redis_wire.Wire`), and the returned function ignores its argument; on other clients (e.g. a
    cluster pipeline) one GET per key is queued on `pipe` and the function parses their replies,
    consumed in order from an iterator."""
    origin = _origin(pipe)
    wire = Wire.of(pipe)
    cards, terminals, commands = _read_commands(events, one_command=wire is not None)
    count = len(cards) + len(terminals)
    if wire is not None:
        values = _values(iter(wire.run(commands)), count, True)
        return lambda _replies: _parse_state(cards, terminals, values, origin)
    for command in commands:
        pipe.execute_command(*command, NEVER_DECODE=True)
    return lambda replies: _parse_state(cards, terminals, _values(replies, count, False), origin)


def read_with_state(
    target: Any, commands: Sequence[tuple[bytes, ...]], events: Sequence[StateEvent]
) -> tuple[list[Any], BatchState] | None:
    """`commands` (e.g. the batch's document reads, raw replies) and the state read the events need,
    in ONE round trip on the wire: (the commands' replies, the batch's state). None for a target
    without a wire (e.g. a cluster client): the caller queues on its pipeline and uses
    `queue_state_reads`. An error reply to one of `commands` is returned in its place (a
    `redis.ResponseError`: e.g. a key of another type in the way fails that one read); one to the
    state read raises."""
    wire = Wire.of(target)
    if wire is None:
        return None
    cards, terminals, reads = _read_commands(events, one_command=True)
    replies = wire.run([*commands, *reads], errors_in_place=True)
    n = len(commands)
    raise_first_error(replies[n:])
    values = _values(iter(replies[n:]), len(cards) + len(terminals), True)
    return replies[:n], _parse_state(cards, terminals, values, _origin(target))


def _window_ids(ids: LazyIds | tuple[bytes, ...]) -> LazyIds | list[bytes]:
    """The window's own copy of a snapshot's ids (the window inserts; the snapshot stays as read)."""
    return ids.copy() if isinstance(ids, LazyIds) else list(ids)


def _parse_state(cards: list[str], terminals: list[str], values: list[Any], origin: Any) -> BatchState:
    snapshots: dict[str, _Snapshot] = {}
    card_windows: dict[str, CardWindow] = {}
    key = ""
    try:
        for card_id, value in zip(cards, values, strict=False):
            key = keys.card_state_key(card_id)
            snapshot = snapshots[key] = _decode(value, True)
            # copies: the snapshot stays as read
            card_windows[card_id] = CardWindow(snapshot.ts[:], snapshot.amounts[:], _window_ids(snapshot.ids))
        terminal_windows: dict[str, TerminalWindow] = {}
        for terminal_id, value in zip(terminals, values[len(cards) :], strict=True):
            key = keys.terminal_state_key(terminal_id)
            snapshot = snapshots[key] = _decode(value, False)
            frauds = {tid.decode(): mark for tid, mark in snapshot.marks.items()}
            terminal_windows[terminal_id] = TerminalWindow(snapshot.ts[:], _window_ids(snapshot.ids), frauds)
    except keys.CorruptStateError as error:
        raise keys.CorruptStateError(f"{key}: {error}") from None
    _last_read["origin"], _last_read["entities"] = origin, snapshots
    return BatchState(card_windows, terminal_windows)


# --- writing state --------------------------------------------------------------------------------------


# A write appends a record of its new events; it compacts the value into one record of each kind (and
# drops what no window can need) when the value holds MAX_RECORDS records or an event
# COMPACT_SLACK_MS older than the cut-off. Fewer records make reads cheaper (each is decoded and
# merged); rarer compactions make writes cheaper (a compaction sends and Redis copies the whole value).
# So an event stays at most CARD/TERMINAL_HORIZON_MS + COMPACT_SLACK_MS past the entity's latest events.
MAX_RECORDS = 12  # against 6: fewer compactions, cheaper writes, reads no slower (docs/performance.md)
# A week, not a day: once time moves at its real pace, a day's slack had an entity compact every day
# or two, at about every other write of a card. In the handler benchmark's steady state (its paced
# part) the compaction script then took 10.5–10.9 µs of Redis time per transaction and the state's
# read + write round trips p50 14.8–15.8 ms; with a week, 4.4–4.7 µs and 9.8–12.3 ms, for more events
# held (docs/performance.md).
COMPACT_SLACK_MS = 7 * 24 * 3600 * 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _compact(snapshot: _Snapshot, cutoff: int) -> bool:
    return (
        snapshot.records >= MAX_RECORDS or bool(snapshot.ts) and snapshot.ts[0] <= cutoff - COMPACT_SLACK_MS
    )


def _ttl_due(snapshot: _Snapshot | None, now_ms: int) -> bool:
    """Whether a write must set the key's TTL: it may create the key, or the last setting it knows
    of is TTL_REFRESH_MS old."""
    return snapshot is None or not snapshot.size or now_ms - snapshot.ttl_set_at_ms >= TTL_REFRESH_MS


def _events_record(card: bool, ts: Sequence[int], amounts: Sequence[float], ids: Sequence[bytes]) -> bytes:
    return keys.encode_card_events(ts, amounts, ids) if card else keys.encode_terminal_events(ts, ids)


def _entity_commands(
    key: str,
    snapshot: _Snapshot | None,
    new: list[tuple[int, float, bytes]] | list[tuple[int, bytes]],
    horizon_ms: int,
    ttl_ms: int,
    now_ms: int,
    *,
    card: bool,
) -> list[tuple[bytes, ...]]:
    """THE state update of one entity, for streaming and backfill alike. `new`: its events, sorted by
    (time, id), unique, none of them in `snapshot` (what the batch read; None = not read). Usually
    one APPEND of a record of the new events; with a PEXPIRE and a header record noting it when the
    TTL is due (`_ttl_due`); a compaction (`COMPACT_LUA`) when `_compact` says so. A replay (nothing
    new) writes nothing, unless the TTL is due: then it sets only that."""
    kb = key.encode()
    ttl = b"%d" % ttl_ms
    due = _ttl_due(snapshot, now_ms)
    if not new:
        return [(b"PEXPIRE", kb, ttl)] if due and snapshot is not None and snapshot.size else []
    new_ts, new_ids = [e[0] for e in new], [e[-1] for e in new]
    new_amounts = [e[1] for e in new] if card else []
    record = _events_record(card, new_ts, new_amounts, new_ids)
    cutoff = new_ts[0] - horizon_ms  # `new` is sorted: its earliest event
    if snapshot is None or not snapshot.size or not _compact(snapshot, cutoff):
        if not due:
            return [(b"APPEND", kb, record)]
        # The header after the PEXPIRE: a write lost between them leaves no claim of a TTL.
        return [
            (b"APPEND", kb, record),
            (b"PEXPIRE", kb, ttl),
            (b"APPEND", kb, keys.encode_header(_NO_NONCE, now_ms)),
        ]
    start = bisect_right(snapshot.ts, cutoff)  # events at or before the cut-off are dropped
    ts, ids, amounts = snapshot.ts[start:], snapshot.ids[start:], snapshot.amounts[start:]
    if not len(ts) or (new_ts[0], new_ids[0]) > (ts[-1], ids[-1]):  # the usual case: new after the rest
        ts, ids, amounts = [*ts, *new_ts], [*ids, *new_ids], [*amounts, *new_amounts]
    else:
        ts, ids, amounts = list(ts), list(ids), list(amounts)
        for event in new:
            p, _ = _locate(ts, ids, event[0], event[-1])
            ts.insert(p, event[0])
            ids.insert(p, event[-1])
            if card:
                amounts.insert(p, event[1])
    parts = [keys.encode_header(os.urandom(8), now_ms), _events_record(card, ts, amounts, ids)]
    marks = [(tid, at) for tid, at in snapshot.marks.items() if at[0] > cutoff]
    if marks:
        parts.append(
            keys.encode_marks(
                [m[0] for _, m in marks], [m[1] for _, m in marks], [1] * len(marks), [t for t, _ in marks]
            )
        )
    fallback = record + keys.encode_header(_NO_NONCE, now_ms)
    return [
        (
            b"EVAL",
            COMPACT_LUA,
            b"1",
            kb,
            snapshot.prefix,
            b"%d" % snapshot.size,
            b"".join(parts),
            ttl,
            fallback,
        )
    ]


def _event_order(event: tuple) -> tuple[int, bytes]:
    return event[0], event[-1]


def _write_commands(
    events: Iterable[tuple[str, int, str, str, float]],
    snapshots: Mapping[str, _Snapshot] | None,
    now_ms: int | None = None,
    after_ms: int | None = None,
) -> tuple[list[tuple[bytes, ...]], int, int]:
    """The commands adding `events` — (transaction id, event time ms, card id, terminal id, amount) — to
    their cards' and terminals' state, given what the batch read (`snapshots`, None = nothing).
    `after_ms` (the backfill): only events a transaction after that time can still need are written."""
    now_ms = _now_ms() if now_ms is None else now_ms
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
    for entities, key_of, horizon_ms, ttl_ms, card in (
        (by_card, keys.card_state_key, CARD_HORIZON_MS, CARD_TTL_MS, True),
        (by_terminal, keys.terminal_state_key, TERMINAL_HORIZON_MS, TERMINAL_TTL_MS, False),
    ):
        for entity_id, found in entities.items():
            key = key_of(entity_id)
            snapshot = snapshots.get(key) if snapshots is not None else None
            new = list(found.values())
            if after_ms is not None:
                new = [e for e in new if e[0] > after_ms - horizon_ms]
            if len(new) > 1:
                new.sort(key=_event_order)
            if snapshot is not None and snapshot.ts:
                ts, ids = snapshot.ts, snapshot.ids
                last = ts[-1]
                # An event later than everything read cannot be among it (the usual case): no search.
                new = [e for e in new if e[0] > last or not _locate(ts, ids, e[0], e[-1])[1]]
            commands += _entity_commands(key, snapshot, new, horizon_ms, ttl_ms, now_ms, card=card)
    return commands, len(by_card), len(by_terminal)


@dataclass(frozen=True)
class PreparedStateWrite:
    """A state write built ahead of time from the latest read (`prepare_state_writes`): the scorer
    builds it while Redis stores the batch's documents, when the client would only wait.
    `queue_state_writes` sends it only for the very same events after that very read, on the same
    client; anything else (a document not stored, a reconnect) is built again."""

    origin: Any
    snapshots: Mapping[str, _Snapshot]
    events: tuple[StateEvent, ...]
    commands: list[tuple[bytes, ...]]
    payload: bytes  # `commands` packed (RESP)
    cards: int
    terminals: int


def _state_rows(events: Iterable[StateEvent]) -> Iterator[tuple[str, int, str, str, float]]:
    return ((e.transaction_id, e.timestamp_ms, e.card_id, e.terminal_id, e.amount) for e in events)


def prepare_state_writes(events: Sequence[StateEvent]) -> PreparedStateWrite:
    """The write `queue_state_writes(pipe, events)` would send after the latest read, built now."""
    snapshots = _last_read["entities"]
    commands, cards, terminals = _write_commands(_state_rows(events), snapshots)
    payload = b"".join(map(pack, commands))
    return PreparedStateWrite(
        _last_read["origin"], snapshots, tuple(events), commands, payload, cards, terminals
    )


def queue_state_writes(
    pipe: Any, events: Sequence[StateEvent], prepared: PreparedStateWrite | None = None
) -> tuple[int, int]:
    """Add `events` to their cards' and terminals' state. Idempotent. On a `redis.Redis` or its
    pipeline the writes go out NOW in their own round trip (`Wire`; raises `redis.RedisError` if one
    failed); on other clients they are queued on `pipe`. Uses what the latest read of the same client
    found (`queue_state_reads`): only events it did not find are written (`_entity_commands`). An
    entity that read did not cover (another client, e.g. after a reconnect) gets a record of all its
    events: correct (readers de-duplicate), folded by its next compaction. `prepared`: that write
    built earlier, used if it is for the same events, read and client. Returns (cards, terminals)
    touched."""
    origin = _origin(pipe)
    read_here = origin is not None and _last_read["origin"] is origin
    if (
        prepared is not None
        and read_here
        and prepared.origin is origin
        and prepared.snapshots is _last_read["entities"]
        and prepared.events == tuple(events)
    ):
        commands, cards, terminals = prepared.commands, prepared.cards, prepared.terminals
        payload = prepared.payload
    else:
        snapshots = _last_read["entities"] if read_here else None
        commands, cards, terminals = _write_commands(_state_rows(events), snapshots)
        payload = None
    wire = Wire.of(pipe)
    if wire is None:
        for command in commands:
            pipe.execute_command(*command, NEVER_DECODE=True)
    elif commands:
        wire.run_packed(payload if payload is not None else b"".join(map(pack, commands)), len(commands))
    return cards, terminals


def _label_commands(terminal_id: str, marks: Sequence[tuple[int, str, int, int]]) -> list[tuple[bytes, ...]]:
    """One record of fraud marks — (transaction event time, transaction id, label 0/1, reported at),
    applied in this order — appended to the terminal's state, and its TTL set (a label may create the
    key). Applying the same marks again changes no feature: the latest label of a transaction wins."""
    key = keys.terminal_state_key(terminal_id).encode()
    record = keys.encode_marks(
        [m[0] for m in marks],
        [m[3] for m in marks],
        [int(m[2]) for m in marks],
        [m[1].encode() for m in marks],
    )
    return [(b"APPEND", key, record), (b"PEXPIRE", key, b"%d" % TERMINAL_TTL_MS)]


def queue_label(
    pipe: Any, terminal_id: str, timestamp_ms: int, transaction_id: str, label: int, reported_at_ms: int
) -> None:
    """Queue one label's effect on its terminal's fraud marks."""
    for command in _label_commands(terminal_id, [(timestamp_ms, transaction_id, label, reported_at_ms)]):
        pipe.execute_command(*command)


# --- bulk load (warm start) -------------------------------------------------------------------------


# Each entity's record is up to a few KB: ~2,000 commands keep a round trip to a few MB.
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


def _run_in_round_trips(client: redis.Redis, commands: Sequence[tuple[bytes, ...]]) -> None:
    step = BACKFILL_COMMANDS_PER_ROUND_TRIP
    for start in range(0, len(commands), step):
        _execute(client, commands[start : start + step])


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The backfill builds a few tuples per row and no reference cycles; left on, the collector's
    full passes over them grow with the history: 740,000 rows took 13.2 s with it and 4.5 s without
    (docs/performance.md). Restores the caller's setting."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def backfill(client: redis.Redis, transactions: Any, *, labels: bool = True) -> BackfillStats:
    """Apply historical transactions to the entity state in bulk, with the streaming state logic
    (`_entity_commands`: the same encoding and commands, without a read first): one record per
    entity holding all its rows, sent `BACKFILL_COMMANDS_PER_ROUND_TRIP` commands per round trip.

    `transactions`: a `fraud_data.transactions.Transactions` or any object with the column lists
    `transaction_id, timestamp, card_id, terminal_id, amount` (and `label` when `labels`). Rows in any
    order; only those a transaction after the latest row can still need are written (younger than
    the entity's horizon before it), so the first live writes need not compact them away. With
    `labels`, each fraud (label 1) is marked on its terminal as reported at the transaction's own
    time (known by the time any delayed window can include it). Writes no documents and no time
    series. Into a Redis that already holds some of these entities (or a
    second time), the records are appended to theirs: readers de-duplicate, and the entity's next
    compaction folds them.
    """
    started = time.perf_counter()
    with _cyclic_gc_paused():
        n, applied, cards, terminals = _backfill(client, transactions, labels)
    return BackfillStats(n, applied, cards, terminals, time.perf_counter() - started)


def _backfill(client: redis.Redis, transactions: Any, labels: bool) -> tuple[int, int, int, int]:
    ids, stamps, card_ids, terminal_ids, amounts = _columns(transactions)
    n = len(ids)
    latest = max(map(int, stamps), default=0)
    rows = zip(ids, map(int, stamps), card_ids, terminal_ids, map(float, amounts), strict=True)
    commands, cards, terminals = _write_commands(rows, None, after_ms=latest)
    _run_in_round_trips(client, commands)
    frauds = []
    if labels:
        oldest = latest - TERMINAL_HORIZON_MS
        frauds = [
            (terminal_ids[i], int(stamps[i]), ids[i], 1, int(stamps[i]))
            for i, label in enumerate(transactions.label)
            if int(label) == 1 and int(stamps[i]) > oldest
        ]
    applied = backfill_labels(client, frauds) if frauds else 0
    return n, applied, cards, terminals


def backfill_labels(client: redis.Redis, labels: Iterable[tuple[str, int, str, int, int]]) -> int:
    """Apply labels as label events would: `(terminal_id, transaction timestamp_ms, transaction_id,
    label 0/1, reported_at_ms)`, in this order; one marks record per terminal. Returns how many were
    applied."""
    by_terminal: dict[str, list[tuple[int, str, int, int]]] = {}
    count = 0
    for terminal_id, ts, transaction_id, label, reported_at in labels:
        by_terminal.setdefault(terminal_id, []).append(
            (int(ts), transaction_id, int(label), int(reported_at))
        )
        count += 1
    commands = [c for terminal_id, marks in by_terminal.items() for c in _label_commands(terminal_id, marks)]
    _run_in_round_trips(client, commands)
    return count


# --- reading state back (tests, the pipeline's checks, dashboards) --------------------------------


def _stored(client: redis.Redis, key: str, card: bool) -> _Snapshot:
    return _decode(_execute(client, [(b"GET", key.encode())])[0], card)


def entity_state(
    client: redis.Redis, card_id: str | None = None, terminal_id: str | None = None
) -> dict[str, list]:
    """The stored state of one card and/or terminal, decoded (each event once), in event order; a
    terminal's frauds as (event time, reported at, transaction id), sorted."""
    out: dict[str, list] = {}
    if card_id is not None:
        s = _stored(client, keys.card_state_key(card_id), True)
        out["card"] = [(t, a, i.decode()) for t, a, i in zip(s.ts, s.amounts, s.ids, strict=True)]
    if terminal_id is not None:
        s = _stored(client, keys.terminal_state_key(terminal_id), False)
        out["terminal"] = [(t, i.decode()) for t, i in zip(s.ts, s.ids, strict=True)]
        out["frauds"] = sorted((ts, at, tid.decode()) for tid, (ts, at) in s.marks.items())
    return out


def dump_entity_state(
    client: redis.Redis, *, as_of_ms: int | None = None, with_report_times: bool = False
) -> dict[str, list[str]]:
    """Every card/terminal state key -> its events (each once) as sorted text members
    (`keys.card_member` / `terminal_member`), and `<terminal key>:frauds` -> its fraud marks
    (`keys.fraud_member`): the state's content, whatever records hold it (a backfill, a stream and a
    compaction leave different records).

    `as_of_ms`: keep only events a transaction at or after that time can still use (younger than
    the entity's retention): trimming happens at compactions, so two ways of loading the same history
    may keep different stale events. Without `with_report_times`, fraud marks drop the report time
    (`<ts>:<transaction id>`): a backfill and a label stream report at different times.
    """
    out: dict[str, list[str]] = {}
    for prefix, retention, card in (
        (keys.CARD_PREFIX, CARD_RETENTION_MS, True),
        (keys.TERMINAL_PREFIX, TERMINAL_RETENTION_MS, False),
    ):
        lower = -math.inf if as_of_ms is None else as_of_ms - retention
        for raw_key in client.scan_iter(match=f"{prefix}*", count=1000):
            key = _text(raw_key)
            s = _stored(client, key, card)
            if card:
                members = [
                    keys.card_member(t, a, i.decode())
                    for t, a, i in zip(s.ts, s.amounts, s.ids, strict=True)
                    if t > lower
                ]
            else:
                members = [
                    keys.terminal_member(t, i.decode()) for t, i in zip(s.ts, s.ids, strict=True) if t > lower
                ]
                frauds = [
                    keys.fraud_member(ts, at, tid.decode()) if with_report_times else f"{ts}:{tid.decode()}"
                    for tid, (ts, at) in s.marks.items()
                    if ts > lower
                ]
                if frauds:
                    out[f"{key}:frauds"] = sorted(frauds)
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

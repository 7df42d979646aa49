"""Redis as the online feature store: each card's and terminal's recent events, and the vectors
computed from them by the feature specification's own reference function.

State (docs/architecture.md, *Redis data model*; key names in `contracts.redis_keys`):

- `card:{<card>}:events` — ZSET, score = event time, member `<ts>:<amount>:<transaction id>`.
- `terminal:{<terminal>}:events` — ZSET, score = event time, member `<ts>:<transaction id>`.
- `terminal:{<terminal>}:frauds` — ZSET of reported frauds, score = the transaction's event time,
  member `<ts>:<reported at>:<transaction id>`.

Why this shape:

- *Exact*: the whole window is kept (no capped query, no pre-aggregated buckets), so a vector is
  `contracts.features.compute_vector` over exactly the events the offline computation sees.
- *Point in time*: a transaction's vector reads the entity's events that precede it in event order
  (`(ts, id) < (t, own id)`) and the frauds reported at or before t. Events already applied by an
  earlier attempt of the same batch (a retry) or later in the batch are not seen, so a retry computes
  the same vector as the first attempt.
- *Idempotent*: state is a set of members derived from the event alone, so applying an event twice
  changes nothing; the batch applies state only for transactions whose document it stored or finds
  stored with the same content (never for a conflicting reuse of an id).
- *Cluster-ready*: every key is hash-tagged by its entity, and every command or script touches the
  keys of one entity only.
- *Bounded*: each write trims events older than the longest window + delay (with a margin) and sets
  the key's TTL to that horizon.

`backfill` loads history through the same encoding and the same commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from contracts import redis_keys as keys
from contracts.features import CARD_RETENTION_MS, MODEL_FEATURES, TERMINAL_RETENTION_MS, compute_vector

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


def _texts(values: list) -> list[str]:
    return list(map(bytes.decode, values)) if values and isinstance(values[0], bytes) else values


@dataclass(frozen=True)
class StateEvent:
    """What the entity state needs from a transaction."""

    transaction_id: str
    timestamp_ms: int
    card_id: str
    terminal_id: str
    amount: float


@dataclass
class CardWindow:
    events: list[tuple[int, float, str]] = field(default_factory=list)
    members: set[str] = field(default_factory=set)

    def add(self, event: StateEvent) -> None:
        member = keys.card_member(event.timestamp_ms, event.amount, event.transaction_id)
        if member not in self.members:
            self.members.add(member)
            self.events.append((event.timestamp_ms, event.amount, event.transaction_id))


@dataclass
class TerminalWindow:
    events: list[tuple[int, str]] = field(default_factory=list)
    members: set[str] = field(default_factory=set)
    # transaction id -> when its fraud was reported (the latest label event's, label 1 only)
    frauds: dict[str, int] = field(default_factory=dict)

    def add(self, event: StateEvent) -> None:
        member = keys.terminal_member(event.timestamp_ms, event.transaction_id)
        if member not in self.members:
            self.members.add(member)
            self.events.append((event.timestamp_ms, event.transaction_id))

    def apply_label(self, transaction_id: str, label: int, reported_at_ms: int) -> None:
        if label:
            self.frauds[transaction_id] = reported_at_ms
        else:
            self.frauds.pop(transaction_id, None)


@dataclass
class BatchState:
    """The batch's working copy of its entities' state, read in one round trip, updated in stream
    order as vectors are computed (so a card's later transactions in the batch see its earlier ones)."""

    cards: dict[str, CardWindow]
    terminals: dict[str, TerminalWindow]

    def vector(self, event: StateEvent, names: Sequence[str] = MODEL_FEATURES) -> list[int | float]:
        """The event's feature vector, point in time: only events before it in event order, only
        frauds reported at or before its time."""
        t, own = event.timestamp_ms, (event.timestamp_ms, event.transaction_id)
        card = self.cards[event.card_id]
        terminal = self.terminals[event.terminal_id]
        card_history = [(ts, amount) for ts, amount, tid in card.events if (ts, tid) < own]
        frauds = terminal.frauds
        terminal_history = [
            (ts, 1 if tid in frauds and frauds[tid] <= t else 0)
            for ts, tid in terminal.events
            if (ts, tid) < own
        ]
        return compute_vector(t, event.amount, card_history, terminal_history, names)

    def add(self, event: StateEvent) -> None:
        self.cards[event.card_id].add(event)
        self.terminals[event.terminal_id].add(event)


def read_state(client: redis.Redis, events: Sequence[StateEvent]) -> BatchState:
    """Every card's and terminal's window the events need, in one pipelined round trip."""
    pipe = client.pipeline(transaction=False)
    parse = queue_state_reads(pipe, events)
    return parse(iter(pipe.execute() if len(pipe) else ()))


def queue_state_reads(pipe: Any, events: Sequence[StateEvent]) -> Callable[[Iterator[Any]], BatchState]:
    """Queue the reads of every card's and terminal's window the events need — from the entity's
    earliest event here minus its retention, to its newest stored event — and return the function
    that parses their replies (consumed in order from an iterator) into the batch's state."""
    card_from: dict[str, int] = {}
    terminal_from: dict[str, int] = {}
    for event in events:
        ts = event.timestamp_ms
        if ts < card_from.get(event.card_id, ts + 1):
            card_from[event.card_id] = ts
        if ts < terminal_from.get(event.terminal_id, ts + 1):
            terminal_from[event.terminal_id] = ts
    for card_id, start in card_from.items():
        pipe.execute_command(
            "ZRANGE", keys.card_events_key(card_id), f"({start - CARD_RETENTION_MS}", "+inf", "BYSCORE"
        )
    for terminal_id, start in terminal_from.items():
        lower = f"({start - TERMINAL_RETENTION_MS}"
        pipe.execute_command("ZRANGE", keys.terminal_events_key(terminal_id), lower, "+inf", "BYSCORE")
        pipe.execute_command("ZRANGE", keys.terminal_frauds_key(terminal_id), lower, "+inf", "BYSCORE")

    def parse(replies: Iterator[Any]) -> BatchState:
        # The inverse of keys.card_member / terminal_member, inlined: tens of thousands of members per
        # batch make the per-member cost the read's main client-side cost.
        cards: dict[str, CardWindow] = {}
        for card_id in card_from:
            members = _texts(next(replies))
            events = [(int(t), float(a), i) for t, a, i in (m.split(":", 2) for m in members)]
            cards[card_id] = CardWindow(events, set(members))
        terminals: dict[str, TerminalWindow] = {}
        for terminal_id in terminal_from:
            members = _texts(next(replies))
            events = [(int(t), i) for t, i in (m.split(":", 1) for m in members)]
            window = TerminalWindow(events, set(members))
            for member in next(replies):
                _, reported_at, transaction_id = keys.parse_fraud_member(_text(member))
                window.frauds[transaction_id] = reported_at
            terminals[terminal_id] = window
        return BatchState(cards, terminals)

    return parse


def queue_state_writes(pipe: Any, events: Iterable[StateEvent]) -> tuple[int, int]:
    """Queue the commands that add `events` to their cards' and terminals' state. Idempotent.
    Returns (cards, terminals) touched."""
    return queue_rows(
        pipe, ((e.transaction_id, e.timestamp_ms, e.card_id, e.terminal_id, e.amount) for e in events)
    )


def queue_rows(pipe: Any, rows: Iterable[tuple[str, int, str, str, float]]) -> tuple[int, int]:
    """THE state update, for streaming and backfill alike: per entity one ZADD with all its members
    (`contracts.redis_keys.card_member` / `terminal_member` encodings, inlined: this loop is the
    backfill's hot path), a trim below what the earliest of these events can still need, and a TTL.
    `rows`: (transaction id, event time ms, card id, terminal id, amount)."""
    by_card: dict[str, list] = {}
    by_terminal: dict[str, list] = {}
    card_min: dict[str, int] = {}
    terminal_min: dict[str, int] = {}
    for tid, ts, card, terminal, amount in rows:
        pairs = by_card.get(card)
        if pairs is None:
            by_card[card] = [ts, f"{ts}:{amount!r}:{tid}"]
            card_min[card] = ts
        else:
            pairs += (ts, f"{ts}:{amount!r}:{tid}")
            if ts < card_min[card]:
                card_min[card] = ts
        pairs = by_terminal.get(terminal)
        if pairs is None:
            by_terminal[terminal] = [ts, f"{ts}:{tid}"]
            terminal_min[terminal] = ts
        else:
            pairs += (ts, f"{ts}:{tid}")
            if ts < terminal_min[terminal]:
                terminal_min[terminal] = ts
    for card_id, pairs in by_card.items():
        key = keys.card_events_key(card_id)
        pipe.execute_command("ZADD", key, *pairs)
        # Trim only below what the earliest of these events (and a retry of it) can still need.
        pipe.execute_command("ZREMRANGEBYSCORE", key, "-inf", card_min[card_id] - CARD_TTL_MS)
        pipe.execute_command("PEXPIRE", key, CARD_TTL_MS)
    for terminal_id, pairs in by_terminal.items():
        events_key = keys.terminal_events_key(terminal_id)
        pipe.execute_command("ZADD", events_key, *pairs)
        pipe.execute_command(
            "ZREMRANGEBYSCORE", events_key, "-inf", terminal_min[terminal_id] - TERMINAL_TTL_MS
        )
        pipe.execute_command("PEXPIRE", events_key, TERMINAL_TTL_MS)
        # (the terminal's frauds key is trimmed and kept alive by the label script)
    return len(by_card), len(by_terminal)


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
    (`queue_rows`, the same commands and encodings), pipelined per chunk.

    `transactions`: a `fraud_data.transactions.Transactions` or any object with the column lists
    `transaction_id, timestamp, card_id, terminal_id, amount` (and `label` when `labels`). Rows in any
    order. With `labels`, each fraud (label 1) is marked on its terminal as reported at the
    transaction's own time (known by the time any delayed window can include it). Writes no
    documents and no time series. Idempotent.
    """
    started = time.perf_counter()
    ids, stamps, card_ids, terminal_ids, amounts = _columns(transactions)
    n = len(ids)
    cards: set[str] = set()
    terminals: set[str] = set()
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        rows = zip(
            ids[start:stop],
            map(int, stamps[start:stop]),
            card_ids[start:stop],
            terminal_ids[start:stop],
            map(float, amounts[start:stop]),
            strict=True,
        )
        pipe = client.pipeline(transaction=False)
        queue_rows(pipe, rows)
        pipe.execute()
        cards.update(card_ids[start:stop])
        terminals.update(terminal_ids[start:stop])
    frauds = []
    if labels:
        frauds = [
            (terminal_ids[i], int(stamps[i]), ids[i], 1, int(stamps[i]))
            for i, label in enumerate(transactions.label)
            if int(label) == 1
        ]
    applied = backfill_labels(client, frauds, chunk_size=chunk_size) if frauds else 0
    return BackfillStats(n, applied, len(cards), len(terminals), time.perf_counter() - started)


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


def entity_state(
    client: redis.Redis, card_id: str | None = None, terminal_id: str | None = None
) -> dict[str, list]:
    """The stored state of one card and/or terminal, parsed, in event order."""
    out: dict[str, list] = {}
    if card_id is not None:
        members = client.zrange(keys.card_events_key(card_id), 0, -1)
        out["card"] = sorted(keys.parse_card_member(_text(m)) for m in members)
    if terminal_id is not None:
        members = client.zrange(keys.terminal_events_key(terminal_id), 0, -1)
        out["terminal"] = sorted(keys.parse_terminal_member(_text(m)) for m in members)
        frauds = client.zrange(keys.terminal_frauds_key(terminal_id), 0, -1)
        out["frauds"] = sorted(keys.parse_fraud_member(_text(m)) for m in frauds)
    return out


def dump_entity_state(
    client: redis.Redis, *, as_of_ms: int | None = None, with_report_times: bool = False
) -> dict[str, list[str]]:
    """Every card/terminal state key -> its sorted members.

    `as_of_ms`: keep only members a transaction at or after that time can still use (younger than
    the entity's retention): trimming happens per write batch, so two ways of loading the same
    history may keep different stale members. Without `with_report_times`, fraud marks drop the
    report time (`<ts>:<transaction id>`): a backfill and a label stream report at different times.
    """
    out: dict[str, list[str]] = {}
    for prefix, retention in (
        (keys.CARD_PREFIX, CARD_RETENTION_MS),
        (keys.TERMINAL_PREFIX, TERMINAL_RETENTION_MS),
    ):
        for raw_key in client.scan_iter(match=f"{prefix}*", count=1000):
            key = _text(raw_key)
            if as_of_ms is None:
                members = [_text(m) for m in client.zrange(key, 0, -1)]
            else:
                lower = f"({as_of_ms - retention}"
                members = [_text(m) for m in client.zrangebyscore(key, lower, "+inf")]
            if key.endswith(":frauds") and not with_report_times:
                members = [f"{ts}:{tid}" for ts, _, tid in (keys.parse_fraud_member(m) for m in members)]
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

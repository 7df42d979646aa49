"""Write scored transactions, label effects and rejected records to Redis, idempotently, in a few
pipelined round trips per batch.

1. Documents: one server-side script per chunk of up to DOCUMENTS_PER_SCRIPT transactions, each
   document gated on `JSON.SET … NX`: only a new document gets its TTL and counts in the time series,
   and the chunk's samples are written in the same atomic step. Samples are aggregated per series and
   per SAMPLE_RESOLUTION_MS bucket (MAX of the scores, SUM of the counts, which are also the series'
   duplicate policies, so a bucket written by several chunks or batches merges exactly): one sample
   per transaction was most of what a transaction cost Redis. An id found stored (by the read before,
   or by this NX: another shard was faster) is compared by content hash: the same content is a
   replay, a retry or a duplicate (nothing changes, no sample is added twice), other content is a
   conflict (kept aside by the caller). Atomic on purpose: with the samples written in a later round
   trip, a Redis restart between the two lost the batch's samples for good (a retry finds the
   documents stored and cannot tell whether their samples were written).
2. Effects of what step 1 stored or found stored: entity state (`fraud_scorer.feature_store`) and
   label effects, both idempotent, and the batch's latency samples (telemetry).

Rejections are gated by a per-record "seen" key. The scripts are loaded once per container and run
with EVALSHA; if Redis lost them (a restart), schema and scripts are re-created and the batch written
again, which the gates make safe.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

from contracts import redis_keys as keys
from contracts.features import MODEL_FEATURES, SPEC_VERSION
from contracts.verdicts import VERDICTS
from fraud_scorer import feature_store, schema
from fraud_scorer.events import Rejection, Transaction
from fraud_scorer.redis_wire import Wire, raise_first_error

# A document write's outcome: stored now, already stored with the same content, or with other content.
STORED, ALREADY_STORED, CONFLICT = 1, 0, -1

# The series a stored transaction adds to; STORE_TRANSACTIONS_LUA addresses them by position (1-9).
SAMPLE_SERIES = (
    keys.TS_FRAUD,
    keys.TS_ANOMALY,
    *(keys.verdict_series(v) for v in VERDICTS),  # fraud first: VERDICT_INDEX 1 is "fraud"
    keys.TS_SCORED,
    keys.LEGACY_ALL,
    keys.LEGACY_FRAUD,
    keys.LEGACY_NOT_FRAUD,
)
VERDICT_INDEX = {v: i for i, v in enumerate(VERDICTS, start=1)}
# Documents per script call: one call blocks Redis for its duration (~100 x 50 µs = 5 ms at most).
DOCUMENTS_PER_SCRIPT = 100

# KEYS: the SAMPLE_SERIES, then the chunk's documents (txn:<id>)
# ARGV: TTL ms, SAMPLE_RESOLUTION_MS, then per document: JSON, event time ms, fraud probability,
#       anomaly score, VERDICT_INDEX, scored-at ms
# Returns {samples refused, first error, flag per document}: 1 stored now, 0 already stored (the NX
# gate refused), -1 not stored (JSON.SET failed: the error is reported, the others go on).
# Only the newly stored documents add samples: per series and per SAMPLE_RESOLUTION_MS bucket (of the
# event time; of the scored-at time for ts:scored), MAX of the scores, SUM of the counts, in one
# TS.MADD (the series' own DUPLICATE_POLICY, the same MAX or SUM, merges a bucket another chunk wrote
# before). A sample TS.MADD refuses is retried alone with TS.ADD ON_DUPLICATE (which also re-creates a
# series deleted behind our back); one refused again (older than the retention) is counted: the
# documents must still be stored. Scores are passed on as the text they came in (exact values); Lua
# numbers are only compared.
STORE_TRANSACTIONS_LUA = """
local series = 9
local ttl, step = ARGV[1], tonumber(ARGV[2])
local flags, failure, buckets, sums = {}, '', {}, {}
for s = 1, series do buckets[s] = {} end
-- MAX series keep {value, text} per bucket, SUM series a count
local function max(s, t, value, text)
  local b = buckets[s][t]
  if not b then buckets[s][t] = {value, text} elseif value > b[1] then b[1] = value; b[2] = text end
end
local function count(s, t)
  buckets[s][t] = (buckets[s][t] or 0) + 1
  sums[s] = true
end
for i = 1, #KEYS - series do
  local a = 2 + (i - 1) * 6
  local set = redis.pcall('JSON.SET', KEYS[series + i], '$', ARGV[a + 1], 'NX')
  if type(set) == 'table' and set.err then
    flags[i] = -1
    if failure == '' then failure = set.err end
  elseif not set then
    flags[i] = 0
  else
    flags[i] = 1
    redis.call('PEXPIRE', KEYS[series + i], ttl)
    local t, fraud, anomaly = tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4]
    local verdict, scored = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
    local f = tonumber(fraud)
    t = t - t % step
    max(1, t, f, fraud); max(2, t, tonumber(anomaly), anomaly); count(2 + verdict, t)
    count(6, scored - scored % step); max(7, t, f, fraud); max(verdict == 1 and 8 or 9, t, f, fraud)
  end
end
local madd, policies = {}, {}
for s = 1, series do
  local times = {}
  for t in pairs(buckets[s]) do times[#times + 1] = t end
  table.sort(times)  -- in time order: an out-of-order sample costs the series a chunk rewrite
  for _, t in ipairs(times) do
    local b, n = buckets[s][t], #madd
    madd[n + 1] = KEYS[s]; madd[n + 2] = string.format('%.0f', t)
    if sums[s] then madd[n + 3] = string.format('%d', b) else madd[n + 3] = b[2] end
    policies[#policies + 1] = sums[s] and 'SUM' or 'MAX'
  end
end
local refused = 0
if #madd > 0 then
  local replies = redis.pcall('TS.MADD', unpack(madd))
  for i, policy in ipairs(policies) do
    local reply = type(replies) == 'table' and not replies.err and replies[i] or replies
    if type(reply) == 'table' and reply.err then
      local k = 3 * i
      local again = redis.pcall('TS.ADD', madd[k - 2], madd[k - 1], madd[k], 'ON_DUPLICATE', policy)
      if type(again) == 'table' and again.err then refused = refused + 1 end
    end
  end
end
return {refused, failure, unpack(flags)}
"""

# KEYS: seen key, rejected stream, ts:rejected
# ARGV: reason, detail, sha256, length, shard id, sequence number, rejected-at ms, seen TTL s, maxlen,
#       raw data (base64; empty = not kept)
# The seen key is set only after the XADD: an error in a script does not undo the writes before it,
# so a gate set first would turn a failed XADD's retry into "kept before" for a record never kept.
STORE_REJECTION_LUA = """
if redis.call('GET', KEYS[1]) then  -- GET, not EXISTS: the scorer's Redis user has no EXISTS
  return 0
end
-- `position` is shard and sequence number in one text: a reader that turns numeric-looking fields
-- into floats (Grafana's Redis plugin) would round a 56-digit sequence number.
local fields = {'reason', ARGV[1], 'detail', ARGV[2], 'sha256', ARGV[3], 'length', ARGV[4],
  'shard_id', ARGV[5], 'sequence_number', ARGV[6], 'position', ARGV[5] .. '/' .. ARGV[6],
  'rejected_at', ARGV[7]}
if ARGV[10] ~= '' then
  fields[#fields + 1] = 'data'; fields[#fields + 1] = ARGV[10]
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', unpack(fields))
redis.call('SET', KEYS[1], '1', 'EX', ARGV[8])
redis.pcall('TS.ADD', KEYS[3], ARGV[7], 1, 'ON_DUPLICATE', 'SUM')
return 1
"""


@dataclass(frozen=True)
class ScoredTransaction:
    transaction: Transaction
    fraud_probability: float
    anomaly_score: float
    verdict: str
    scored_at_ms: int
    # The behavioural profile's feature vector (MODEL_FEATURES order); None for the creditcard profile.
    vector: tuple[int | float, ...] | None = None

    @property
    def latency_ms(self) -> int:
        return self.scored_at_ms - self.transaction.timestamp_ms

    def document_json(self, *, processing_ms: float) -> str:
        """The `txn:<id>` document (docs/architecture.md): the event's fields, where it came from, the
        scores, and the features the models saw. Creditcard-profile features are spliced in as the
        text already formatted for the endpoints' CSV rows (formatting is the costliest step)."""
        txn = self.transaction
        fields = txn.event_fields()
        fields.pop("features", None)
        fields["kinesis"] = {"shard_id": txn.ref.shard_id, "sequence_number": txn.ref.sequence_number}
        fields["format"] = txn.format
        fields["content_hash"] = txn.content_hash
        fields["fraud_probability"] = self.fraud_probability
        fields["anomaly_score"] = self.anomaly_score
        fields["verdict"] = self.verdict
        fields["scored_at"] = self.scored_at_ms
        fields["latency_ms"] = self.latency_ms
        fields["processing_ms"] = round(processing_ms, 3)
        if self.vector is not None:
            fields["features"] = dict(zip(MODEL_FEATURES, self.vector, strict=True))
            fields["feature_spec_version"] = SPEC_VERSION
            return orjson.dumps(fields).decode()
        document = orjson.dumps(fields).decode()
        return f'{document[:-1]},"features":[{txn.features_text}]}}'


# A document's latest report: a label event sets both (the transaction's own `label`, if it carried one,
# has no report time).
_LABEL = "$.label"
_LABEL_REPORTED_AT = "$.label_reported_at"
_REPORT_PATHS = (_LABEL_REPORTED_AT.encode(), _LABEL.encode())


@dataclass(frozen=True)
class LabelTarget:
    """What a label needs from its transaction: its terminal (None: creditcard profile) and time; and
    the report its document holds, if a label event set one (`reported_at_ms`, `label`): a report
    older than that one changes nothing."""

    terminal_id: str | None
    timestamp_ms: int
    reported_at_ms: int | None = None
    label: int | None = None


@dataclass(frozen=True)
class ReadResult:
    # transaction id -> content hash of the stored document ("" if it has none); absent = not stored
    existing: dict[str, str]
    # labelled transaction id -> its stored document's terminal and time; absent = unknown
    label_targets: dict[str, LabelTarget]
    state: feature_store.BatchState
    # ids whose document read was an error reply (e.g. a key of another type at `txn:<id>`): a
    # transaction among them is written as new and fails alone there; a label naming one waits
    unreadable: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DocumentOutcome:
    """Per input item: STORED / ALREADY_STORED / CONFLICT, or the exception that kept it out.
    Rejections: True = newly kept, False = kept before, an exception = not kept."""

    transactions: list[int | Exception]
    rejections: list[bool | Exception]
    samples_refused: int = 0  # time-series samples of the stored documents the series refused


@dataclass(frozen=True)
class RejectedRecord:
    """What the rejected stream keeps of a record (docs/architecture.md, *Redis data model*)."""

    rejection: Rejection

    def fields(self, keep_payload: bool) -> tuple[str, str, str]:
        raw = self.rejection.raw
        data = base64.b64encode(raw[: keys.REJECTED_DATA_LIMIT]).decode("ascii") if keep_payload else ""
        return hashlib.sha256(raw).hexdigest(), str(len(raw)), data


def _json_reply(reply: object) -> object:
    return None if reply is None else orjson.loads(reply)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _lost_scripts(written: tuple[list, list, int]) -> bool:
    documents, rejections, _ = written
    return any(isinstance(r, NoScriptError) for r in (*documents, *rejections))


class TransactionStore:
    """Stateless apart from "the schema is in place": the client is passed per call, so a client
    rebuilt after a secret rotation needs no new store."""

    def __init__(self, *, retention_ms: int, txn_retention_ms: int, keep_payload: bool = False) -> None:
        self._retention_ms = retention_ms
        self._txn_retention_ms = txn_retention_ms
        self._keep_payload = keep_payload
        # Bytes, so the SHA is computed without a client; loaded into Redis by bootstrap().
        self._store_transactions = Script(None, STORE_TRANSACTIONS_LUA.encode())
        self._store_rejection = Script(None, STORE_REJECTION_LUA.encode())
        self._ready = False

    def bootstrap(self, client: redis.Redis) -> None:
        """Schema and scripts, once per container (again only if Redis lost its scripts)."""
        schema.ensure_schema(client, retention_ms=self._retention_ms)
        pipe = client.pipeline(transaction=False)
        pipe.script_load(self._store_transactions.script)
        pipe.script_load(self._store_rejection.script)
        pipe.execute()
        self._ready = True

    # --- round trip 1: what is already there, and the entities' windows -------------------------

    def read(
        self,
        client: redis.Redis,
        transaction_ids: Sequence[str],
        label_ids: Sequence[str],
        state_events: Sequence[feature_store.StateEvent],
    ) -> ReadResult:
        if not self._ready:
            self.bootstrap(client)
        documents = len(transaction_ids) + len(label_ids)
        # On a plain client the document reads go with the entity reads, in one round trip.
        commands = [(b"JSON.GET", keys.txn_key(t).encode(), b"$.content_hash") for t in transaction_ids]
        commands += [
            (b"JSON.GET", keys.txn_key(t).encode(), b"$.terminal_id", b"$.timestamp", *_REPORT_PATHS)
            for t in label_ids
        ]
        both = feature_store.read_with_state(client, commands, state_events)
        if both is not None:
            replies, state = both
        else:
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            parse_state = feature_store.queue_state_reads(pipe, state_events)
            replies = pipe.execute(raise_on_error=False) if len(pipe) else []
            raise_first_error(replies[documents:])
            state = parse_state(iter(replies[documents:]))
        # An error reply fails its own id, never the batch's read.
        unreadable = {
            txn_id
            for txn_id, reply in zip((*transaction_ids, *label_ids), replies, strict=False)
            if isinstance(reply, Exception)
        }
        existing: dict[str, str] = {}
        for transaction_id, reply in zip(transaction_ids, replies, strict=False):
            if isinstance(reply, Exception):
                continue
            hashes = _json_reply(reply)
            if hashes is not None:
                existing[transaction_id] = hashes[0] if hashes else ""
        targets: dict[str, LabelTarget] = {}
        for transaction_id, reply in zip(label_ids, replies[len(transaction_ids) : documents], strict=True):
            if isinstance(reply, Exception):
                continue
            found = _json_reply(reply)
            if found is not None and found.get("$.timestamp"):
                terminal = found.get("$.terminal_id") or [None]
                reported_at = found.get(_LABEL_REPORTED_AT) or [None]
                label = found.get(_LABEL) or [None]
                targets[transaction_id] = LabelTarget(
                    terminal[0],
                    int(found["$.timestamp"][0]),
                    None if reported_at[0] is None else int(reported_at[0]),
                    None if label[0] is None else int(label[0]),
                )
        return ReadResult(existing, targets, state, frozenset(unreadable))

    # --- round trip 2: documents and rejections ---------------------------------------------------

    def write_documents(
        self,
        client: redis.Redis,
        scored: Sequence[ScoredTransaction],
        rejections: Sequence[Rejection],
        *,
        processing_ms: float,
        rejected_at_ms: int,
        while_waiting: Callable[[], None] | None = None,
    ) -> DocumentOutcome:
        """Store the scored documents (NX: a document already there is compared, not overwritten) and
        keep the rejections aside. `while_waiting` runs while Redis executes the writes (the scorer
        builds its state write then): at least once, again if the writes are sent again."""
        if not self._ready:
            self.bootstrap(client)
        written = self._write_once(client, scored, rejections, processing_ms, rejected_at_ms, while_waiting)
        if _lost_scripts(written):
            self.bootstrap(client)
            written = self._write_once(
                client, scored, rejections, processing_ms, rejected_at_ms, while_waiting
            )
        documents, rejection_results, samples_refused = written
        transactions: list[int | Exception] = []
        raced: list[int] = []  # NX refused: stored meanwhile, compare the content
        for i, flag in enumerate(documents):
            if isinstance(flag, Exception) or flag == STORED:
                transactions.append(flag)
            else:
                transactions.append(ALREADY_STORED)
                raced.append(i)
        if raced:
            pipe = client.pipeline(transaction=False)
            for i in raced:
                pipe.execute_command(
                    "JSON.GET", keys.txn_key(scored[i].transaction.transaction_id), "$.content_hash"
                )
            for i, reply in zip(raced, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(reply, Exception):
                    transactions[i] = reply
                elif _json_reply(reply) not in (None, [], [scored[i].transaction.content_hash]):
                    transactions[i] = CONFLICT
        rejected = [r if isinstance(r, Exception) else bool(int(r)) for r in rejection_results]
        return DocumentOutcome(transactions, rejected, samples_refused)

    def _write_once(
        self,
        client: redis.Redis,
        scored: Sequence[ScoredTransaction],
        rejections: Sequence[Rejection],
        processing_ms: float,
        rejected_at_ms: int,
        while_waiting: Callable[[], None] | None = None,
    ) -> tuple[list[int | Exception], list, int]:
        """(per document: STORED / ALREADY_STORED / the error, per rejection: the script's reply or the
        error, samples refused). One script call per DOCUMENTS_PER_SCRIPT documents: each stores its
        documents and their samples atomically."""
        if not scored and not rejections:
            if while_waiting is not None:
                while_waiting()
            return [], [], 0
        commands: list[tuple] = []
        chunks = [scored[i : i + DOCUMENTS_PER_SCRIPT] for i in range(0, len(scored), DOCUMENTS_PER_SCRIPT)]
        for chunk in chunks:
            args: list[str | int] = [self._txn_retention_ms, keys.SAMPLE_RESOLUTION_MS]
            for item in chunk:
                args += (
                    item.document_json(processing_ms=processing_ms),
                    item.transaction.timestamp_ms,
                    repr(item.fraud_probability),
                    repr(item.anomaly_score),
                    VERDICT_INDEX[item.verdict],
                    item.scored_at_ms,
                )
            commands.append(
                (
                    "EVALSHA",
                    self._store_transactions.sha,
                    len(SAMPLE_SERIES) + len(chunk),
                    *SAMPLE_SERIES,
                    *(keys.txn_key(item.transaction.transaction_id) for item in chunk),
                    *args,
                )
            )
        for rejection in rejections:
            ref = rejection.ref
            sha256, length, data = RejectedRecord(rejection).fields(self._keep_payload)
            commands.append(
                (
                    "EVALSHA",
                    self._store_rejection.sha,
                    3,
                    keys.rejected_seen_key(ref.shard_id, ref.sequence_number),
                    keys.REJECTED_STREAM,
                    keys.TS_REJECTED,
                    rejection.reason.value,
                    rejection.detail,
                    sha256,
                    length,
                    ref.shard_id,
                    ref.sequence_number,
                    rejected_at_ms,
                    keys.REJECTED_SEEN_TTL_S,
                    keys.REJECTED_STREAM_MAXLEN,
                    data,
                )
            )
        wire = Wire.of(client)
        if wire is not None:
            replies = wire.run(commands, while_waiting=while_waiting, errors_in_place=True)
        else:  # e.g. a cluster client: its own pipeline, routed per slot
            if while_waiting is not None:
                while_waiting()
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            replies = pipe.execute(raise_on_error=False)
        documents: list[int | Exception] = []
        refused = 0
        for chunk, reply in zip(chunks, replies, strict=False):
            if isinstance(reply, Exception):
                documents += [reply] * len(chunk)
                continue
            refused += int(reply[0])
            failure = RedisError(_text(reply[1]))
            documents += [failure if int(flag) < 0 else int(flag) for flag in reply[2:]]
        return documents, replies[len(chunks) :], refused

    # --- round trip 3: entity state, label effects, samples ---------------------------------------

    def write_effects(
        self,
        client: redis.Redis,
        state_events: Sequence[feature_store.StateEvent],
        labels: Sequence[tuple[str, int, LabelTarget, int]],
        stored: Sequence[ScoredTransaction],
        replayed: Sequence[str] = (),
        prepared: feature_store.PreparedStateWrite | None = None,
    ) -> None:
        """Apply entity state for `state_events`, `labels` (transaction id, label, target, reported at)
        and the batch's latency samples over the newly `stored` transactions; give the `replayed`
        documents their TTL if they lack it (a PEXPIRE lost with its connection). `prepared`: the
        state write built ahead (`feature_store.prepare_state_writes`), used if it still applies.
        Raises RedisError if a state or label write failed (the caller retries the records: those
        writes are idempotent)."""
        pipe = client.pipeline(transaction=False)
        for transaction_id in replayed:
            pipe.execute_command("PEXPIRE", keys.txn_key(transaction_id), self._txn_retention_ms, "NX")
        feature_store.queue_state_writes(pipe, state_events, prepared)
        for transaction_id, label, target, reported_at in labels:
            # The document says what was reported; the terminal's fraud marks are what features read.
            pipe.execute_command("JSON.SET", keys.txn_key(transaction_id), _LABEL, label)
            pipe.execute_command("JSON.SET", keys.txn_key(transaction_id), _LABEL_REPORTED_AT, reported_at)
            if target.terminal_id is not None:
                feature_store.queue_label(
                    pipe, target.terminal_id, target.timestamp_ms, transaction_id, label, reported_at
                )
        samples_start = len(pipe)
        _queue_latency(pipe, stored)
        if not len(pipe):
            return
        results = pipe.execute(raise_on_error=False)
        effects = results[:samples_start]
        failed = [r for r in effects if isinstance(r, Exception)]
        if failed:
            raise failed[0] if isinstance(failed[0], RedisError) else RedisError(str(failed[0]))
        # The documents' samples were written with them (round trip 2); a latency sample is telemetry.


def _queue_latency(pipe: object, stored: Sequence[ScoredTransaction]) -> None:
    """The batch's p50/p99 end-to-end latency over the transactions it newly stored (telemetry: a
    refused sample is ignored)."""
    if not stored:
        return
    latencies = sorted(item.latency_ms for item in stored)
    at = max(item.scored_at_ms for item in stored)
    for key, quantile in ((keys.TS_LATENCY_P50, 0.50), (keys.TS_LATENCY_P99, 0.99)):
        pipe.execute_command("TS.ADD", key, at, nearest_rank(latencies, quantile), "ON_DUPLICATE", "MAX")


def nearest_rank(sorted_values: Sequence[float], quantile: float) -> float:
    rank = max(1, math.ceil(quantile * len(sorted_values)))
    return sorted_values[rank - 1]

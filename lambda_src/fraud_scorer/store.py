"""Write scored transactions and rejected records to Redis, idempotently, one round trip per batch.

Each transaction is written by one server-side Lua script: `JSON.SET … NX` is the gate, and only when
the document is new does the script add the time-series samples, atomically. A replayed batch or a
duplicate id therefore changes nothing. Rejections work the same way with a per-record "seen" key
guarding the stream entry and the rejected counter. The scripts are loaded once per container and run
with EVALSHA inside a non-transactional pipeline; if Redis lost them (a restart), the schema and the
scripts are re-created and the batch is written again, which the gates make safe.
"""

from __future__ import annotations

import base64
import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

from contracts import redis_keys as keys
from contracts.verdicts import Verdict
from fraud_scorer import schema
from fraud_scorer.events import Rejection, Transaction

# KEYS: txn doc, ts:fraud_probability, ts:anomaly_score, ts:verdict:<v>, ts:scored, fraud-ts,
#       fraudulent_ts or non-fraudulent_ts
# ARGV: document JSON, event time ms, fraud probability, anomaly score, scored-at ms
# Returns {1, samples dropped} when stored, {0, 0} when the document already existed.
# The six samples go in one TS.MADD, which applies each series' own DUPLICATE_POLICY (set by the
# schema bootstrap). A sample MADD refuses is retried alone with TS.ADD ON_DUPLICATE (which also
# re-creates a series deleted behind our back); one refused again — e.g. older than the series'
# retention — is dropped and counted: the document must still be stored, and a replay must not add
# the other samples twice.
STORE_TRANSACTION_LUA = """
if not redis.call('JSON.SET', KEYS[1], '$', ARGV[1], 'NX') then
  return {0, 0}
end
local samples = {
  {KEYS[2], ARGV[2], ARGV[3], 'MAX'}, {KEYS[3], ARGV[2], ARGV[4], 'MAX'}, {KEYS[4], ARGV[2], 1, 'SUM'},
  {KEYS[5], ARGV[5], 1, 'SUM'}, {KEYS[6], ARGV[2], ARGV[3], 'MAX'}, {KEYS[7], ARGV[2], ARGV[3], 'MAX'}
}
local madd = {}
for _, s in ipairs(samples) do
  madd[#madd + 1] = s[1]; madd[#madd + 1] = s[2]; madd[#madd + 1] = s[3]
end
local replies = redis.pcall('TS.MADD', unpack(madd))
local dropped = 0
for i, s in ipairs(samples) do
  local reply = type(replies) == 'table' and not replies.err and replies[i] or replies
  if type(reply) == 'table' and reply.err then
    local again = redis.pcall('TS.ADD', s[1], s[2], s[3], 'ON_DUPLICATE', s[4])
    if type(again) == 'table' and again.err then dropped = dropped + 1 end
  end
end
return {1, dropped}
"""

# KEYS: seen key, txn:rejected, ts:rejected
# ARGV: reason, detail, data (base64), shard id, sequence number, rejected-at ms, seen TTL s, maxlen
STORE_REJECTION_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[7]) then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'reason', ARGV[1], 'detail', ARGV[2],
  'data', ARGV[3], 'shard_id', ARGV[4], 'sequence_number', ARGV[5], 'rejected_at', ARGV[6])
redis.pcall('TS.ADD', KEYS[3], ARGV[6], 1, 'ON_DUPLICATE', 'SUM')
return 1
"""


@dataclass(frozen=True)
class ScoredTransaction:
    transaction: Transaction
    fraud_probability: float
    anomaly_score: float
    verdict: str
    scored_at_ms: int

    @property
    def latency_ms(self) -> int:
        return self.scored_at_ms - self.transaction.timestamp_ms

    def document_json(self, *, processing_ms: float) -> str:
        """The `txn:{id}` document (docs/architecture.md): the event's fields, where it came from, and
        the scores. The features are spliced in as the text already formatted for the endpoints'
        CSV rows, so the costliest formatting of a batch is done once."""
        txn = self.transaction
        fields = txn.event_fields()
        del fields["features"]
        fields["kinesis"] = {"shard_id": txn.ref.shard_id, "sequence_number": txn.ref.sequence_number}
        fields["format"] = txn.format
        fields["fraud_probability"] = self.fraud_probability
        fields["anomaly_score"] = self.anomaly_score
        fields["verdict"] = self.verdict
        fields["scored_at"] = self.scored_at_ms
        fields["latency_ms"] = self.latency_ms
        fields["processing_ms"] = round(processing_ms, 3)
        document = orjson.dumps(fields).decode()
        return f'{document[:-1]},"features":[{txn.features_text}]}}'


@dataclass(frozen=True)
class WriteOutcome:
    """Per input item: True = newly stored, False = was already there, an Exception = not stored."""

    transactions: list[bool | Exception]
    rejections: list[bool | Exception]
    samples_dropped: int


class TransactionStore:
    """Stateless apart from "the schema is in place": the client is passed per call, so a client
    rebuilt after a secret rotation needs no new store."""

    def __init__(self, *, retention_ms: int) -> None:
        self._retention_ms = retention_ms
        # Bytes, so the SHA is computed without a client; loaded into Redis by bootstrap().
        self._store_transaction = Script(None, STORE_TRANSACTION_LUA.encode())
        self._store_rejection = Script(None, STORE_REJECTION_LUA.encode())
        self._ready = False

    def bootstrap(self, client: redis.Redis) -> None:
        """Schema and scripts, once per container (again only if Redis lost its scripts)."""
        schema.ensure_schema(client, retention_ms=self._retention_ms)
        pipe = client.pipeline(transaction=False)
        pipe.script_load(self._store_transaction.script)
        pipe.script_load(self._store_rejection.script)
        pipe.execute()
        self._ready = True

    def write(
        self,
        client: redis.Redis,
        scored: Sequence[ScoredTransaction],
        rejections: Sequence[Rejection],
        *,
        processing_ms: float,
        rejected_at_ms: int,
    ) -> WriteOutcome:
        if not self._ready:
            self.bootstrap(client)
        results = self._write_once(client, scored, rejections, processing_ms, rejected_at_ms)
        if any(isinstance(r, NoScriptError) for r in results):
            self.bootstrap(client)
            results = self._write_once(client, scored, rejections, processing_ms, rejected_at_ms)
        txn_results, rejection_results = results[: len(scored)], results[len(scored) :]
        transactions: list[bool | Exception] = []
        dropped = 0
        for result in txn_results:
            if isinstance(result, Exception):
                transactions.append(result)
            else:
                transactions.append(bool(int(result[0])))
                dropped += int(result[1])
        rejected = [r if isinstance(r, Exception) else bool(int(r)) for r in rejection_results]
        stored = [item for item, ok in zip(scored, transactions, strict=True) if ok is True]
        self._write_latency(client, stored)
        return WriteOutcome(transactions, rejected, dropped)

    def _write_once(
        self,
        client: redis.Redis,
        scored: Sequence[ScoredTransaction],
        rejections: Sequence[Rejection],
        processing_ms: float,
        rejected_at_ms: int,
    ) -> list:
        pipe = client.pipeline(transaction=False)
        for item in scored:
            txn = item.transaction
            legacy_split = keys.LEGACY_FRAUD if item.verdict == Verdict.FRAUD else keys.LEGACY_NOT_FRAUD
            pipe.evalsha(
                self._store_transaction.sha,
                7,
                keys.txn_key(txn.transaction_id),
                keys.TS_FRAUD,
                keys.TS_ANOMALY,
                keys.verdict_series(item.verdict),
                keys.TS_SCORED,
                keys.LEGACY_ALL,
                legacy_split,
                item.document_json(processing_ms=processing_ms),
                txn.timestamp_ms,
                repr(item.fraud_probability),
                repr(item.anomaly_score),
                item.scored_at_ms,
            )
        for rejection in rejections:
            ref = rejection.ref
            pipe.evalsha(
                self._store_rejection.sha,
                3,
                keys.rejected_seen_key(ref.shard_id, ref.sequence_number),
                keys.REJECTED_STREAM,
                keys.TS_REJECTED,
                rejection.reason.value,
                rejection.detail,
                base64.b64encode(rejection.raw[: keys.REJECTED_DATA_LIMIT]).decode("ascii"),
                ref.shard_id,
                ref.sequence_number,
                rejected_at_ms,
                keys.REJECTED_SEEN_TTL_S,
                keys.REJECTED_STREAM_MAXLEN,
            )
        return pipe.execute(raise_on_error=False) if (scored or rejections) else []

    def _write_latency(self, client: redis.Redis, stored: Sequence[ScoredTransaction]) -> None:
        """The batch's p50/p99 end-to-end latency over the transactions it newly stored."""
        if not stored:
            return
        latencies = sorted(item.latency_ms for item in stored)
        at = max(item.scored_at_ms for item in stored)
        pipe = client.pipeline(transaction=False)
        for key, quantile in ((keys.TS_LATENCY_P50, 0.50), (keys.TS_LATENCY_P99, 0.99)):
            pipe.execute_command("TS.ADD", key, at, nearest_rank(latencies, quantile), "ON_DUPLICATE", "MAX")
        # A latency sample is telemetry: losing one (refused, or Redis gone just now) must not fail a
        # batch whose transactions are already stored.
        with contextlib.suppress(RedisError):
            pipe.execute(raise_on_error=False)


def nearest_rank(sorted_values: Sequence[float], quantile: float) -> float:
    rank = max(1, math.ceil(quantile * len(sorted_values)))
    return sorted_values[rank - 1]

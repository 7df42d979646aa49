"""Count what the pipeline really stored, from Redis alone (docs/architecture.md, "Redis data model").

The demo's summary line, the end-to-end tests and the end-to-end benchmark all read their figures
here, so "0 lost" is counted, never assumed: verdicts and latency quantiles from the RediSearch index
(FT.AGGREGATE), rejections from the rejected stream (`rejected:records`), and exactly-once from the
documents and the `ts:scored` counter series.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis

from contracts.events import RejectReason
from contracts.redis_keys import INDEX, REJECTED_STREAM, TS_LATENCY_P99, TS_SCORED, txn_key, verdict_series
from contracts.verdicts import VERDICTS

SCORED_SERIES = TS_SCORED
_FOREVER_MS = 10**13  # one aggregation bucket that spans every sample
# RediSearch stops a query after 500 ms by default and then returns what it has (ON_TIMEOUT return):
# an oracle must never count a partial result, so its queries run to the end (TIMEOUT 0 = none).
NO_TIMEOUT = ("TIMEOUT", "0")


@dataclass(frozen=True)
class Tally:
    fraud: int = 0
    suspicious: int = 0
    legit: int = 0
    rejected: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    # The highest per-batch p99 the scorer wrote to ts:latency:p99: what the dashboard's latency
    # panel shows at its peak ("slowest batch each minute"), named as such in the summary too.
    slowest_batch_p99_ms: float | None = None
    # Verdicts against the labels the fraud reports (label events) put on the documents.
    reported_frauds: int = 0  # scored transactions whose document says label 1
    true_positives: int = 0  # ... of which the verdict was fraud

    @property
    def stored(self) -> int:
        return self.fraud + self.suspicious + self.legit

    @property
    def precision(self) -> float | None:
        """Share of `fraud` verdicts that were reported as fraud (None without fraud verdicts)."""
        return self.true_positives / self.fraud if self.fraud else None

    @property
    def recall(self) -> float | None:
        """Share of reported frauds whose verdict was `fraud` (None without reported frauds)."""
        return self.true_positives / self.reported_frauds if self.reported_frauds else None

    def summary_line(self, sent: int) -> str:
        """The one line `make demo` ends with; lost = sent - (stored + rejected)."""
        return (
            f"{self.stored} transactions scored (fraud {self.fraud}, suspicious {self.suspicious}, "
            f"legit {self.legit}), {self.rejected} rejected, {lost(sent, self)} lost; "
            f"latency p50 {_ms(self.latency_p50_ms)}, p99 {_ms(self.latency_p99_ms)} "
            f"(slowest batch's p99 {_ms(self.slowest_batch_p99_ms)}); "
            f"fraud verdicts vs {self.reported_frauds} reported frauds: "
            f"precision {_share(self.precision)}, recall {_share(self.recall)}"
        )


def lost(sent: int, tally: Tally) -> int:
    return max(0, sent - (tally.stored + tally.rejected))


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def count(client: redis.Redis, *, since_ms: int = 0) -> Tally:
    """Verdicts and latency quantiles of transactions scored at or after `since_ms`, and transactions
    rejected since then (stream entry ids start with their epoch-ms time)."""
    query = f"@scored_at:[{since_ms} +inf]"
    try:
        groups = _aggregate(client, query, "GROUPBY", "1", "@verdict", "REDUCE", "COUNT", "0", "AS", "n")
        (quantiles,) = _aggregate(
            client,
            query,
            "GROUPBY",
            "0",
            "REDUCE",
            "QUANTILE",
            "2",
            "@latency_ms",
            "0.5",
            "AS",
            "p50",
            "REDUCE",
            "QUANTILE",
            "2",
            "@latency_ms",
            "0.99",
            "AS",
            "p99",
        ) or [{}]
        reported = _count(client, f"{query} @label:[1 1]")
        caught = _count(client, f"{query} @label:[1 1] @verdict:{{fraud}}")
    except redis.ResponseError as exc:
        if "no such index" not in str(exc).lower():
            raise
        # nothing scored yet: the handler creates the index on first use
        groups, quantiles, reported, caught = [], {}, 0, 0
    verdicts = {row.get("verdict"): int(row.get("n", 0)) for row in groups}
    return Tally(
        fraud=verdicts.get("fraud", 0),
        suspicious=verdicts.get("suspicious", 0),
        legit=verdicts.get("legit", 0),
        rejected=count_rejected(client, since_ms=since_ms),
        latency_p50_ms=_float(quantiles.get("p50")),
        latency_p99_ms=_float(quantiles.get("p99")),
        slowest_batch_p99_ms=slowest_batch_p99(client, since_ms=since_ms),
        reported_frauds=reported,
        true_positives=caught,
    )


def _count(client: redis.Redis, query: str) -> int:
    """How many documents match (FT.SEARCH ... LIMIT 0 0 answers with the total alone)."""
    reply = client.execute_command("FT.SEARCH", INDEX, query, *NO_TIMEOUT, "LIMIT", "0", "0", "DIALECT", "2")
    if isinstance(reply, dict):  # RESP3
        return int(reply.get("total_results", 0))
    return int(reply[0])


def slowest_batch_p99(client: redis.Redis, *, since_ms: int = 0) -> float | None:
    """The highest per-batch p99 latency sample (ts:latency:p99) at or after `since_ms`. Its samples
    are stamped with the batch's newest event time, so this covers the batches of the same run."""
    if not client.exists(TS_LATENCY_P99):
        return None
    samples = client.ts().range(
        TS_LATENCY_P99, since_ms, "+", aggregation_type="max", bucket_size_msec=_FOREVER_MS
    )
    return max((float(value) for _, value in samples), default=None)


# Rejections that are not a sent transaction's: a label event for a transaction Redis does not hold,
# and a second transaction under an id already stored. Counting them would hide as many lost
# transactions (a lost fraud's own report is rejected as `unknown_transaction`).
NOT_A_SENT_TRANSACTION = frozenset({RejectReason.UNKNOWN_TRANSACTION, RejectReason.DUPLICATE_ID_CONFLICT})


def count_rejected(client: redis.Redis, *, since_ms: int = 0) -> int:
    """Transactions kept in the rejected stream since `since_ms` (see NOT_A_SENT_TRANSACTION)."""
    total, start = 0, f"{max(since_ms, 0)}-0"
    while True:
        page = client.xrange(REJECTED_STREAM, min=start, count=10_000)
        total += sum(_reason(fields) not in NOT_A_SENT_TRANSACTION for _, fields in page)
        if len(page) < 10_000:
            return total
        start = "(" + _text(page[-1][0])


def _aggregate(client: redis.Redis, query: str, *args: str) -> list[dict[str, str]]:
    reply = client.execute_command("FT.AGGREGATE", INDEX, query, *NO_TIMEOUT, *args, "DIALECT", "2")
    if isinstance(reply, dict):  # RESP3: {"results": [{"extra_attributes": {...}}, ...]}
        return [
            {_text(k): _text(v) for k, v in row.get("extra_attributes", {}).items()}
            for row in reply.get("results", [])
        ]
    rows = []
    for row in reply[1:]:
        fields = [_text(item) for item in row]
        rows.append(dict(zip(fields[::2], fields[1::2], strict=True)))
    return rows


def _reason(fields: dict) -> str:
    return _text(fields.get(b"reason") or fields.get("reason") or "")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: str | None) -> float | None:
    if value in (None, "", "nan"):
        return None
    return float(value)


@dataclass(frozen=True)
class Audit:
    """Exactly-once, checked per transaction id and against the counter series."""

    sent: int
    missing: list[str]
    scored_samples: int
    verdict_samples: dict[str, int]

    def problems(self, tally: Tally) -> list[str]:
        found = []
        if self.missing:
            found.append(f"{len(self.missing)} sent transactions not in Redis, e.g. {self.missing[:5]}")
        if self.scored_samples != tally.stored:
            found.append(f"ts:scored counts {self.scored_samples} transactions, the index {tally.stored}")
        for verdict in VERDICTS:
            if self.verdict_samples[verdict] != getattr(tally, verdict):
                found.append(
                    f"{verdict_series(verdict)} counts {self.verdict_samples[verdict]}, "
                    f"the index {getattr(tally, verdict)}"
                )
        return found


def audit(client: redis.Redis, transaction_ids: Iterable[str]) -> Audit:
    """Which sent ids have no document, and how many transactions each counter series saw.

    A replay that wrote twice would show as counters above the number of documents."""
    ids = list(transaction_ids)
    missing = []
    for start in range(0, len(ids), 5_000):
        chunk = ids[start : start + 5_000]
        pipe = client.pipeline(transaction=False)
        for transaction_id in chunk:
            pipe.exists(txn_key(transaction_id))
        missing += [tid for tid, exists in zip(chunk, pipe.execute(), strict=True) if not exists]
    return Audit(
        sent=len(ids),
        missing=missing,
        scored_samples=_series_sum(client, SCORED_SERIES),
        verdict_samples={v: _series_sum(client, verdict_series(v)) for v in VERDICTS},
    )


def _series_sum(client: redis.Redis, key: str) -> int:
    if not client.exists(key):
        return 0
    samples = client.ts().range(key, "-", "+", aggregation_type="sum", bucket_size_msec=_FOREVER_MS)
    return int(sum(value for _, value in samples))

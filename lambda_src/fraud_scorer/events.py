"""Decode and validate Kinesis records into transactions and label events, or say precisely why a
record is rejected.

Wire formats (docs/architecture.md, *Event schema*): the v2 transaction event (card, terminal, amount,
time: behavioural features computed online), the v1 event carrying the 30 creditcard numbers, the
label event (`type: "label"`), and the old demo's `{"data": "<30 numbers>", "metadata": [...]}`.
Anything else becomes a `Rejection` with a machine-readable `reason` and a human-readable `detail`.
`decode_record` never raises: whatever goes wrong with one record (even an exception nobody foresaw)
is that record's rejection, never a failed batch that would stall the shard.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import orjson
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
    KinesisStreamRecordPayload,
)

from contracts.events import (
    AMOUNT_INDEX,
    ENTITY_ID,
    FEATURE_COUNT,
    LABEL_EVENT_TYPE,
    LEGACY_CARD_PREFIX,
    MAX_AMOUNT,
    MAX_CARD_ID,
    MAX_FEATURE_MAGNITUDE,
    MAX_LABEL_TEXT,
    MAX_RECORD_BYTES,
    TRANSACTION_EVENT_TYPE,
    TRANSACTION_ID,
    TYPE_FIELD,
    V1_FIELDS,
    V2_FIELDS,
    EventFormat,
    RejectReason,
)


@dataclass(frozen=True)
class RecordRef:
    """Where a record came from: what the partial-batch response and the stored document name."""

    shard_id: str
    sequence_number: str
    arrival_ms: int


@dataclass(frozen=True)
class Transaction:
    ref: RecordRef
    transaction_id: str
    timestamp_ms: int
    card_id: str
    amount: float
    features: tuple[float, ...]
    format: EventFormat
    channel: str | None = None
    merchant: str | None = None
    label: int | None = None
    terminal_id: str | None = None  # set = behavioural profile (features computed online)
    # The record's data, for what is kept of it if it must be set aside (e.g. a conflicting id).
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def behavioural(self) -> bool:
        return self.terminal_id is not None

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 (32 hex) of the event's content: a reused id with another hash is a conflict, the
        same event delivered again (replay, retry, duplicate) is not."""
        canonical = orjson.dumps(self.event_fields(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:32]

    @cached_property
    def features_text(self) -> str:
        """The features as comma-separated shortest round-trip numbers: the record's `text/csv` row
        for the endpoints and, in brackets, its JSON array in the stored document. Formatting the
        floats is the costliest step of both, so it is done once (by orjson)."""
        return orjson.dumps(self.features)[1:-1].decode()

    def event_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "transaction_id": self.transaction_id,
            "timestamp": self.timestamp_ms,
            "card_id": self.card_id,
            "amount": self.amount,
        }
        if not self.behavioural:
            fields["features"] = list(self.features)
        for name in ("terminal_id", "channel", "merchant", "label"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        return fields


@dataclass(frozen=True)
class LabelEvent:
    """A fraud report: `label` for `transaction_id`, reported at `reported_at_ms`."""

    ref: RecordRef
    transaction_id: str
    label: int
    reported_at_ms: int
    raw: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class Rejection:
    ref: RecordRef
    reason: RejectReason
    detail: str
    raw: bytes


@dataclass(frozen=True)
class TimeBounds:
    """Accepted event times, inclusive (docs/architecture.md, *Event schema*)."""

    earliest_ms: int
    latest_ms: int


class _Invalid(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def record_ref(record: KinesisStreamRecord, payload: KinesisStreamRecordPayload | None = None) -> RecordRef:
    # The wrappers' own dicts (the same fields their properties return): each property access costs
    # ~1 µs, and this runs for every record.
    data = record.raw_event
    kinesis = payload.raw_event if payload is not None else data["kinesis"]
    # eventID is "<shard id>:<sequence number>" in every Kinesis event Lambda delivers.
    shard_id = data["eventID"].rpartition(":")[0] or "unknown"
    return RecordRef(
        shard_id=shard_id,
        sequence_number=kinesis["sequenceNumber"],
        arrival_ms=int(float(kinesis["approximateArrivalTimestamp"]) * 1000),
    )


def decode_record(
    record: KinesisStreamRecord, bounds: TimeBounds | None = None
) -> Transaction | LabelEvent | Rejection:
    ref = record_ref(record)
    raw = b""
    try:
        raw = _b64decode(record.raw_event["kinesis"]["data"])  # = record.kinesis.data, without wrappers
        event = _parse(raw, ref)  # carries `raw` (built with it: dataclasses.replace cost ~17 µs a record)
        if bounds is not None:
            _check_time(event, bounds)
        if isinstance(event, Transaction):
            # Computed here (the batch needs it for every transaction anyway) so that content the
            # hash cannot encode is this record's rejection, not an error that fails the batch.
            event.content_hash  # noqa: B018
        return event
    except _Invalid as invalid:
        return Rejection(ref=ref, reason=invalid.reason, detail=invalid.detail, raw=raw)
    except Exception as exc:  # noqa: BLE001 - one record's surprise must not fail the whole batch
        return Rejection(
            ref=ref,
            reason=RejectReason.UNDECODABLE,
            detail=f"could not decode: {type(exc).__name__}",
            raw=raw,
        )


def _check_time(event: Transaction | LabelEvent, bounds: TimeBounds) -> None:
    ts = event.timestamp_ms if isinstance(event, Transaction) else event.reported_at_ms
    if not bounds.earliest_ms <= ts <= bounds.latest_ms:
        raise _Invalid(
            RejectReason.TIMESTAMP_OUT_OF_RANGE,
            f"timestamp {ts} outside the accepted window [{bounds.earliest_ms}, {bounds.latest_ms}]",
        )


def _b64decode(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Invalid(RejectReason.BAD_BASE64, "record data is not valid base64") from exc


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN/Infinity by default; the contract says numbers are finite.
    raise _Invalid(RejectReason.NON_FINITE, f"{name} is not a finite number")


def _parse(raw: bytes, ref: RecordRef) -> Transaction | LabelEvent:
    if len(raw) > MAX_RECORD_BYTES:
        raise _Invalid(RejectReason.TOO_LARGE, f"record is {len(raw)} bytes, the limit is {MAX_RECORD_BYTES}")
    try:
        # orjson: strict UTF-8 and RFC 8259 (no NaN/Infinity), ~5x faster than the stdlib here.
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = _parse_slowly(raw)
    if not isinstance(body, dict):
        raise _Invalid(RejectReason.NOT_OBJECT, f"expected a JSON object, got {type(body).__name__}")
    kind = body.get(TYPE_FIELD, TRANSACTION_EVENT_TYPE)
    if kind == LABEL_EVENT_TYPE:
        return _label_event(body, ref, raw)
    if kind != TRANSACTION_EVENT_TYPE:
        raise _Invalid(RejectReason.UNKNOWN_SCHEMA, 'type must be "transaction" or "label"')
    if "terminal_id" in body:  # v2, the usual case: checked first (this runs for every record)
        return _v2(body, ref, raw)
    if _KNOWN_FIELDS.isdisjoint(body):
        if "data" in body and "metadata" in body:
            return _legacy(body, ref, raw)
        raise _Invalid(RejectReason.UNKNOWN_SCHEMA, "not a transaction event (no known fields)")
    return _v1(body, ref, raw)


_KNOWN_FIELDS = frozenset((*V1_FIELDS, *V2_FIELDS))


def _parse_slowly(raw: bytes) -> Any:
    """The stdlib's reading of what orjson refused: it says precisely why (or, for what orjson alone
    refuses, such as integers beyond 64 bits, parses it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Invalid(RejectReason.NOT_UTF8, "record data is not UTF-8") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _Invalid(RejectReason.NOT_JSON, f"not JSON: {exc.msg} at position {exc.pos}") from exc
    except RecursionError as exc:
        raise _Invalid(RejectReason.NOT_JSON, "not JSON: nested too deeply") from exc
    except ValueError as exc:
        # e.g. an integer of more than 4,300 digits (Python's int-from-text limit).
        raise _Invalid(RejectReason.NOT_JSON, "not JSON: a number is too long") from exc


def _v1(body: dict[str, Any], ref: RecordRef, raw: bytes = b"") -> Transaction:
    missing = [name for name in V1_FIELDS if name not in body]
    if missing:
        if missing == ["features"]:
            raise _Invalid(
                RejectReason.MISSING_FIELD, "missing terminal_id (v2) or features (creditcard profile)"
            )
        raise _Invalid(RejectReason.MISSING_FIELD, f"missing {', '.join(missing)}")
    features = _features(body["features"])
    amount = _amount(body["amount"])
    return Transaction(
        ref=ref,
        transaction_id=_transaction_id(body["transaction_id"]),
        timestamp_ms=_timestamp_ms(body["timestamp"]),
        card_id=_entity_id(body["card_id"], "card_id"),
        amount=amount,
        features=features,
        format=EventFormat.V1,
        channel=_optional_text(body, "channel"),
        merchant=_optional_text(body, "merchant"),
        label=_label(body.get("label")),
        raw=raw,
    )


def _v2(body: dict[str, Any], ref: RecordRef, raw: bytes = b"") -> Transaction:
    missing = [name for name in V2_FIELDS if name not in body]
    if missing:
        raise _Invalid(RejectReason.MISSING_FIELD, f"missing {', '.join(missing)}")
    return Transaction(
        ref=ref,
        transaction_id=_transaction_id(body["transaction_id"]),
        timestamp_ms=_timestamp_ms(body["timestamp"]),
        card_id=_entity_id(body["card_id"], "card_id"),
        terminal_id=_entity_id(body["terminal_id"], "terminal_id"),
        amount=_amount(body["amount"]),
        features=(),
        format=EventFormat.V2,
        channel=_optional_text(body, "channel"),
        merchant=_optional_text(body, "merchant"),
        label=_label(body.get("label")),
        raw=raw,
    )


def _label_event(body: dict[str, Any], ref: RecordRef, raw: bytes = b"") -> LabelEvent:
    missing = [name for name in ("transaction_id", "label", "timestamp") if name not in body]
    if missing:
        raise _Invalid(RejectReason.MISSING_FIELD, f"label event: missing {', '.join(missing)}")
    label = _label(body["label"])
    if label is None:
        raise _Invalid(RejectReason.INVALID_FIELD, "label must be 0 or 1")
    return LabelEvent(
        ref=ref,
        transaction_id=_transaction_id(body["transaction_id"]),
        label=label,
        reported_at_ms=_timestamp_ms(body["timestamp"]),
        raw=raw,
    )


def _legacy(body: dict[str, Any], ref: RecordRef, raw: bytes = b"") -> Transaction:
    data, metadata = body["data"], body["metadata"]
    if not isinstance(data, str):
        raise _Invalid(RejectReason.INVALID_FIELD, "data must be a string of comma-separated numbers")
    if not isinstance(metadata, list) or len(metadata) != 3:
        raise _Invalid(RejectReason.INVALID_FIELD, "metadata must be [timestamp, id, source]")
    try:
        numbers = [float(cell) for cell in data.split(",")]
    except ValueError as exc:
        raise _Invalid(RejectReason.INVALID_FIELD, "data must be comma-separated numbers") from exc
    features = _features(numbers)
    timestamp, source_id, source = metadata
    try:
        timestamp_ms = _timestamp_ms(timestamp)
    except _Invalid:
        timestamp_ms = ref.arrival_ms  # the contract's fallback: the record's arrival time
    channel = str(source)[:MAX_LABEL_TEXT]
    if not _encodes(channel):
        raise _Invalid(RejectReason.INVALID_FIELD, "metadata source must be text UTF-8 can encode")
    # Never cut to length: two long ids sharing a prefix would become one card.
    card_id = f"{LEGACY_CARD_PREFIX}{source_id}"
    if source_id is None or source_id == "" or not ENTITY_ID.fullmatch(card_id):
        raise _Invalid(
            RejectReason.INVALID_FIELD,
            f"metadata id must be 1-{MAX_CARD_ID - len(LEGACY_CARD_PREFIX)} characters of [A-Za-z0-9._:-]",
        )
    return Transaction(
        ref=ref,
        # Derived from the sequence number so a replayed record maps to the same document.
        transaction_id=f"kinesis-{ref.sequence_number}",
        timestamp_ms=timestamp_ms,
        card_id=card_id,
        amount=_amount(features[AMOUNT_INDEX]),
        features=features,
        format=EventFormat.LEGACY,
        channel=channel,
        raw=raw,
    )


# json.loads yields exactly these for numbers; bool (a subclass of int) is deliberately not among them.
_NUMBER_TYPES = frozenset({int, float})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _features(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise _Invalid(RejectReason.INVALID_FIELD, "features must be an array of numbers")
    if len(value) != FEATURE_COUNT:
        raise _Invalid(
            RejectReason.WRONG_FEATURE_COUNT, f"features has {len(value)} values, expected {FEATURE_COUNT}"
        )
    # map() over builtins: this runs for every record of every batch.
    if not _NUMBER_TYPES.issuperset(map(type, value)):
        raise _Invalid(RejectReason.INVALID_FIELD, "features must all be numbers")
    try:
        features = tuple(map(float, value))
    except OverflowError as exc:  # an integer beyond the float range
        raise _Invalid(RejectReason.NON_FINITE, "features must be finite numbers") from exc
    if not all(map(math.isfinite, features)):
        raise _Invalid(RejectReason.NON_FINITE, "features must be finite numbers")
    if max(map(abs, features)) > MAX_FEATURE_MAGNITUDE:
        raise _Invalid(
            RejectReason.INVALID_FIELD,
            f"features must be within ±{MAX_FEATURE_MAGNITUDE:g} (the models read float32)",
        )
    return features


def _amount(value: Any) -> float:
    if not _is_number(value):
        raise _Invalid(RejectReason.INVALID_FIELD, "amount must be a number")
    try:
        amount = float(value)
    except OverflowError as exc:  # an integer beyond the float range
        raise _Invalid(RejectReason.NON_FINITE, "amount must be finite") from exc
    if not math.isfinite(amount):
        raise _Invalid(RejectReason.NON_FINITE, "amount must be finite")
    if amount < 0:
        raise _Invalid(RejectReason.INVALID_FIELD, "amount must be >= 0")
    if amount > MAX_AMOUNT:
        raise _Invalid(RejectReason.INVALID_FIELD, f"amount must be at most {MAX_AMOUNT:g}")
    return amount


def _transaction_id(value: Any) -> str:
    if not isinstance(value, str) or not TRANSACTION_ID.fullmatch(value):
        raise _Invalid(RejectReason.INVALID_FIELD, "transaction_id must be 1-128 chars of [A-Za-z0-9._:-]")
    return value


def _entity_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not ENTITY_ID.fullmatch(value):
        raise _Invalid(RejectReason.INVALID_FIELD, f"{name} must be 1-64 chars of [A-Za-z0-9._:-]")
    return value


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_LABEL_TEXT or not _encodes(value):
        raise _Invalid(
            RejectReason.INVALID_FIELD, f"{name} must be a string of at most {MAX_LABEL_TEXT} chars"
        )
    return value


def _encodes(text: str) -> bool:
    """False for text with a lone surrogate (JSON's `"\\ud800"`): the stdlib parser accepts it, UTF-8
    cannot encode it, so neither can the stored document."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _label(value: Any) -> int | None:
    if value is None:
        return None
    if not _is_number(value) or value not in (0, 1):
        raise _Invalid(RejectReason.INVALID_FIELD, "label must be 0 or 1")
    return int(value)


def _timestamp_ms(value: Any) -> int:
    if _is_number(value):
        try:
            finite = math.isfinite(value)
        except OverflowError as exc:  # an integer beyond the float range
            raise _Invalid(RejectReason.INVALID_FIELD, "timestamp is out of range") from exc
        if not finite:
            raise _Invalid(RejectReason.NON_FINITE, "timestamp must be finite")
        if value < 0:
            raise _Invalid(RejectReason.INVALID_FIELD, "timestamp must be >= 0")
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise _Invalid(RejectReason.INVALID_FIELD, "timestamp is not epoch ms or ISO-8601") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        millis = int(parsed.timestamp() * 1000)
        if millis < 0:
            raise _Invalid(RejectReason.INVALID_FIELD, "timestamp must not be before 1970")
        return millis
    raise _Invalid(RejectReason.INVALID_FIELD, "timestamp must be epoch milliseconds or an ISO-8601 string")

"""The event schema on the stream (docs/architecture.md, *Event schema*): field names, limits and the
reasons a record is rejected. The scorer's decoder enforces these; the producer builds events that
satisfy them; tests round-trip the producer's events through the decoder.
"""

from __future__ import annotations

import re
from enum import StrEnum

# creditcard.csv (the ULB dataset): Time, V1…V28, Amount, Class. The v1 event's `features` array.
CREDITCARD_FEATURE_COLUMNS: tuple[str, ...] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount")
CREDITCARD_LABEL_COLUMN = "Class"
FEATURE_COUNT = len(CREDITCARD_FEATURE_COLUMNS)  # 30
AMOUNT_INDEX = CREDITCARD_FEATURE_COLUMNS.index("Amount")

MAX_RECORD_BYTES = 64 * 1024
# Ids become parts of Redis keys: a closed alphabet keeps them from forming other keys or hash tags.
TRANSACTION_ID_PATTERN = r"[A-Za-z0-9._:-]{1,128}"
TRANSACTION_ID = re.compile(TRANSACTION_ID_PATTERN)
MAX_CARD_ID = 64
# A legacy-format record's card: this prefix + its metadata id (which the old demo sent as a number).
LEGACY_CARD_PREFIX = "legacy-"
# card_id and terminal_id name per-entity keys (`card:{<id>}:state`): the same closed alphabet, and
# never `{` or `}`, so the id is always the whole Redis Cluster hash tag.
ENTITY_ID_PATTERN = r"[A-Za-z0-9._:-]{1,64}"
ENTITY_ID = re.compile(ENTITY_ID_PATTERN)
MAX_LABEL_TEXT = 64
# The largest amount accepted: far above any card payment, and small enough that every window's sum and
# mean stays finite (math.fsum overflows near 1.8e308) and every feature fits the float32 the models read.
MAX_AMOUNT = 1e9
# creditcard.csv features (v1, legacy): XGBoost reads float32, where a larger magnitude is infinite and
# the endpoint refuses the whole batch it came in.
MAX_FEATURE_MAGNITUDE = 3.4e38
# The fields whose presence makes a JSON object a (v1) transaction event.
V1_FIELDS: tuple[str, ...] = ("transaction_id", "timestamp", "card_id", "amount", "features")
# v2 (behavioural profile): the features are computed online from the card's and terminal's state.
V2_FIELDS: tuple[str, ...] = ("transaction_id", "timestamp", "card_id", "terminal_id", "amount")
OPTIONAL_TEXT_FIELDS: tuple[str, ...] = ("channel", "merchant")
LABEL_FIELD = "label"
# A fraud report: {"type": "label", "transaction_id", "label": 0|1, "timestamp": when reported}.
TYPE_FIELD = "type"
LABEL_EVENT_TYPE = "label"
TRANSACTION_EVENT_TYPE = "transaction"  # optional on transaction events
LABEL_EVENT_FIELDS: tuple[str, ...] = ("type", "transaction_id", "label", "timestamp")
# Event-time bounds: a timestamp later than now + MAX_CLOCK_SKEW_MS, or older than the raw time
# series' retention (TS_RETENTION_MS), is rejected (a sample dated 2100 would make every later real
# sample "too old" for the series).
MAX_CLOCK_SKEW_MS = 5 * 60 * 1000


class RejectReason(StrEnum):
    """Why a record was rejected: the `reason` of its entry in the rejected stream."""

    BAD_BASE64 = "bad_base64"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    TOO_LARGE = "too_large"
    UNKNOWN_SCHEMA = "unknown_schema"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    WRONG_FEATURE_COUNT = "wrong_feature_count"
    NON_FINITE = "non_finite"
    # Anything else that went wrong decoding one record (never fails the batch).
    UNDECODABLE = "undecodable"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    # A label event naming a transaction Redis does not hold (never seen, or its document expired).
    UNKNOWN_TRANSACTION = "unknown_transaction"
    # A transaction id already stored with different content: kept aside, the first one stays.
    DUPLICATE_ID_CONFLICT = "duplicate_id_conflict"


class EventFormat(StrEnum):
    """The wire format a stored transaction arrived in (its document's `format`)."""

    V1 = "v1"
    V2 = "v2"
    LEGACY = "legacy"

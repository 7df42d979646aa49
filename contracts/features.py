"""THE feature specification, declared once, and its reference per-transaction implementation.

Offline (`fraud_data.features`, a whole dataset at once) and online (the scorer, one transaction at a
time from the entity state kept in Redis) both derive from the entries below; neither hard-codes a
feature name. Standard library only: this file ships into the scorer's image.

Semantics shared by every implementation. `SPEC_VERSION` hashes the spec's data; these rules live
in code, so bump `SEMANTICS_REVISION` with any change to them:

* Event order: transactions are ordered by `(timestamp_ms, transaction_id)` (see `event_key`). Two
  transactions with the same timestamp are ordered by their id (plain string comparison); the
  simulator's zero-padded ids make this the file order.
* A window of `window_ms` with `delay_ms` covers the entity's events with timestamps in
  `(t - delay - window, t - delay]`, where t is the current transaction's timestamp.
  - delay 0: the current transaction is included, and so is every event at exactly t that precedes
    it in event order; events at t that follow it are not (they have not happened yet).
  - delay > 0: only events at or before t - delay count, so the tie rule never matters; their labels
    are assumed known by then (the delay models late fraud reports).
* Empty windows give 0 (counts, sums, means, fraud shares); see each aggregation for its own rule.
* A terminal's known frauds (`fraud_*` aggregations) are the events in its delayed window labelled
  fraud; "since the first fraud" starts at that fraud's timestamp and includes every event of the
  window at that time (ties included), so it does not depend on how same-time events are ordered.
* Means use `math.fsum`, which is exact-then-rounded and so independent of summation order: every
  implementation that averages the same amounts gets the same bits.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

SEMANTICS_REVISION = 2  # bump when a rule in the module docstring changes

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

ENTITIES = ("transaction", "card", "terminal")

# What each aggregation means over the window's events (amounts for cards, labels for terminals).
AGGREGATIONS: dict[str, str] = {
    "amount": "the transaction's amount",
    "is_weekend": "1 if the transaction's UTC day is Saturday or Sunday, else 0",
    "is_night": "1 if the transaction's UTC hour is 0-6 (hour <= 6), else 0",
    "count": "number of the entity's events in the window",
    "sum_amount": "sum of their amounts (0 if none)",
    "mean_amount": "mean of their amounts (0 if none)",
    "fraud_share": "frauds / events in the window (0 if none)",
    "seconds_since_previous": "seconds since the entity's latest earlier event in the window; "
    "the window length in seconds if there is none (the state keeps no older events)",
    "amount_to_mean": "the transaction's amount / the window's mean amount (current included); 1 if it is 0",
    "fraud_count": "frauds in the window (0 if none)",
    "days_since_first_fraud": "days from the window's earliest fraud to the transaction; "
    "delay + window in days if there is none",
    "days_since_last_fraud": "days from the window's latest fraud to the transaction; "
    "delay + window in days if there is none",
    "fraud_share_since_first_fraud": "frauds / the window's events from the earliest fraud's time on "
    "(0 if none): how much of the terminal's traffic has been fraud since it was first hit",
}
_NEEDS_LABEL = {
    "fraud_share",
    "fraud_count",
    "days_since_first_fraud",
    "days_since_last_fraud",
    "fraud_share_since_first_fraud",
}
_WINDOWED = {"count", "sum_amount", "mean_amount", "seconds_since_previous", "amount_to_mean", *_NEEDS_LABEL}
# What an entity's state holds per event besides its timestamp: a card's amounts, a terminal's labels.
# Aggregations that read another value cannot be served from that state.
_ENTITY_AGGREGATIONS = {
    "card": {"count", "sum_amount", "mean_amount", "seconds_since_previous", "amount_to_mean"},
    "terminal": {"count", *_NEEDS_LABEL},
}


@dataclass(frozen=True)
class Feature:
    name: str
    entity: str  # one of ENTITIES
    aggregation: str  # a key of AGGREGATIONS
    window_ms: int = 0
    delay_ms: int = 0

    def __post_init__(self) -> None:
        if self.entity not in ENTITIES or self.aggregation not in AGGREGATIONS:
            raise ValueError(f"bad feature {self.name}: {self.entity}/{self.aggregation}")
        windowed = self.aggregation in _WINDOWED
        if windowed != (self.entity != "transaction") or windowed != (self.window_ms > 0):
            raise ValueError(f"bad feature {self.name}: windowed aggregations need an entity and a window")
        if windowed and self.aggregation not in _ENTITY_AGGREGATIONS[self.entity]:
            raise ValueError(
                f"bad feature {self.name}: a {self.entity}'s state cannot give {self.aggregation}"
            )
        # Current-transaction aggregations need the current transaction inside the window.
        if self.aggregation in {"amount_to_mean", "seconds_since_previous"} and self.delay_ms:
            raise ValueError(f"bad feature {self.name}: {self.aggregation} needs delay 0")
        if self.aggregation in _NEEDS_LABEL and self.delay_ms <= 0:
            raise ValueError(f"bad feature {self.name}: labels are only known after a delay")

    @property
    def retention_ms(self) -> int:
        """How far back the entity's state must reach for this feature."""
        return self.window_ms + self.delay_ms

    @property
    def description(self) -> str:
        return AGGREGATIONS[self.aggregation]


def _handbook_baseline() -> list[Feature]:
    """The Handbook's 15 baseline features (BaselineFeatureTransformation), in its column order."""
    spec = [
        Feature("TX_AMOUNT", "transaction", "amount"),
        Feature("TX_DURING_WEEKEND", "transaction", "is_weekend"),
        Feature("TX_DURING_NIGHT", "transaction", "is_night"),
    ]
    for days in (1, 7, 30):
        spec.append(Feature(f"CUSTOMER_ID_NB_TX_{days}DAY_WINDOW", "card", "count", days * DAY_MS))
        spec.append(Feature(f"CUSTOMER_ID_AVG_AMOUNT_{days}DAY_WINDOW", "card", "mean_amount", days * DAY_MS))
    for days in (1, 7, 30):
        # The 7-day delay: frauds are only known about a week after they happen.
        spec.append(
            Feature(f"TERMINAL_ID_NB_TX_{days}DAY_WINDOW", "terminal", "count", days * DAY_MS, 7 * DAY_MS)
        )
        spec.append(
            Feature(
                f"TERMINAL_ID_RISK_{days}DAY_WINDOW", "terminal", "fraud_share", days * DAY_MS, 7 * DAY_MS
            )
        )
    return spec


def _realtime_extras() -> list[Feature]:
    """Candidates a feature store makes cheap: short windows and the current-vs-usual amount."""
    return [
        Feature("CUSTOMER_ID_NB_TX_10MIN_WINDOW", "card", "count", 10 * MINUTE_MS),
        Feature("CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW", "card", "sum_amount", 10 * MINUTE_MS),
        Feature("CUSTOMER_ID_NB_TX_1HOUR_WINDOW", "card", "count", HOUR_MS),
        Feature("CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW", "card", "sum_amount", HOUR_MS),
        Feature("CUSTOMER_ID_SECONDS_SINCE_PREV_TX", "card", "seconds_since_previous", 30 * DAY_MS),
        Feature("CUSTOMER_ID_AMOUNT_TO_AVG_7DAY_WINDOW", "card", "amount_to_mean", 7 * DAY_MS),
        Feature("CUSTOMER_ID_AMOUNT_TO_AVG_30DAY_WINDOW", "card", "amount_to_mean", 30 * DAY_MS),
        Feature("TERMINAL_ID_NB_TX_10MIN_NODELAY_WINDOW", "terminal", "count", 10 * MINUTE_MS),
        Feature("TERMINAL_ID_NB_TX_1HOUR_NODELAY_WINDOW", "terminal", "count", HOUR_MS),
        Feature("TERMINAL_ID_NB_TX_1DAY_NODELAY_WINDOW", "terminal", "count", DAY_MS),
        # The terminal's known fraud history over the baseline's delayed 30-day window: a compromised
        # terminal keeps being used for weeks, so when and how densely it was hit says more than the
        # share of frauds alone. Read from the state TERMINAL_ID_RISK_30DAY_WINDOW already keeps.
        *(
            Feature(f"TERMINAL_ID_{what}_30DAY_WINDOW", "terminal", aggregation, 30 * DAY_MS, 7 * DAY_MS)
            for what, aggregation in (
                ("NB_FRAUD", "fraud_count"),
                ("DAYS_SINCE_FIRST_FRAUD", "days_since_first_fraud"),
                ("DAYS_SINCE_LAST_FRAUD", "days_since_last_fraud"),
                ("RISK_SINCE_FIRST_FRAUD", "fraud_share_since_first_fraud"),
            )
        ),
    ]


SPEC: tuple[Feature, ...] = (*_handbook_baseline(), *_realtime_extras())
FEATURES: dict[str, Feature] = {f.name: f for f in SPEC}
if len(FEATURES) != len(SPEC):
    raise ValueError("duplicate feature names in SPEC")

BASELINE_FEATURES: tuple[str, ...] = tuple(f.name for f in _handbook_baseline())
EXTRA_FEATURES: tuple[str, ...] = tuple(f.name for f in _realtime_extras())
ALL_FEATURES: tuple[str, ...] = BASELINE_FEATURES + EXTRA_FEATURES

# THE ONE PLACE to choose which extras the production model uses: set by the model protocol
# (training/handbook*.py) to the extras that improve the validation metrics. SPEC_VERSION follows.
MODEL_EXTRA_FEATURES: tuple[str, ...] = (
    # Kept by the ablation on seed 42's validation weeks (docs/model-report.md): +0.005 and +0.012 AP.
    "CUSTOMER_ID_NB_TX_10MIN_WINDOW",
    "CUSTOMER_ID_SUM_AMOUNT_10MIN_WINDOW",
    "CUSTOMER_ID_NB_TX_1HOUR_WINDOW",
    "CUSTOMER_ID_SUM_AMOUNT_1HOUR_WINDOW",
    "CUSTOMER_ID_AMOUNT_TO_AVG_7DAY_WINDOW",
    "CUSTOMER_ID_AMOUNT_TO_AVG_30DAY_WINDOW",
    # Kept by the same rule in session 9 (+0.017 validation AP on its own; docs/model-report.md).
    "TERMINAL_ID_NB_FRAUD_30DAY_WINDOW",
    "TERMINAL_ID_DAYS_SINCE_FIRST_FRAUD_30DAY_WINDOW",
    "TERMINAL_ID_DAYS_SINCE_LAST_FRAUD_30DAY_WINDOW",
    "TERMINAL_ID_RISK_SINCE_FIRST_FRAUD_30DAY_WINDOW",
)
MODEL_FEATURES: tuple[str, ...] = BASELINE_FEATURES + MODEL_EXTRA_FEATURES
if not set(MODEL_EXTRA_FEATURES) <= set(EXTRA_FEATURES) or len(set(MODEL_FEATURES)) != len(MODEL_FEATURES):
    raise ValueError("MODEL_EXTRA_FEATURES must be distinct names from EXTRA_FEATURES")

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "baseline": BASELINE_FEATURES,
    "model": MODEL_FEATURES,
    "all": ALL_FEATURES,
}


def entity_retention_ms(entity: str, names: Iterable[str] = ALL_FEATURES) -> int:
    """The longest window + delay among `names` for `entity` (0 if none): older events can expire."""
    return max((FEATURES[n].retention_ms for n in names if FEATURES[n].entity == entity), default=0)


CARD_RETENTION_MS = entity_retention_ms("card")  # 30 days
TERMINAL_RETENTION_MS = entity_retention_ms("terminal")  # 37 days
RETENTION_MS = max(CARD_RETENTION_MS, TERMINAL_RETENTION_MS)


def spec_version(spec: Sequence[Feature] = SPEC, model_features: Sequence[str] = MODEL_FEATURES) -> str:
    """12 hex digits of the SHA-256 of a canonical dump: any change of a definition changes it."""
    dump = {
        "semantics": SEMANTICS_REVISION,
        "spec": [asdict(f) for f in spec],
        "aggregations": AGGREGATIONS,
        "model_features": list(model_features),
    }
    canonical = json.dumps(dump, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


SPEC_VERSION = spec_version()


def event_key(timestamp_ms: int, transaction_id: str) -> tuple[int, str]:
    """The event order every implementation uses: time, then id for transactions at the same time."""
    return (timestamp_ms, transaction_id)


def resolve(names: Iterable[str] | str) -> tuple[str, ...]:
    """Feature names from a set name (`baseline`, `model`, `all`) or a list of names; KeyError if unknown."""
    if isinstance(names, str):
        if names not in FEATURE_SETS:
            raise KeyError(f"unknown feature set {names!r} (choose from {', '.join(FEATURE_SETS)})")
        return FEATURE_SETS[names]
    names = tuple(names)
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise KeyError(f"unknown features: {', '.join(unknown)}")
    return names


# --- the reference per-transaction implementation --------------------------------------------------


def is_weekend(timestamp_ms: int) -> int:
    # 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
    return int((timestamp_ms // DAY_MS + 3) % 7 >= 5)


def is_night(timestamp_ms: int) -> int:
    return int((timestamp_ms // HOUR_MS) % 24 <= 6)


WindowRule = Callable[[int, float, Sequence[float], "int | None", Sequence[int]], "int | float"]


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def _fraud_times(values: Sequence[int], stamps: Sequence[int]) -> list[int]:
    return [ts for label, ts in zip(values, stamps, strict=True) if label]


def _share_since_first_fraud(values: Sequence[int], stamps: Sequence[int]) -> float:
    frauds = _fraud_times(values, stamps)
    if not frauds:
        return 0.0
    first = min(frauds)
    return len(frauds) / sum(1 for ts in stamps if ts >= first)


def window_rule(feature: Feature) -> WindowRule:
    """The aggregation rule of a windowed feature, as `rule(timestamp_ms, amount, values, previous_ts,
    stamps)`.

    `values`: amounts (card) or 0/1 labels (terminal) of the events in the window, in any order, the
    current transaction included when the delay is 0. `stamps`: their timestamps, aligned with
    `values`; only the rules `needs_stamps` names read them, so a caller may pass () for others.
    `previous_ts`: the timestamp of the latest event in the window before the current transaction
    (None if none). The reference below and the offline computation both evaluate these, so each
    rule exists once; resolving the rule once per feature keeps the per-transaction cost to one call.
    """
    agg = feature.aggregation
    # Nothing older is kept, so "none" = all of it. Days, not seconds, for the fraud ages: SageMaker's
    # Random Cut Forest cuts a dimension with a chance proportional to its range, and a range of
    # 3.2 million seconds would have it cut on little else.
    none = (feature.window_ms + feature.delay_ms) / 1000
    none_days = (feature.window_ms + feature.delay_ms) / DAY_MS
    if agg == "count":
        return lambda t, amount, values, previous_ts, stamps: len(values)
    if agg == "fraud_share":
        return lambda t, amount, values, previous_ts, stamps: sum(values) / len(values) if values else 0.0
    if agg == "fraud_count":
        return lambda t, amount, values, previous_ts, stamps: sum(values)
    if agg == "days_since_first_fraud":
        return lambda t, amount, values, previous_ts, stamps: (
            (t - min(frauds)) / DAY_MS if (frauds := _fraud_times(values, stamps)) else none_days
        )
    if agg == "days_since_last_fraud":
        return lambda t, amount, values, previous_ts, stamps: (
            (t - max(frauds)) / DAY_MS if (frauds := _fraud_times(values, stamps)) else none_days
        )
    if agg == "fraud_share_since_first_fraud":
        return lambda t, amount, values, previous_ts, stamps: _share_since_first_fraud(values, stamps)
    if agg == "sum_amount":
        return lambda t, amount, values, previous_ts, stamps: math.fsum(values)
    if agg == "mean_amount":
        return lambda t, amount, values, previous_ts, stamps: _mean(values)
    if agg == "amount_to_mean":
        return lambda t, amount, values, previous_ts, stamps: (
            amount / mean if (mean := _mean(values)) else 1.0
        )
    if agg == "seconds_since_previous":
        return lambda t, amount, values, previous_ts, stamps: (
            (t - previous_ts) / 1000 if previous_ts is not None else none
        )
    raise ValueError(f"no window rule for aggregation {agg!r}")


_NEEDS_STAMPS = {"days_since_first_fraud", "days_since_last_fraud", "fraud_share_since_first_fraud"}


def needs_stamps(feature: Feature) -> bool:
    """Whether the feature's rule reads the window's timestamps (else callers may skip slicing them)."""
    return feature.aggregation in _NEEDS_STAMPS


def window_value(
    feature: Feature,
    timestamp_ms: int,
    amount: float,
    values: Sequence[float],
    previous_ts: int | None,
    stamps: Sequence[int] = (),
) -> int | float:
    """One windowed feature from the values in its window (see `window_rule`)."""
    return window_rule(feature)(timestamp_ms, amount, values, previous_ts, stamps)


def transaction_value(feature: Feature, timestamp_ms: int, amount: float) -> int | float:
    agg = feature.aggregation
    if agg == "amount":
        return amount
    if agg == "is_weekend":
        return is_weekend(timestamp_ms)
    if agg == "is_night":
        return is_night(timestamp_ms)
    raise ValueError(f"no transaction rule for aggregation {agg!r}")


def compute_vector(
    timestamp_ms: int,
    amount: float,
    card_history: Sequence[tuple[int, float]],
    terminal_history: Sequence[tuple[int, int | None]],
    names: Sequence[str] = MODEL_FEATURES,
) -> list[int | float]:
    """The feature vector of one transaction, in the order of `names`, from its entities' state.

    card_history: `(timestamp_ms, amount)` of the card's transactions that precede this one in
    event order (`event_key`), in any order; events older than the card's retention may be present
    (ignored) or expired. terminal_history: `(timestamp_ms, is_fraud)` of the terminal's preceding
    transactions; is_fraud must be 0/1 for events at or before t - delay (labels are known by then)
    and may be None after that (such events are only counted). Neither history includes the
    current transaction: the rules add it. An event later than t is a caller error (ValueError).
    """
    for history in (card_history, terminal_history):
        for ts, _ in history:
            if ts > timestamp_ms:
                raise ValueError(f"history event at {ts} is after the transaction at {timestamp_ms}")
    vector: list[int | float] = []
    # Features sharing a window cut it once.
    windows: dict[tuple[str, int, int], tuple[list, int | None, list[int]]] = {}
    for name in names:
        feature = FEATURES[name]
        if feature.entity == "transaction":
            vector.append(transaction_value(feature, timestamp_ms, amount))
            continue
        key = (feature.entity, feature.window_ms, feature.delay_ms)
        if key not in windows:
            windows[key] = _cut(
                feature, timestamp_ms, amount, card_history if feature.entity == "card" else terminal_history
            )
        values, previous_ts, stamps = windows[key]
        if feature.aggregation in _NEEDS_LABEL and None in values:
            raise ValueError(f"{name}: a label inside the delayed window is unknown")
        vector.append(window_value(feature, timestamp_ms, amount, values, previous_ts, stamps))
    return vector


def _cut(
    feature: Feature, timestamp_ms: int, amount: float, history: Sequence[tuple[int, float | int | None]]
):
    """The values inside the feature's window, the latest earlier timestamp there, and their timestamps."""
    upper = timestamp_ms - feature.delay_ms
    lower = upper - feature.window_ms
    values = []
    stamps = []
    previous_ts = None
    for ts, value in history:
        if lower < ts <= upper:
            values.append(value)
            stamps.append(ts)
            if previous_ts is None or ts > previous_ts:
                previous_ts = ts
    if feature.delay_ms == 0:
        # The current transaction is in its own window; its label is unknown (and never read).
        values.append(amount if feature.entity == "card" else 0)
        stamps.append(timestamp_ms)
    return values, previous_ts, stamps


def compute_dict(
    timestamp_ms: int,
    amount: float,
    card_history: Sequence[tuple[int, float]],
    terminal_history: Sequence[tuple[int, int | None]],
    names: Sequence[str] = MODEL_FEATURES,
) -> dict[str, int | float]:
    """`compute_vector` keyed by feature name (what the transaction document stores)."""
    return dict(
        zip(names, compute_vector(timestamp_ms, amount, card_history, terminal_history, names), strict=True)
    )

"""A seeded generator of creditcard.csv-shaped rows, for when the real dataset is not at hand.

The ULB dataset's V1…V28 are PCA components: roughly centred, with frauds far from the centre on a
handful of them (V14, V12, V10, V17, V4, V11, V3 in the real data). We mimic that: legitimate rows
are standard normal per component, fraudulent rows are shifted on those components with extra
spread, so a model has something real to learn but cannot separate the classes perfectly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from fraud_data.schema import COLUMNS

DEFAULT_FRAUD_RATE = 0.0017  # 492 / 284,807 in the real data
SECONDS_PER_ROW = 0.6  # the real data covers ~48 h in 284,807 rows

# component index (1-based V number) -> mean shift for fraudulent rows, in legit standard deviations
FRAUD_SHIFTS: dict[int, float] = {14: -2.6, 12: -2.2, 10: -2.0, 17: -2.3, 4: 1.8, 11: 1.6, 3: -1.9, 7: -1.2}
FRAUD_SPREAD = 1.8  # fraudulent rows vary more on every component


def generate_rows(
    count: int, *, seed: int = 42, fraud_rate: float = DEFAULT_FRAUD_RATE
) -> Iterator[list[float]]:
    """Yield `count` rows in `fraud_data.schema.COLUMNS` order; the last value is Class (0.0 or 1.0)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    if not 0.0 <= fraud_rate <= 1.0:
        raise ValueError("fraud_rate must be between 0 and 1")
    rng = random.Random(seed)
    for i in range(count):
        is_fraud = rng.random() < fraud_rate
        yield _row(rng, i, is_fraud)


def _row(rng: random.Random, index: int, is_fraud: bool) -> list[float]:
    time_s = round(index * SECONDS_PER_ROW + rng.uniform(0, SECONDS_PER_ROW), 1)
    components = []
    for v in range(1, 29):
        if is_fraud:
            value = rng.gauss(FRAUD_SHIFTS.get(v, 0.0), FRAUD_SPREAD)
        else:
            value = rng.gauss(0.0, 1.0)
        components.append(round(value, 6))
    # Amounts are log-normal; frauds skew towards small "card testing" amounts with a long tail.
    amount = math.exp(rng.gauss(2.0, 1.6) if is_fraud else rng.gauss(3.0, 1.3))
    return [time_s, *components, round(min(amount, 25_000.0), 2), 1.0 if is_fraud else 0.0]


def header() -> list[str]:
    return list(COLUMNS)

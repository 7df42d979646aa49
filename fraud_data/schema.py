"""The creditcard.csv layout (ULB dataset): Time, V1…V28, Amount, Class — as the event schema's
`features` array defines it (contracts.events)."""

from contracts.events import (
    AMOUNT_INDEX,
    CREDITCARD_FEATURE_COLUMNS,
    CREDITCARD_LABEL_COLUMN,
    FEATURE_COUNT,
)

FEATURE_COLUMNS = CREDITCARD_FEATURE_COLUMNS
LABEL_COLUMN = CREDITCARD_LABEL_COLUMN
COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, LABEL_COLUMN)

__all__ = ["AMOUNT_INDEX", "COLUMNS", "FEATURE_COLUMNS", "FEATURE_COUNT", "LABEL_COLUMN"]

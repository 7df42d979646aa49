"""The creditcard.csv layout (ULB dataset): Time, V1…V28, Amount, Class."""

FEATURE_COLUMNS: tuple[str, ...] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount")
LABEL_COLUMN = "Class"
COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, LABEL_COLUMN)
FEATURE_COUNT = len(FEATURE_COLUMNS)  # 30; the scoring Lambda checks the same number
AMOUNT_INDEX = FEATURE_COLUMNS.index("Amount")

"""The verdict rule (docs/architecture.md, *Verdict*) and the names every reader of verdicts uses."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    FRAUD = "fraud"
    SUSPICIOUS = "suspicious"
    LEGIT = "legit"


VERDICTS: tuple[str, ...] = tuple(v.value for v in Verdict)


def verdict_for(
    fraud_probability: float, anomaly_score: float, *, fraud_threshold: float, anomaly_threshold: float
) -> Verdict:
    if fraud_probability >= fraud_threshold:
        return Verdict.FRAUD
    if anomaly_score >= anomaly_threshold:
        return Verdict.SUSPICIOUS
    return Verdict.LEGIT

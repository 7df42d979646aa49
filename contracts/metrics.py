"""CloudWatch metrics the scorer publishes (docs/architecture.md, *Metrics*): namespace, service and
metric names, shared by the scorer, the alarms and the CloudWatch dashboard."""

from __future__ import annotations

from contracts.verdicts import Verdict

NAMESPACE = "FraudDetection"
SERVICE = "fraud-scorer"

RECORDS_SCORED = "RecordsScored"
RECORDS_REJECTED = "RecordsRejected"
RECORDS_RETRIED = "RecordsRetried"
ENDPOINT_LATENCY = "EndpointLatency"  # extra dimension `endpoint` = fraud | anomaly
ENDPOINT_DIMENSION = "endpoint"
SERVICE_DIMENSION = "service"


def verdict_metric(verdict: Verdict | str) -> str:
    """`VerdictFraud`, `VerdictSuspicious`, `VerdictLegit`."""
    return f"Verdict{Verdict(verdict).value.capitalize()}"


# Issue 12/14.
LABELS_APPLIED = "LabelsApplied"  # label events that changed a stored transaction's report (and its terminal)
DUPLICATE_ID_CONFLICTS = "DuplicateIdConflicts"  # a reused transaction id with different content
FEATURE_SPEC_MISMATCH = "FeatureSpecMismatch"  # records refused: FEATURE_SPEC_VERSION != the scorer's spec

# Issue 13 (bounded memory): Redis's `used_memory` as a percentage of its `maxmemory` (INFO memory),
# published by the scorer at most once a minute per container; nothing when maxmemory is 0 (unlimited).
# The alarm in stacks/monitoring.py fires before Redis refuses writes (`noeviction`).
REDIS_MEMORY_USED_PERCENT = "RedisMemoryUsedPercent"

"""Redis's used-memory share for the memory alarm (issue 13): `used_memory / maxmemory` from
`INFO memory`, published as `RedisMemoryUsedPercent` at most once per `SAMPLE_INTERVAL_S` per container.

Why the scorer reports it: Redis runs `maxmemory-policy noeviction`, so when `used_memory` reaches
`maxmemory` it refuses writes and every batch is retried until memory is freed. The alarm
(stacks/monitoring.py) must fire well before that, in both Redis modes; the scorer is the one
component that talks to Redis in both (the self-hosted task has no CloudWatch agent, an external
provider none of ours), and it already publishes metrics.

- Cheap: one `INFO memory` (O(1), a ~1 KB reply) per container per minute, not one per batch.
- Never in the batch's way: it runs after the batch's response is decided; any failure (no `+info`
  in an older external ACL, a timeout, an unexpected reply) is logged once per failure streak and
  skipped until the next interval. Nothing here raises.
- `maxmemory` 0 means no limit (some external providers; Redis Enterprise/Cloud report other INFO
  fields and may omit it): there is no share, so nothing is published (logged once).
- `used_memory` is what Redis compares with `maxmemory`, less its replication/AOF buffers, so the
  share slightly overstates how close Redis is to refusing writes: the safe side for an alarm.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from contracts import metrics as metric_names
from contracts import scorer_env
from fraud_scorer.metrics import publish_redis_memory
from fraud_scorer.redis_connection import RedisConnector

logger = Logger(service=os.environ.get(scorer_env.POWERTOOLS_SERVICE_NAME, metric_names.SERVICE), child=True)

# The alarm evaluates 5-minute periods; one sample a minute per container gives each period several
# points (more with several shards' containers) at a cost nobody can measure.
SAMPLE_INTERVAL_S = 60.0


@dataclass(frozen=True)
class MemoryReading:
    used_bytes: int
    # 0 = no limit (or not reported).
    max_bytes: int

    @property
    def used_percent(self) -> float | None:
        """`used_memory` as a percentage of `maxmemory`, 2 decimals; None without a limit."""
        if self.max_bytes <= 0:
            return None
        return round(100.0 * self.used_bytes / self.max_bytes, 2)


def read_memory(client: Any) -> MemoryReading:
    """`INFO memory` (the only INFO the scorer's ACL user needs; redis-py parses it into a dict)."""
    info = client.info("memory")
    return MemoryReading(used_bytes=int(info["used_memory"]), max_bytes=int(info.get("maxmemory") or 0))


class RedisMemoryGauge:
    """Publishes the share into the invocation's metric set when one is due (one per container)."""

    def __init__(self, *, interval_s: float | None = None, clock: Callable[[], float] = time.time) -> None:
        # Wall-clock time, not monotonic: Lambda freezes an idle container, and a monotonic clock need
        # not advance while it is frozen, which would postpone the next sample indefinitely.
        self._interval_s = SAMPLE_INTERVAL_S if interval_s is None else interval_s
        self._clock = clock
        self._next_at: float | None = None
        self._failing = False
        self._unlimited_logged = False

    def _due(self, now: float) -> bool:
        if self._next_at is None:
            return True
        # A clock set back by more than an interval must not silence the gauge until it catches up.
        return now >= self._next_at or now < self._next_at - self._interval_s

    def publish_if_due(self, connector: RedisConnector, metrics: Metrics) -> float | None:
        """The published percentage, or None (not due, no limit, or INFO failed). Never raises."""
        now = self._clock()
        if not self._due(now):
            return None
        # An attempt counts whatever its outcome: a failing INFO costs one try per interval, not per batch.
        self._next_at = now + self._interval_s
        try:
            reading = connector.run(read_memory)
            percent = reading.used_percent
            if percent is None:
                if not self._unlimited_logged:
                    logger.info(
                        f"Redis reports no maxmemory (unlimited): {metric_names.REDIS_MEMORY_USED_PERCENT} "
                        "is not published",
                        extra={"redis_used_memory": reading.used_bytes},
                    )
                    self._unlimited_logged = True
                self._failing = False
                return None
            publish_redis_memory(metrics, percent)
        except Exception as error:  # noqa: BLE001 - a metric must never fail or retry a batch
            if not self._failing:
                logger.warning(
                    "Redis memory share not published: INFO memory failed (Redis unavailable, or the "
                    "scorer's Redis user lacks +info: docs/redis.md); retrying once per interval",
                    extra={"error": type(error).__name__, "detail": str(error)[:200]},
                )
            self._failing = True
            return None
        self._failing = False
        return percent

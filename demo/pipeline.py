"""The whole pipeline on one machine, as one object: used by `make demo`, the e2e tests and the benchmark.

    with LocalPipeline() as pipeline:
        summary = pipeline.produce(count=2000)            # the real producer, library API
        pipeline.wait_until_caught_up(timeout_s=120)
        print(pipeline.tally().summary_line(summary.sent))

Parts, each the real thing or the local twin the architecture names (docs/architecture.md):
Redis Stack (started here, or the caller's `redis_url`), moto's Kinesis server with an N-shard
stream, the locally trained models behind the SageMaker-runtime stand-in, and the local event source
mapping invoking `lambda_src/handler.handler` unchanged. The scorer's configuration goes through the
environment, as in Lambda; `stop()` puts the environment back.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from contracts import scorer_env
from contracts import trigger as trigger_defaults
from demo import tally as tallies
from emulators.kinesis_server import REGION, LocalKinesisServer, read_stream
from emulators.kinesis_trigger import (
    KinesisTrigger,
    OnFailureDestination,
    ShardCheckpoints,
    TriggerSettings,
)
from emulators.redis_stack import REPO_ROOT, RedisStackServer
from emulators.sagemaker_runtime import SageMakerRuntimeServer, rcf_endpoint, xgboost_endpoint
from fraud_data.simulator import SimulationConfig
from fraud_data.transactions import Transactions

DEMO_DIR = REPO_ROOT / ".demo"
DEFAULT_MODELS_DIR = REPO_ROOT / "artifacts" / "models"  # shared with `python -m training --source`
# The demo's world: the Handbook's generator at 2,000 cards and 4,000 terminals (its ratio of cards
# to terminals, so per-terminal rates match the Handbook's), 45 days: 38 to backfill (the longest
# window + delay is 37 days), the rest to stream.
DEFAULT_WORLD = SimulationConfig(customers=2_000, terminals=4_000, days=45, seed=42)
# In a live run time is compressed (hours of simulated activity in seconds): reports follow 2 s later.
DEFAULT_LIVE_LABEL_DELAY_MS = 2_000
FRAUD_ENDPOINT = "fraud-detection-xgboost"
ANOMALY_ENDPOINT = "fraud-detection-rcf"

# The deployed trigger's settings (contracts/trigger.py: batch size, retries bounded by the records'
# age), bisect and ReportBatchItemFailures as the stack sets them. One deliberate difference: no
# batching window (the stack waits up to 1 s to fill a batch; at the demo's rate every batch would
# wait that second, and the latency figures would be mostly that wait).
DEFAULT_TRIGGER = TriggerSettings(
    batch_size=trigger_defaults.BATCH_SIZE,
    batching_window_s=0.0,
    bisect_on_error=True,
    maximum_retry_attempts=trigger_defaults.RETRY_ATTEMPTS,
    maximum_record_age_s=trigger_defaults.MAX_RECORD_AGE_SECONDS,
    report_batch_item_failures=True,
    poll_interval_s=0.1,
)


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    redis_url: str | None = None  # None: start a Redis Stack server for the pipeline's lifetime
    redis_persistence: bool = False  # append-only file, so a killed server restarts with its data
    stream_name: str = "fraud-transactions"
    shards: int = 4
    # moto in its own process (no shared interpreter lock; no faster on 2 busy cores, measured).
    kinesis_in_separate_process: bool = False
    trigger: TriggerSettings = DEFAULT_TRIGGER
    models_dir: Path = DEFAULT_MODELS_DIR
    work_dir: Path | None = None  # trigger checkpoints and on-failure records; None: a temp dir
    sagemaker_latency_s: float = 0.0
    # A Lambda container runs one invocation at a time and the handler's per-container state
    # (clients, metrics buffer) assumes it: shards are polled in parallel, invocations take turns.
    serialize_invocations: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    # The simulated world the transactions come from (the demo backfills its first days, then
    # streams the rest); the models are trained on another world of the same size.
    world: SimulationConfig = field(default_factory=lambda: DEFAULT_WORLD)


def check_redis(url: str) -> None:
    """Fail at once, with a clear message, on a Redis the scorer cannot use (rather than retrying)."""
    with redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, protocol=2) as client:
        try:
            modules = {_text(module[b"name"]).lower() for module in client.module_list()}
        except redis.RedisError as exc:
            raise RuntimeError(f"cannot use the Redis at REDIS_URL: {exc}") from exc
    # MODULE LIST names: ReJSON, search (older: ft), timeseries; Redis 8 has all three built in.
    missing = {"ReJSON": {"rejson"}, "Search": {"search", "ft"}, "TimeSeries": {"timeseries"}}
    absent = [name for name, aliases in missing.items() if not aliases & modules]
    if absent and not _is_redis_8_or_later(url):
        raise RuntimeError(f"the Redis at REDIS_URL lacks {', '.join(absent)} (use Redis Stack or Redis 8)")


def _is_redis_8_or_later(url: str) -> bool:
    with redis.Redis.from_url(url, socket_timeout=5, protocol=2) as client:
        version = _text(client.info("server").get("redis_version", "0"))
    return int(version.split(".")[0]) >= 8


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_local_models(models_dir: Path, world: SimulationConfig | None = None):
    """The locally trained models on MODEL_FEATURES (trained on first use on a simulated world of the
    same size as `world`, another seed; then cached)."""
    from training.streamed_twin import load_or_train, training_world  # xgboost and sklearn: only when needed

    world = world or DEFAULT_WORLD
    return load_or_train(models_dir, training_world(world.customers, world.terminals))


def _scorer_handler() -> Callable[[dict[str, Any], Any], Any]:
    from fraud_scorer import entry  # the Lambda function itself, unchanged

    # A previous pipeline in this process may have left clients for other servers behind.
    entry.reset_container_state()
    return entry.handler


class _FunctionOutput:
    """sys.stdout while the pipeline runs: what the function prints during an invocation (Powertools'
    EMF metrics use print) goes to a log file, as Lambda sends it to CloudWatch Logs; every other
    thread's output goes to the terminal as before."""

    def __init__(self, terminal, log_file) -> None:
        self.terminal = terminal
        self.log_file = log_file
        self._local = threading.local()

    def _target(self):
        return self.log_file if getattr(self._local, "in_function", False) else self.terminal

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str):
        return getattr(self.terminal, name)

    def wrap(self, handler):
        def invoke(event, context):
            self._local.in_function = True
            try:
                return handler(event, context)
            finally:
                self._local.in_function = False

        return invoke


def _one_at_a_time(handler):
    lock = threading.Lock()

    def invoke(event, context):
        with lock:
            return handler(event, context)

    return invoke


class LocalPipeline:
    """Start, drive and stop every part; see the module docstring."""

    def __init__(self, settings: PipelineSettings | None = None, *, handler=None, models=None) -> None:
        """`handler` replaces the scoring Lambda (benchmarks' baselines); `models` replaces the
        locally trained ones (anything with fraud_probability, anomaly_score and both thresholds)."""
        self.settings = settings or PipelineSettings()
        self.redis_server: RedisStackServer | None = None
        self.redis_url = self.settings.redis_url or ""
        self.kinesis = LocalKinesisServer(separate_process=self.settings.kinesis_in_separate_process)
        self.sagemaker: SageMakerRuntimeServer | None = None
        self.models = models
        self.trigger: KinesisTrigger | None = None
        self.on_failure: OnFailureDestination | None = None
        self._handler = handler
        self._saved_env: dict[str, str | None] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._world_source = None
        self._work_dir: Path = Path(".")
        self._output: _FunctionOutput | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, *, on_step: Callable[[str], None] = lambda _: None) -> LocalPipeline:
        try:
            self._start(on_step)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, on_step: Callable[[str], None]) -> None:
        settings = self.settings
        if not settings.redis_url:
            on_step("starting Redis Stack")
            self.redis_server = RedisStackServer(persistence=settings.redis_persistence).start()
            self.redis_url = self.redis_server.url
        else:
            check_redis(self.redis_url)
        on_step(f"starting the local Kinesis API ({settings.shards} shards)")
        self.kinesis.start()
        self.kinesis.create_stream(settings.stream_name, shard_count=settings.shards)
        if self.models is None:
            on_step("loading the local models (trained on first run)")
            self.models = load_local_models(settings.models_dir, settings.world)
        self.sagemaker = SageMakerRuntimeServer(
            {
                FRAUD_ENDPOINT: xgboost_endpoint(self.models.fraud_probability),
                ANOMALY_ENDPOINT: rcf_endpoint(self.models.anomaly_score),
            }
        ).start()
        self.sagemaker.latency_s = settings.sagemaker_latency_s
        self._set_env(self.scorer_env())
        work_dir = settings.work_dir
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pipeline-")
            work_dir = Path(self._tmp.name)
        work_dir.mkdir(parents=True, exist_ok=True)
        self._work_dir = work_dir
        self.on_failure = OnFailureDestination(work_dir / "on-failure.jsonl")
        on_step("starting the event source mapping")
        handler = self._handler or _scorer_handler()
        self._output = _FunctionOutput(sys.stdout, (work_dir / "lambda-stdout.log").open("a"))
        sys.stdout = self._output
        self.trigger = KinesisTrigger(
            kinesis_client=self.kinesis.client(),
            stream_name=settings.stream_name,
            handler=self._output.wrap(_one_at_a_time(handler) if settings.serialize_invocations else handler),
            settings=settings.trigger,
            checkpoints=ShardCheckpoints(work_dir / "checkpoints.json"),
            on_failure=self.on_failure,
        ).start()

    def stop(self) -> None:
        if self.trigger is not None:
            self.trigger.stop()
        if self.sagemaker is not None:
            self.sagemaker.stop()
        if self.kinesis.running:
            self.kinesis.delete_stream(self.settings.stream_name)
            self.kinesis.stop()
        if self.redis_server is not None:
            self.redis_server.stop()
        self._restore_env()
        if self._output is not None:
            if sys.stdout is self._output:
                sys.stdout = self._output.terminal
            self._output.log_file.close()
            self._output = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalPipeline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def scorer_env(self) -> dict[str, str]:
        """The Lambda's environment (docs/architecture.md), pointed at the local parts."""
        # The skew guard: the scorer refuses to score with a feature spec other than the models'.
        trained_with = getattr(self.models, "metadata", {}).get("feature_spec_version")
        spec = {scorer_env.FEATURE_SPEC_VERSION: trained_with} if trained_with else {}
        return {
            **spec,
            scorer_env.REDIS_URL: self.redis_url,
            scorer_env.FRAUD_ENDPOINT_NAME: FRAUD_ENDPOINT,
            scorer_env.ANOMALY_ENDPOINT_NAME: ANOMALY_ENDPOINT,
            scorer_env.FRAUD_THRESHOLD: repr(float(self.models.fraud_threshold)),
            scorer_env.ANOMALY_THRESHOLD: repr(float(self.models.anomaly_threshold)),
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.sagemaker.url,
            # moto and the stand-in accept any key pair; these are placeholders, not credentials.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105
            "AWS_SESSION_TOKEN": "testing",  # noqa: S105
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            # INFO logs (one line per rejected record) would drown the demo's output; warnings show.
            # The EMF metrics go to <work_dir>/lambda-stdout.log (see _FunctionOutput).
            scorer_env.POWERTOOLS_LOG_LEVEL: "WARNING",
            "POWERTOOLS_TRACE_DISABLED": "true",
            **self.settings.extra_env,
        }

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    # -- driving ---------------------------------------------------------------------------------
    def world_source(self):
        """The simulated world as the producer's `--source simulated` reads it (same key, so the same
        checkpoint continues it); simulated once, on first use."""
        from producer.source import SimulatedSource

        if self._world_source is None:
            self._world_source = SimulatedSource(self.settings.world)
        return self._world_source

    def world(self) -> Transactions:
        return self.world_source().load()

    @property
    def checkpoint_path(self) -> Path:
        """Where the producer notes how far into the world it got: every `produce()` continues from
        there, and so does the demo's printed "send more" command."""
        return self._work_dir / "producer-checkpoint.json"

    def produce(
        self,
        *,
        count: int,
        rate: float | None = None,
        progress=None,
        source: str | None = None,
        seed: int = 42,
        label_delay_ms: int = DEFAULT_LIVE_LABEL_DELAY_MS,
        labels: str | None = None,
    ):
        """Send the world's next `count` transactions with the real producer, stamped with their send
        times, each fraud followed by its label event `label_delay_ms` later; returns its Summary.
        `source="synthetic"` sends the i.i.d. creditcard-shaped test rows instead (`seed`)."""
        from producer.checkpoint import CheckpointStore
        from producer.replay import Producer
        from producer.source import open_source

        if source is not None:
            return Producer(
                source=open_source(source, seed=seed),
                stream_name=self.settings.stream_name,
                kinesis_client=self.kinesis.client(),
                count=count,
                rate=rate,
                progress=progress,
            ).run()
        extra = {"labels": labels} if labels else {}
        return Producer(
            source=self.world_source(),
            stream_name=self.settings.stream_name,
            kinesis_client=self.kinesis.client(),
            count=count,
            rate=rate,
            progress=progress,
            checkpoint=CheckpointStore(self.checkpoint_path),
            resume=True,
            shift_to_now=True,
            label_delay_ms=label_delay_ms,
            **extra,
        ).run()

    def backfill(self, days: int, *, end_ms: int | None = None):
        """Warm start: the world's first `days` days into the feature state in bulk, shifted so the
        last of them is just before `end_ms` (default now), and the producer's checkpoint set after
        them, so the next `produce()` goes on with the transactions that follow. Returns
        (BackfillStats, the history as loaded - with the shifted timestamps)."""
        from demo.backfill import history, load_history, shift_to_end_at
        from producer.checkpoint import Checkpoint, CheckpointStore
        from producer.source import Position

        rows = history(self.world(), days)
        loaded = shift_to_end_at(rows, end_ms if end_ms is not None else now_ms())
        with self.redis_client() as client:
            stats = load_history(client, loaded)
        source = self.world_source()
        CheckpointStore(self.checkpoint_path).save(
            Checkpoint(source.key, source.order, resume_at=Position(0, len(rows)))
        )
        return stats, loaded

    def put_raw(self, data: bytes, *, partition_key: str) -> str:
        """Write one record as-is (e.g. a poison record); returns its sequence number."""
        response = self.kinesis.client().put_record(
            StreamName=self.settings.stream_name, Data=data, PartitionKey=partition_key
        )
        return response["SequenceNumber"]

    def wait_until_caught_up(self, timeout_s: float) -> bool:
        """True once every shard has been read to its end with nothing left in flight."""
        return self.trigger.wait_until_idle(timeout_s)

    # -- reading back ----------------------------------------------------------------------------
    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=10, protocol=2)

    def sent_records(self) -> list[dict]:
        """Every record Kinesis accepted into the stream (GetRecords dicts with ShardId)."""
        return read_stream(self.kinesis.client(), self.settings.stream_name)

    def tally(self, *, since_ms: int = 0) -> tallies.Tally:
        with self.redis_client() as client:
            return tallies.count(client, since_ms=since_ms)

    def audit(self, transaction_ids) -> tallies.Audit:
        with self.redis_client() as client:
            return tallies.audit(client, transaction_ids)


def now_ms() -> int:
    return int(time.time() * 1000)

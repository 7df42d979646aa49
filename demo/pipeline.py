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

DEMO_DIR = REPO_ROOT / ".demo"
DEFAULT_MODELS_DIR = REPO_ROOT / "artifacts" / "models"  # shared with `make train`
FRAUD_ENDPOINT = "fraud-detection-xgboost"
ANOMALY_ENDPOINT = "fraud-detection-rcf"

# What the CDK stack configures for the real trigger (batches of up to 500, bisect, bounded
# retries). Retries back off up to 3 s, so ~10 retries ride out a restart of Redis of several seconds.
DEFAULT_TRIGGER = TriggerSettings(
    batch_size=500,
    batching_window_s=0.0,
    bisect_on_error=True,
    maximum_retry_attempts=10,
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


def _check_redis(url: str) -> None:
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


def load_local_models(models_dir: Path):
    """The locally trained models (trained on synthetic data on first use, then cached)."""
    from training.local_models import load_or_train  # xgboost and sklearn: only when needed

    return load_or_train(models_dir, source="synthetic")


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
            _check_redis(self.redis_url)
        on_step(f"starting the local Kinesis API ({settings.shards} shards)")
        self.kinesis.start()
        self.kinesis.create_stream(settings.stream_name, shard_count=settings.shards)
        if self.models is None:
            on_step("loading the local models (trained on first run)")
            self.models = load_local_models(settings.models_dir)
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
        return {
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
    def produce(self, *, count: int, rate: float | None = None, seed: int = 42, progress=None):
        """Send `count` synthetic transactions with the real producer; returns its Summary."""
        from producer.replay import send

        return send(
            self.settings.stream_name,
            source="synthetic",
            count=count,
            rate=rate,
            seed=seed,
            kinesis_client=self.kinesis.client(),
            progress=progress,
        )

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

"""A local Kinesis API: moto's server on 127.0.0.1, plus stream creation with N shards.

The producer, the local trigger and the tests talk to it over HTTP with ordinary boto3 clients
(`endpoint_url=server.endpoint_url`), exactly as they talk to AWS.

`separate_process=True` runs moto as its own process (`python -m moto.server`): the pipeline's
Python then does not share one interpreter lock with moto's request handling, and each server has
its own state. In-process (the default, quicker to start) moto keeps its state per process, so two
servers in one process share streams: give each its own stream name.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import time

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from emulators.redis_stack import free_port

REGION = "us-east-1"
# moto accepts any key pair; these are placeholders, not credentials.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # noqa: S105
# Standard retry mode: throttling and 5xx are retried with capped exponential backoff and jitter.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=32)


class LocalKinesisServer:
    """moto's threaded server, started and stopped by us, with helpers for streams."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        region: str = REGION,
        separate_process: bool = False,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.region = region
        self.separate_process = separate_process
        self._server: ThreadedMotoServer | subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, timeout_s: float = 30.0) -> LocalKinesisServer:
        if self.separate_process:
            # Its per-request log lines are only noise at thousands of requests a second.
            self._server = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._wait_ready(timeout_s)
            return self
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._server.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"moto server did not listen on {self.host}:{self.port} in {timeout_s}s")

    def stop(self) -> None:
        if isinstance(self._server, subprocess.Popen):
            self._server.terminate()
            try:
                self._server.wait(10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait(10)
        elif self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> LocalKinesisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def client(self):
        """A Kinesis client for this server (thread-safe; share it between threads)."""
        return boto3.client(
            "kinesis",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=CLIENT_CONFIG,
            **DUMMY_CREDENTIALS,
        )

    def create_stream(self, name: str, *, shard_count: int) -> str:
        """Create an empty stream and return its ARN; one left by an earlier server in this process
        (moto's state is per process) is deleted first, so no old record is read as new."""
        client = self.client()
        self.delete_stream(name)
        client.create_stream(StreamName=name, ShardCount=shard_count)
        client.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
        )
        return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]

    def delete_stream(self, name: str) -> None:
        client = self.client()
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def read_stream(client, stream_name: str) -> list[dict]:
    """Every record now in the stream, shard by shard from TRIM_HORIZON (GetRecords output dicts,
    each with an added "ShardId"). This is what was *sent*: what Kinesis accepted."""
    records: list[dict] = []
    shards = client.list_shards(StreamName=stream_name)["Shards"]
    for shard in shards:
        iterator = client.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            records += [{**record, "ShardId": shard["ShardId"]} for record in page["Records"]]
            if not page["Records"]:
                break  # an open shard never returns a null iterator: empty means caught up
            iterator = page.get("NextShardIterator")
    return records

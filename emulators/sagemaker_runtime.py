"""A tiny local SageMaker runtime: the InvokeEndpoint API, spoken well enough for boto3.

Point boto3 at it with `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=<server.url>`; the scorer, the demo and the
tests then call it exactly as they call AWS. Models plug in as `Endpoint`s; `xgboost_endpoint` and
`rcf_endpoint` reproduce the built-in algorithms' wire formats around any `predict`/`score` callable.

Errors come back as the real service sends them (status code, `x-amzn-ErrorType` header, JSON
`message`), so botocore's retry logic treats them as it would against AWS: 5xx and throttling are
retried by the standard retry mode, 4xx validation errors are not.

    with SageMakerRuntimeServer({"fraud": xgboost_endpoint(model.predict)}) as server:
        server.latency_s = 0.002      # every call
        server.fail_next(2)           # the next two calls answer 500

A multi-container endpoint with direct invocation (`multi_container_endpoint({"fraud": ..., "anomaly":
...})`) routes each call by its TargetContainerHostname header and refuses a call without one, as the
service does; a single-container endpoint refuses a call that names a container. Bodies larger than
`max_payload_bytes` (default: the real-time limit) are refused, and `payload_sizes` records every
accepted body's size per endpoint, so tests can check what a client sends.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import unquote

from contracts.sagemaker_formats import REALTIME_MAX_PAYLOAD_BYTES

TARGET_CONTAINER_HEADER = "X-Amzn-SageMaker-Target-Container-Hostname"

# The error codes the real service uses for each status (botocore retries on the status for 5xx and
# on the code for throttling).
_ERROR_TYPES = {
    400: "ValidationError",
    413: "ValidationError",
    424: "ModelError",
    429: "ThrottlingException",
    500: "InternalFailure",
    502: "InternalFailure",
    503: "ServiceUnavailable",
    504: "InternalFailure",
}


class Endpoint(Protocol):
    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """Return (response body, response content type); raise `InvalidInput` for bad requests."""


class InvalidInput(ValueError):
    """The model container rejected the payload (answered as SageMaker's ModelError)."""


def parse_csv_rows(body: bytes) -> list[list[float]]:
    """Rows of floats from a `text/csv` payload, as the built-in containers read it (no header)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("payload is not UTF-8") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append([float(cell) for cell in line.split(",")])
        except ValueError as exc:
            raise InvalidInput(f"line {number}: could not convert to float") from exc
    if not rows:
        raise InvalidInput("empty payload")
    width = len(rows[0])
    if any(len(row) != width for row in rows):
        raise InvalidInput("rows have different numbers of columns")
    return rows


class _XGBoostEndpoint:
    def __init__(self, predict: Callable[[list[list[float]]], Sequence[float]], csv_join: str) -> None:
        self._predict = predict
        self._csv_join = csv_join

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        if not content_type.startswith("text/csv"):
            raise InvalidInput(f"content type {content_type} is not supported by this endpoint")
        scores = [float(p) for p in self._predict(parse_csv_rows(body))]
        if accept.startswith("application/json"):
            return json.dumps({"predictions": [{"score": p} for p in scores]}).encode(), "application/json"
        return self._csv_join.join(repr(p) for p in scores).encode(), "text/csv; charset=utf-8"


class _RCFEndpoint:
    def __init__(self, score: Callable[[list[list[float]]], Sequence[float]]) -> None:
        self._score = score

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        if not content_type.startswith("text/csv"):
            raise InvalidInput(f"content type {content_type} is not supported by this endpoint")
        scores = [float(s) for s in self._score(parse_csv_rows(body))]
        return json.dumps({"scores": [{"score": s} for s in scores]}).encode(), "application/json"


def xgboost_endpoint(
    predict: Callable[[list[list[float]]], Sequence[float]], *, csv_join: str = "\n"
) -> Endpoint:
    """The built-in XGBoost container: `text/csv` rows in; `text/csv` probabilities joined by
    `csv_join` ("\\n" in newer containers, "," in older ones), or `{"predictions": [{"score": p}]}`
    when the caller accepts `application/json`."""
    return _XGBoostEndpoint(predict, csv_join)


def rcf_endpoint(score: Callable[[list[list[float]]], Sequence[float]]) -> Endpoint:
    """The built-in Random Cut Forest container: `text/csv` in, `{"scores": [{"score": s}]}` out."""
    return _RCFEndpoint(score)


class MultiContainerEndpoint:
    """Several containers behind one endpoint (InferenceExecutionConfig Mode=Direct)."""

    def __init__(self, containers: dict[str, Endpoint]) -> None:
        self.containers = dict(containers)

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        raise InvalidInput("a multi-container endpoint needs TargetContainerHostname")


def multi_container_endpoint(containers: dict[str, Endpoint]) -> MultiContainerEndpoint:
    """One endpoint hosting `containers` (host name -> container), each invoked directly."""
    return MultiContainerEndpoint(containers)


class SageMakerRuntimeServer:
    """A threaded HTTP server for `POST /endpoints/{name}/invocations`. Context manager."""

    def __init__(self, endpoints: dict[str, Endpoint], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.endpoints = dict(endpoints)
        self.latency_s = 0.0
        self.calls = 0
        self.max_payload_bytes = REALTIME_MAX_PAYLOAD_BYTES
        self.payload_sizes: dict[str, list[int]] = {}  # "endpoint" or "endpoint/container" -> sizes
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._fail_next: list[int] = []
        self._error_rate = 0.0
        self._timeout_rate = 0.0
        self._hang_s = 30.0
        self._rng = random.Random(0)
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, count: int, *, status: int = 500) -> None:
        """The next `count` calls answer `status` with the service's error shape for it."""
        with self._lock:
            self._fail_next.extend([status] * count)

    def set_faults(
        self, *, error_rate: float = 0.0, timeout_rate: float = 0.0, hang_s: float = 30.0, seed: int = 0
    ) -> None:
        """Random faults: a share of calls answers 500, another share hangs `hang_s` before answering
        (so the client's read timeout fires). Seeded, so a run is reproducible."""
        with self._lock:
            self._error_rate, self._timeout_rate, self._hang_s = error_rate, timeout_rate, hang_s
            self._rng = random.Random(seed)

    def clear_faults(self) -> None:
        """Drop queued failures and random faults: every call succeeds again."""
        with self._lock:
            self._fail_next.clear()
            self._error_rate = self._timeout_rate = 0.0

    def start(self) -> SageMakerRuntimeServer:
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sagemaker-runtime",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging calls
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> SageMakerRuntimeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _next_fault(self) -> tuple[int | None, float]:
        """(error status or None, seconds to hang) for the call now arriving."""
        with self._lock:
            self.calls += 1
            if self._fail_next:
                return self._fail_next.pop(0), 0.0
            draw = self._rng.random()
            if draw < self._error_rate:
                return 500, 0.0
            if draw < self._error_rate + self._timeout_rate:
                return None, self._hang_s
            return None, 0.0


def _make_handler(server: SageMakerRuntimeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps connections alive, as the real service does: botocore's pool reuses them.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK stall every response by ~40 ms, which no real endpoint does.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: tests and benchmarks make thousands of calls

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, hang_s = server._next_fault()
            if server.latency_s:
                time.sleep(server.latency_s)
            if hang_s:
                server._stopping.wait(hang_s)
            if status is not None:
                return self._error(status, "Injected failure")
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
                return self._error(404, f"Unknown path {self.path}", error_type="UnknownOperationException")
            name = unquote(parts[1])
            endpoint = server.endpoints.get(name)
            if endpoint is None:
                return self._error(400, f"Endpoint {name} of account 123456789012 not found.")
            if length > server.max_payload_bytes:
                return self._error(413, f"Request body of {length} bytes exceeds the maximum payload size.")
            target = self.headers.get(TARGET_CONTAINER_HEADER)
            key = name
            if isinstance(endpoint, MultiContainerEndpoint):
                if not target or target not in endpoint.containers:
                    return self._error(
                        400,
                        f"Endpoint {name} is configured for direct invocation: TargetContainerHostname "
                        f"must name one of {sorted(endpoint.containers)}, got {target!r}.",
                    )
                endpoint, key = endpoint.containers[target], f"{name}/{target}"
            elif target:
                return self._error(
                    400,
                    f"Endpoint {name} is not configured for direct invocation: no TargetContainerHostname.",
                )
            with server._lock:
                server.payload_sizes.setdefault(key, []).append(length)
            content_type = self.headers.get("Content-Type", "application/octet-stream")
            accept = self.headers.get("Accept", "*/*")
            try:
                payload, payload_type = endpoint.invoke(body, content_type, accept)
            except InvalidInput as exc:
                # What SageMaker says when the container answers 400: a ModelError naming the status,
                # with HTTP 424 (botocore's sagemaker-runtime model: ModelError is httpStatusCode 424).
                return self._error(
                    424,
                    f'Received client error (400) from primary with message "{exc}".',
                    error_type="ModelError",
                )
            self.send_response(200)
            self.send_header("Content-Type", payload_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
            self.end_headers()
            self.wfile.write(payload)

        def _error(self, status: int, message: str, *, error_type: str | None = None) -> None:
            error_type = error_type or _ERROR_TYPES.get(status, "InternalFailure")
            payload = json.dumps({"__type": error_type, "message": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-ErrorType", error_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler

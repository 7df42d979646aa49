"""One Redis client per container, from REDIS_URL or the Secrets Manager secret.

Timeouts and a bounded exponential-backoff retry make an unreachable Redis fail within a few seconds
instead of hanging the invocation. With a secret, an authentication failure (the password was rotated)
re-fetches the secret once and reconnects; a second failure is reported, not looped on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError
from redis.retry import Retry

T = TypeVar("T")
SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
RETRIES = 3
SECRET_MAX_AGE_S = 3600  # the client is cached anyway; the secret is re-read on auth failure


def _client_options() -> dict[str, Any]:
    return {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_keepalive": True,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
        "retry_on_error": [ConnectionError, TimeoutError],
        "health_check_interval": 30,
    }


def client_from_url(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, **_client_options())


def client_from_secret(secret: dict[str, Any]) -> redis.Redis:
    tls = bool(secret.get("tls", False))
    return redis.Redis(
        host=secret["host"],
        port=int(secret.get("port", 6379)),
        username=secret.get("username") or None,
        password=secret.get("password") or None,
        ssl=tls,
        # Verify the server's certificate and name whenever TLS is on.
        ssl_cert_reqs="required" if tls else None,
        ssl_check_hostname=tls,
        **_client_options(),
    )


def fetch_secret(arn: str, *, force_fetch: bool = False) -> dict[str, Any]:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(arn, transform="json", force_fetch=force_fetch, max_age=SECRET_MAX_AGE_S)


class RedisConnector:
    """Builds the client lazily and keeps it for the container's life."""

    def __init__(
        self,
        *,
        url: str | None = None,
        secret_arn: str | None = None,
        secret_fetcher: Callable[..., dict[str, Any]] = fetch_secret,
    ) -> None:
        if not url and not secret_arn:
            raise ValueError("a Redis URL or a secret ARN is required")
        self._url, self._secret_arn, self._fetch = url, secret_arn, secret_fetcher
        self._client: redis.Redis | None = None

    def client(self, *, refresh: bool = False) -> redis.Redis:
        if self._client is None or refresh:
            self.close()
            if self._url:
                self._client = client_from_url(self._url)
            else:
                self._client = client_from_secret(self._fetch(self._secret_arn, force_fetch=refresh))
        return self._client

    def run(self, operation: Callable[[redis.Redis], T]) -> T:
        """Run `operation(client)`; on an auth failure with a secret, re-read it and try once more."""
        try:
            return operation(self.client())
        except AuthenticationError:
            if not self._secret_arn or self._url:
                raise
            return operation(self.client(refresh=True))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

"""One Redis client per container, from REDIS_URL or the Secrets Manager secret.

Timeouts and a bounded exponential-backoff retry make an unreachable Redis fail within a few seconds
instead of hanging the invocation: a refused or reset connection is retried (a blip), a timeout is not
(a hung Redis would cost the whole timeout again per retry; the batch's records are retried by the
trigger instead), and there is no periodic health-check PING (its own retries ran inside each
command's). With a secret, an authentication failure (the password was rotated) re-fetches the secret
once and reconnects; a second failure is reported, not looped on. The secret's fetch is bounded too,
and its failure is a `redis.ConnectionError`, so the batch reports its records for retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, ConnectionError
from redis.retry import Retry

T = TypeVar("T")
SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
RETRIES = 3
SECRET_MAX_AGE_S = 3600  # the client is cached anyway; the secret is re-read on auth failure
SECRET_CONNECT_TIMEOUT_S = 1.0
SECRET_READ_TIMEOUT_S = 3.0


def _client_options() -> dict[str, Any]:
    return {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_keepalive": True,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES, supported_errors=(ConnectionError,)),
        "retry_on_error": [ConnectionError],
        "health_check_interval": 0,
    }


def client_from_url(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, **_client_options())


def _tls(secret: dict[str, Any]) -> bool:
    """TLS unless the secret says `"tls": false`: a secret without the key (a user's own, or one a
    rotation rewrote) must never fall back to sending the password in plain text."""
    value = secret.get("tls", True)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ValueError('the Redis secret\'s "tls" must be true or false')
    return value


def client_from_secret(secret: dict[str, Any]) -> redis.Redis:
    tls = _tls(secret)
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
    return _secrets_provider().get(arn, transform="json", force_fetch=force_fetch, max_age=SECRET_MAX_AGE_S)


_provider = None


def _secrets_provider() -> Any:
    """Secrets Manager with short timeouts (botocore's defaults are 60 s each, with retries)."""
    global _provider
    if _provider is None:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider
        from botocore.config import Config

        _provider = SecretsProvider(
            boto_config=Config(
                connect_timeout=SECRET_CONNECT_TIMEOUT_S,
                read_timeout=SECRET_READ_TIMEOUT_S,
                retries={"total_max_attempts": 2, "mode": "standard"},
            )
        )
    return _provider


def reset_secrets_provider() -> None:
    """Forget the provider and its cached secret (a new container's state, for tests)."""
    global _provider
    _provider = None


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
                secret = self._secret(refresh)
                try:
                    self._client = client_from_secret(secret)
                except (KeyError, TypeError, ValueError) as error:  # a field missing or malformed
                    raise ConnectionError(f"the Redis secret is not usable ({error})") from None
        return self._client

    def _secret(self, refresh: bool) -> dict[str, Any]:
        """The connection secret; any failure to get or read it is a `redis.ConnectionError` (no
        secret value in its message), so the batch reports its records for retry."""
        try:
            return self._fetch(self._secret_arn, force_fetch=refresh)
        except Exception as error:  # noqa: BLE001 - GetParameterError, TransformParameterError, botocore's
            raise ConnectionError(f"the Redis secret could not be read ({type(error).__name__})") from None

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

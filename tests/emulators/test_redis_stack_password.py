"""Issue 14.10: the local Redis Stack has a password drawn per run, kept out of command lines and
printed URLs, and written only to files readable by their owner."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import redis

from emulators.redis_stack import RedisStackServer, redacted_url


def test_each_run_gets_its_own_password_and_the_url_carries_it(redis_stack):
    # GIVEN the session's server and a second one
    with RedisStackServer() as other:
        # THEN their passwords differ, each URL logs in, and no password means no access
        assert other.password != redis_stack.password
        assert len(redis_stack.password) == 32
        assert other.password in other.url
        assert redis.Redis.from_url(other.url).ping() is True
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=other.port).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=other.port, password=redis_stack.password).ping()


def test_the_password_is_never_on_a_command_line_and_its_file_is_0600(redis_stack):
    cmdline = Path(f"/proc/{redis_stack.process.pid}/cmdline").read_bytes().decode()
    assert redis_stack.password not in cmdline
    config = redis_stack.data_dir / "redis.conf"
    assert redis_stack.password in config.read_text()
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(redis_stack.data_dir).st_mode) == 0o700


def test_a_restarted_server_keeps_its_password():
    with RedisStackServer(persistence=True, appendfsync="always") as server:
        url = server.url
        redis.Redis.from_url(url).set("k", "v")
        server.kill()
        server.start()
        assert redis.Redis.from_url(url, decode_responses=True).get("k") == "v"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://scorer:s3cret@127.0.0.1:6379/0", "redis://scorer:***@127.0.0.1:6379/0"),
        ("rediss://grafana:s3cret@redis.example.com:12345", "rediss://grafana:***@redis.example.com:12345"),
        ("redis://:s3cret@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_redacted_url_hides_only_the_password(url, shown):
    assert redacted_url(url) == shown
    assert "s3cret" not in redacted_url(url)


def test_the_server_offers_its_redacted_url(redis_stack):
    assert redis_stack.redacted_url == f"redis://:***@127.0.0.1:{redis_stack.port}/0"
    assert redis_stack.password not in redis_stack.redacted_url
    assert redis_stack.password not in repr(redis_stack)

"""Fixtures shared by the whole suite: real servers, started once per session."""

from __future__ import annotations

import pytest
import redis

from local.redis_stack import RedisStackServer


@pytest.fixture(scope="session")
def redis_stack():
    """A real Redis Stack server (JSON, TimeSeries, Search) on a free port for the session."""
    with RedisStackServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_stack) -> str:
    """The session server's URL, with the database flushed before each test."""
    client = redis.Redis.from_url(redis_stack.url)
    client.flushall()
    client.close()
    return redis_stack.url


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()

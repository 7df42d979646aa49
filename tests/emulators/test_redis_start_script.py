"""stacks/redis/image/start-redis.sh itself: it refuses to start an unprotected Redis, and its
docker-compose mode (REDIS_PASSWORD only) still protects the default user."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
import redis

from contracts import redis_acl
from emulators.redis_stack import START_SCRIPT, RedisStackServer


def run_script(tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The script with a stand-in entrypoint that only prints what it would exec."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    entrypoint = bin_dir / "docker-entrypoint.sh"
    entrypoint.write_text('#!/bin/sh\necho "would exec: $*"\n')
    entrypoint.chmod(0o755)
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "REDIS_ACL_DIR": str(tmp_path / "acl"),
        "REDIS_DATA_DIR": str(tmp_path),
    }
    return subprocess.run(
        ["/bin/sh", str(START_SCRIPT)], env={**base, **env}, capture_output=True, text=True, timeout=30
    )


def test_without_any_password_it_refuses_to_start(tmp_path):
    result = run_script(tmp_path, {})
    assert result.returncode == 1
    assert "refusing to start Redis without a password" in result.stderr
    assert "would exec" not in result.stdout


@pytest.mark.parametrize("missing", [redis_acl.password_env("grafana"), redis_acl.rules_env("scorer")])
def test_a_user_without_password_or_rules_stops_the_start(tmp_path, missing):
    env = {
        **redis_acl.start_script_environment(),
        **{redis_acl.password_env(u.name): "pw" for u in redis_acl.USERS},
    }
    del env[missing]
    result = run_script(tmp_path, env)
    assert result.returncode == 1
    assert f"{missing} is not set" in result.stderr
    assert "would exec" not in result.stdout


def test_it_starts_redis_with_the_acl_file_and_the_persistence_settings(tmp_path):
    env = {
        **redis_acl.start_script_environment(),
        **{redis_acl.password_env(u.name): "pw" for u in redis_acl.USERS},
    }
    result = run_script(tmp_path, {**env, "REDIS_DATA_DIR": "/data"})
    assert result.returncode == 0, result.stderr
    acl_file = tmp_path / "acl" / "users.acl"
    assert result.stdout.split() == [
        "would",
        "exec:",
        "redis-server",
        "--aclfile",
        str(acl_file),
        "--dir",
        "/data",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--appenddirname",
        "appendonlydir",
        "--save",
        "--maxmemory-policy",
        "noeviction",
    ]
    assert acl_file.read_text() == redis_acl.acl_file({u.name: "pw" for u in redis_acl.USERS})
    assert stat.S_IMODE(os.stat(acl_file).st_mode) == 0o600


def test_docker_compose_mode_protects_the_default_user_with_its_password():
    # GIVEN the script started as docker-compose.yml starts it: REDIS_PASSWORD only
    with RedisStackServer(start_script=True, script_users=False) as server:
        # THEN the password logs in as default, nothing else does
        assert redis.Redis.from_url(server.url).ping() is True
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port).ping()
        acl_text = (server.data_dir / "acl" / "users.acl").read_text()
        assert server.password not in acl_text
        assert acl_text.startswith("user default on #")

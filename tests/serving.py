"""The test client serves as eci_platform.wsgi does: the signing lane (eci_platform.signing_lane) first,
Django's handler for the rest. Installed for every test by tests/conftest.py, so each signing test runs
the path production runs; DjangoOnlyClient is the handler alone, for comparing the two."""

from __future__ import annotations

from typing import Any

from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import client as test_client

from eci_platform.signing_lane import SigningLane

DjangoClientHandler = test_client.ClientHandler


class ServingClientHandler(DjangoClientHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One per client: the middleware instances read settings when made, and tests override them.
        self.lane = SigningLane()

    def __call__(self, environ: dict[str, Any]) -> Any:  # Django's stubs name a private type
        response = self.lane.respond(environ, enforce_csrf_checks=self.enforce_csrf_checks)
        if response is None:
            return super().__call__(environ)
        response.answered_by_the_lane = True  # type: ignore[attr-defined]  # for tests/eci_platform/test_signing_lane.py
        # What the handler does on completion, keeping the test's connection (and its transaction).
        request_finished.disconnect(close_old_connections)
        response.close()
        request_finished.connect(close_old_connections)
        return response


class DjangoOnlyClient(test_client.Client):
    """Django's handler without the lane in front."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handler = DjangoClientHandler(self.handler.enforce_csrf_checks)


def serving_client_install() -> None:
    test_client.ClientHandler = ServingClientHandler  # type: ignore[misc]

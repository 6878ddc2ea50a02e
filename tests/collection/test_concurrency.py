"""The same person sending the same statement several times at the same instant, over HTTP to gunicorn:
exactly one row, one 303 and 409 for the others (REQ-14)."""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.error
import urllib.request
from urllib.parse import urlencode

import altcha
from pytest_django.plugin import DjangoDbBlocker

from collection.models import Statement
from tenants.models import Initiative
from tests.collection.test_browser import site  # noqa: F401  (the committed initiative behind gunicorn)

SENDERS = 8


def _fetch(url: str, host: str, data: bytes | None = None, cookie: str = "") -> tuple[int, str, str]:
    request = urllib.request.Request(url, data=data, headers={"Host": host, "Cookie": cookie})  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=60) as answer:
            return answer.status, answer.headers.get("Set-Cookie", ""), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, "", error.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_simultaneous_duplicates_give_one_row(
    site: tuple[Initiative, str],  # noqa: F811
    django_db_blocker: DjangoDbBlocker,
) -> None:
    initiative, base = site
    host = base.split("//", 1)[1].split(":", 1)[0]
    origin = "http://127.0.0.1:" + base.rsplit(":", 1)[1]
    _status, set_cookie, page = _fetch(f"{origin}/sign/AT/", host)
    cookie = re.search(r"csrftoken=([^;]+)", set_cookie).group(1)  # type: ignore[union-attr]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    bodies = []
    for _ in range(SENDERS):
        challenge = json.loads(_fetch(f"{origin}/altcha/challenge.json", host)[2])
        solution = altcha.solve_challenge(
            challenge["challenge"], challenge["salt"], "SHA-256", challenge["maxnumber"], 0
        )
        assert solution is not None
        proof = {key: challenge[key] for key in ("algorithm", "challenge", "salt", "signature")}
        bodies.append(
            urlencode(
                {
                    "csrfmiddlewaretoken": token,
                    "first_names": "Jan",
                    "family_names": "Novák",
                    "document_type": "passport",
                    "document_number": "P7654321",
                    "declaration": "on",
                    "altcha": base64.b64encode(
                        json.dumps({**proof, "number": solution.number}).encode()
                    ).decode(),
                }
            ).encode()
        )

    start = threading.Barrier(SENDERS)
    statuses: list[int] = []

    def send(body: bytes) -> None:
        start.wait()
        statuses.append(_fetch(f"{origin}/sign/AT/", host, body, f"csrftoken={cookie}")[0])

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(statuses) == [303] + [409] * (SENDERS - 1), statuses
    with django_db_blocker.unblock(), initiative:
        assert Statement.objects.count() == 1

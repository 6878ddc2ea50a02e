"""What a load generator sends to `POST /sign/<CC>/`, shared by the HTTP signing benchmark and the
fault-injection test: a new person for each number, a pre-solved proof of work, and the CSRF cookie and
form token a browser gets with the form page."""

from __future__ import annotations

import base64
import json
import re
import urllib.request

import altcha

from collection.antibot import challenge_create


def person(country: str, number: int) -> dict[str, str]:
    """A different person for each number, as the form of `country` asks (AT: Part B, DE: Part A)."""
    if country == "DE":
        return {
            "first_names": "Anna",
            "family_names": f"Bench {number}",
            "street": "Heidestraße",
            "street_number": "17",
            "postal_code": "51147",
            "city": "Köln",
            "country_of_residence": "DE",
            "date_of_birth": "1964-08-12",
        }
    assert country == "AT", "the load speaks the AT (Part B) or DE (Part A) form"
    return {
        "first_names": "Anna",
        "family_names": f"Bench {number}",
        "document_type": "passport",
        "document_number": f"P{number:08d}",
    }


def solved_proof(initiative_id: int, cost: int) -> str:
    """What the ALTCHA widget posts, solved here: challenges are signed with SECRET_KEY and the
    initiative's id, so this process needs the same SECRET_KEY as the server it posts to."""
    challenge = challenge_create(initiative_id, cost)
    solution = altcha.solve_challenge(str(challenge["challenge"]), str(challenge["salt"]), "SHA-256", cost, 0)
    assert solution is not None
    payload = {key: challenge[key] for key in ("algorithm", "challenge", "salt", "signature")}
    return base64.b64encode(json.dumps({**payload, "number": solution.number}).encode()).decode()


def csrf_pair(port: int, host: str, country: str) -> tuple[str, str]:
    """The CSRF cookie and form token a browser gets with the form page."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/sign/{country}/", headers={"Host": host})
    with urllib.request.urlopen(request, timeout=30) as page:  # noqa: S310  (our own server on loopback)
        cookie = re.search(r"csrftoken=([^;]+)", page.headers["Set-Cookie"])
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.read().decode())
    assert cookie and token
    return cookie.group(1), token.group(1)

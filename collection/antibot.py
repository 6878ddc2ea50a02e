"""REQ-21: only natural persons sign. ALTCHA proof of work, self-hosted (the altcha library on the server,
the widget from the django-altcha package's static files): no third party, no extra personal data.

A challenge is signed with a key derived from SECRET_KEY and the initiative, expires after a few
minutes, and each solution is accepted once: its signature is remembered in Redis until it expires.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import parse_qs

import altcha
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from collection.redis_store import redis_client

CHALLENGE_LIFETIME = datetime.timedelta(minutes=10)


def _hmac_key(initiative_id: int) -> str:
    # One key per initiative: a solution made for one initiative's form is useless on another's.
    return hmac.new(
        settings.SECRET_KEY.encode(), f"altcha:{initiative_id}".encode(), hashlib.sha256
    ).hexdigest()


def challenge_create(initiative_id: int, cost: int) -> dict[str, object]:
    """A new challenge for the widget; `cost` is the largest number to search (the work grows with it)."""
    challenge = altcha.create_challenge(
        altcha.ChallengeOptions(
            hmac_key=_hmac_key(initiative_id),
            max_number=cost,
            expires=timezone.now() + CHALLENGE_LIFETIME,
            params={"cost": str(cost)},  # signed with the challenge: a client cannot claim an easier one
        )
    )
    return {
        "algorithm": challenge.algorithm,
        "challenge": challenge.challenge,
        "maxnumber": challenge.max_number,
        "salt": challenge.salt,
        "signature": challenge.signature,
    }


@dataclass(frozen=True)
class ProofCheck:
    accepted: bool
    reason: str  # "ok", "missing", "invalid", "too_easy", "replayed"


def proof_check(initiative_id: int, payload: str, *, minimum_cost: int) -> ProofCheck:
    """Verify a solution and spend it: a second use of the same solution is refused, and so is one of a
    challenge easier than this client must now solve."""
    if not payload or len(payload) > 2000:
        return ProofCheck(False, "missing" if not payload else "invalid")
    try:
        valid, _error = altcha.verify_solution(payload, _hmac_key(initiative_id), check_expires=True)
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
        valid = False
    if not valid:
        return ProofCheck(False, "invalid")
    solved = json.loads(base64.b64decode(payload))
    cost = parse_qs(str(solved["salt"]).partition("?")[2]).get("cost", ["0"])[0]
    if not cost.isdigit() or int(cost) < minimum_cost:
        return ProofCheck(False, "too_easy")
    # The challenge's signature names it (whatever the payload's formatting); set-if-absent makes the
    # first use the only one.
    signature = str(solved["signature"])
    spent_key = "altcha-spent:" + hashlib.sha256(signature.encode()).hexdigest()
    spent_for = int(CHALLENGE_LIFETIME.total_seconds()) + 60
    if not redis_client().set(cache.make_key(spent_key), 1, nx=True, ex=spent_for):
        return ProofCheck(False, "replayed")
    return ProofCheck(True, "ok")

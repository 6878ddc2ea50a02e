"""REQ-21: only natural persons sign. ALTCHA proof of work, self-hosted (the altcha library on the server,
the widget from the django-altcha package's static files): no third party, no extra personal data.

A challenge is signed with a key derived from SECRET_KEY and the initiative, expires after a few
minutes, and each solution is accepted once: its signature is remembered in Redis until it expires.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qs

import altcha
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

CHALLENGE_LIFETIME = datetime.timedelta(minutes=10)
# A spent solution is remembered until its challenge has expired anyway.
SPENT_SECONDS = int(CHALLENGE_LIFETIME.total_seconds()) + 60


def _hmac_key(initiative_id: int) -> str:
    # One key per initiative: a solution made for one initiative's form is useless on another's.
    return _hmac_key_derived(settings.SECRET_KEY, initiative_id)


@functools.lru_cache(maxsize=1024)
def _hmac_key_derived(secret_key: str, initiative_id: int) -> str:
    return hmac.new(secret_key.encode(), f"altcha:{initiative_id}".encode(), hashlib.sha256).hexdigest()


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
class Proof:
    """A solution checked against its challenge's signature, not yet spent."""

    reason: str  # "ok", "missing" or "invalid"
    cost: int = 0  # the work the challenge asked for
    spent_key: str = ""  # the cache key that marks the solution used, once spent

    @property
    def solved(self) -> bool:
        return self.reason == "ok"


def proof_verify(initiative_id: int, payload: str) -> Proof:
    """Check a solution without spending it (no I/O): the caller spends it in the same Redis round trip
    as its rate counters (`collection.ratelimit.signing_attempt_register`)."""
    if not payload or len(payload) > 2000:
        return Proof("missing" if not payload else "invalid")
    try:
        # Decoded once here; the library takes the decoded payload as well as the text.
        solved = json.loads(base64.b64decode(payload))
        if not isinstance(solved, dict):
            return Proof("invalid")
        valid, _error = altcha.verify_solution(
            cast(altcha.altcha.PayloadType, solved), _hmac_key(initiative_id), check_expires=True
        )
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, binascii.Error):
        # RecursionError: JSON nested deeper than the parser goes (a few hundred brackets fit in 2,000).
        valid = False
    if not valid:
        return Proof("invalid")
    cost = parse_qs(str(solved["salt"]).partition("?")[2]).get("cost", ["0"])[0]
    # The challenge's signature names it (whatever the payload's formatting); set-if-absent on this key
    # makes the first use the only one.
    signature = str(solved["signature"])
    spent_key = cache.make_key("altcha-spent:" + hashlib.sha256(signature.encode()).hexdigest())
    return Proof("ok", int(cost) if cost.isdigit() else 0, spent_key)


def proof_judge(proof: Proof, *, minimum_cost: int, first_use: bool) -> str:
    """The verdict on a verified solution once spent: "ok", "missing", "invalid", "too_easy" (a challenge
    easier than this client must now solve) or "replayed" (a second use)."""
    if not proof.solved:
        return proof.reason
    if proof.cost < minimum_cost:
        return "too_easy"
    return "ok" if first_use else "replayed"

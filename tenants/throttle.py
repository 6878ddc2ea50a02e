"""The sign-in throttle shared by both sign-ins: the organisers' (/manage/login/ on an initiative's site)
and the operators' (/operator/login/). One set of counters in Redis for both, and for every initiative:
the accounts are the same platform users wherever they sign in, and a password guessed on one page would
open the other.

Each attempt is counted before its password is checked (simultaneous attempts cannot all slip under a
limit together) in four buckets:

- the account from this coarse network (/24, /48): what a guesser at one account gets from one place;
- the client's own address (/32, /64): one client guessing many accounts;
- the coarse network: many clients of one place guessing many accounts;
- the account from anywhere: the ceiling against a distributed guesser (see FREE_FAILURES).

Past a bucket's free failures every further attempt waits: BASE_DELAY_SECONDS, doubling with each
failure, at most MAX_DELAY_SECONDS; an attempt made too early is answered 429 with Retry-After and is not
counted, so hammering does not lengthen the wait. There is no lock-out: after the delay one more
password is checked. A successful sign-in takes back its own count and forgets the account's failures
from its network. Failures are forgotten FAILURE_MEMORY_SECONDS after the bucket's last attempt.

Redis never holds a user name or an address: keys are keyed hashes (HMAC with a key derived from
SECRET_KEY). Failed sign-ins are audited by tenants/account_audit.py (from Django's user_login_failed
signal), never with the typed name or the password.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import user_login_failed
from django.contrib.auth.forms import UsernameField
from django.core.cache import cache
from django.http import HttpRequest

from tenants.network import client_address, client_networks

ACCOUNT_FROM_NETWORK = "account-network"
ADDRESS = "address"
NETWORK = "network"
ACCOUNT = "account"

# Failures each bucket allows before attempts wait. The account-from-anywhere ceiling is high on
# purpose: it is the one bucket a stranger shares with the account's owner, so reaching it must take
# a distributed attack. One network alone reaches it only after 5 free failures and then delays of
# 30 s, 1, 2, 4, 8 and 15 minutes (about a dozen failures an hour); 100 failures within the memory
# therefore need some ten networks or more at once, which no typing owner or single stranger produces.
# Past it the owner waits too, but at most MAX_DELAY_SECONDS per attempt, while the botnet as a whole
# gets no more than one guess per delay instead of one per network.
FREE_FAILURES = {ACCOUNT_FROM_NETWORK: 5, ADDRESS: 20, NETWORK: 100, ACCOUNT: 100}
BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 15 * 60
FAILURE_MEMORY_SECONDS = 60 * 60

# Each bucket is one string "<counted attempts>:<time of the last one>" (a string, not a hash, so that
# anything reading the cache's keys with GET meets no other type). Atomically over the buckets: refuse
# with the longest wait still to run, else count this attempt in all of them.
_ATTEMPT_SCRIPT = """
local now = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local wait = 0
local counts = {}
for i, key in ipairs(KEYS) do
  local n, last = 0, 0
  local value = redis.call('GET', key)
  if value then
    local a, b = string.match(value, '^(%d+):(.+)$')
    n, last = tonumber(a) or 0, tonumber(b) or 0
  end
  counts[i] = n
  local free = tonumber(ARGV[4 + i])
  if n >= free then
    local left = last + math.min(base * 2 ^ (n - free), cap) - now
    if left > wait then wait = left end
  end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, (counts[i] + 1) .. ':' .. ARGV[1], 'EX', ARGV[4])
end
return '0'
"""
# A success: forget the first bucket (the account from this network), take one back from the others.
_SUCCESS_SCRIPT = """
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
  local value = redis.call('GET', KEYS[i])
  local ttl = redis.call('PTTL', KEYS[i])
  if value and ttl > 0 then
    local a, b = string.match(value, '^(%d+):(.+)$')
    local n = tonumber(a) or 0
    if n > 0 then redis.call('SET', KEYS[i], (n - 1) .. ':' .. b, 'PX', ttl) end
  end
end
return 0
"""


@dataclass(frozen=True)
class SigninAttempt:
    allowed: bool
    retry_after: int = 0  # whole seconds, for the Retry-After header


def signin_username_normalise(username: str) -> str:
    """The user name as Django authenticates it: AuthenticationForm's UsernameField strips it and applies
    NFKC (as AbstractBaseUser.normalize_username does when an account is made), then ModelBackend looks
    the account up with get_by_natural_key, an exact, case-sensitive match on the username column. So
    NFKC variants (full-width letters, ligatures) share a counter, and case is kept: folding it would let
    failures on "Bob" delay the distinct account "bob", while a case variant of a name is another
    (non-existent) account whose guesses can never succeed."""
    return str(UsernameField().to_python(username))


def _secret(purpose: str) -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), f"signin:{purpose}".encode(), hashlib.sha256).digest()


def _digest(purpose: str, value: str) -> str:
    return hmac.new(_secret(purpose), value.encode(), hashlib.sha256).hexdigest()[:32]


def _keys(request: HttpRequest, username: str) -> dict[str, str]:
    account = signin_username_normalise(username)
    address, network = client_networks(client_address(request))
    # Not cache.make_key: django-tenants puts the current schema into it, and these counters are the
    # same on the operator console and on every initiative's site.
    prefix = f"signin:{settings.CACHES['default'].get('KEY_PREFIX', '')}"
    pair = f"{account}\0{network}"
    return {
        ACCOUNT_FROM_NETWORK: f"{prefix}:an:{_digest('throttle', pair)}",
        ADDRESS: f"{prefix}:ad:{_digest('throttle', address)}",
        NETWORK: f"{prefix}:nw:{_digest('throttle', network)}",
        ACCOUNT: f"{prefix}:ac:{_digest('throttle', account)}",
    }


def _redis() -> Any:
    # The cache's own Redis connection pool (the cache never holds personal data; nor do these keys).
    return cache._cache.get_client(write=True)  # type: ignore[attr-defined]


def signin_attempt_register(request: HttpRequest, username: str) -> SigninAttempt:
    """Count a sign-in attempt before its password is checked, or refuse it while a delay runs (then it
    is not counted). Call `signin_succeeded` after a successful sign-in."""
    keys = _keys(request, username)
    now = time.time()
    waited = _redis().eval(
        _ATTEMPT_SCRIPT,
        len(keys),
        *keys.values(),
        repr(now),
        BASE_DELAY_SECONDS,
        MAX_DELAY_SECONDS,
        FAILURE_MEMORY_SECONDS,
        *(FREE_FAILURES[kind] for kind in keys),
    )
    wait = float(waited)
    if wait > 0:
        return SigninAttempt(allowed=False, retry_after=max(1, math.ceil(wait)))
    return SigninAttempt(allowed=True)


def signin_succeeded(request: HttpRequest, username: str) -> None:
    """A successful sign-in was no failure: take back its count, and forget the account's failures from
    this network (the owner is back; a guesser elsewhere keeps their own count)."""
    keys = _keys(request, username)
    first = keys.pop(ACCOUNT_FROM_NETWORK)
    _redis().eval(_SUCCESS_SCRIPT, 1 + len(keys), first, *keys.values())


def signin_refusal_report(request: HttpRequest, username: str) -> None:
    """A sign-in refused after the password was right (not an organiser here, not staff) or checked
    outside Django's authenticate(): report it as Django reports a wrong password, through the
    user_login_failed signal, so it is audited in the one place that audits failures
    (tenants/account_audit.py)."""
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)


def retry_after_text(seconds: int) -> str:
    """The wait in words for the throttled page: "40 seconds", "3 minutes"."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"

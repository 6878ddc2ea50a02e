"""Rate limits for signing, in Redis: per IPv4 address (/32) and IPv6 /64, and per coarser network
(/24, /48). Over the soft limit the proof of work gets harder; over the hard limit the answer is 429.

Redis holds counters under keyed hashes of the network that change every day, never an address, and
nothing about a client is stored with a statement.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from collection.antibot import SPENT_SECONDS, Proof
from collection.redis_store import redis_client
from tenants.network import client_address as client_address  # its home; imported from here too

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Bucket:
    kind: str  # "address" or "network"
    network: str  # e.g. 203.0.113.7/32, 2001:db8::/48 (never leaves this process)
    soft_limit: int
    hard_limit: int


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    harder_proof: bool
    retry_after: int = 0
    bucket_kind: str = ""


def _dotted_quad(address: str) -> list[str] | None:
    """The four numbers of an IPv4 address written as ipaddress writes one (no leading zeros, 0 to
    255), or None. The common case, read without ipaddress's objects: parsing and masking with them was
    a tenth of an accepted statement's CPU (twice: the limits and the log line)."""
    parts = address.split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not (part.isascii() and part.isdigit() and len(part) <= 3 and int(part) <= 255):
            return None
        if len(part) > 1 and part[0] == "0":
            return None
    return parts


def buckets_of(address: str) -> list[Bucket]:
    quad = _dotted_quad(address)
    if quad is not None:
        return [
            Bucket(
                "address", f"{address}/32", settings.RATE_LIMIT_ADDRESS_SOFT, settings.RATE_LIMIT_ADDRESS_HARD
            ),
            Bucket(
                "network",
                f"{quad[0]}.{quad[1]}.{quad[2]}.0/24",
                settings.RATE_LIMIT_NETWORK_SOFT,
                settings.RATE_LIMIT_NETWORK_HARD,
            ),
        ]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return [
            Bucket("network", "unknown", settings.RATE_LIMIT_NETWORK_SOFT, settings.RATE_LIMIT_NETWORK_HARD)
        ]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # An IPv4 client on a dual-stack socket (::ffff:a.b.c.d) is that IPv4 address, not one ::/64.
        ip = ip.ipv4_mapped
    exact, coarse = (32, 24) if ip.version == 4 else (64, 48)
    address_limits = (settings.RATE_LIMIT_ADDRESS_SOFT, settings.RATE_LIMIT_ADDRESS_HARD)
    network_limits = (settings.RATE_LIMIT_NETWORK_SOFT, settings.RATE_LIMIT_NETWORK_HARD)
    return [
        Bucket("address", _network(ip, exact), *address_limits),
        Bucket("network", _network(ip, coarse), *network_limits),
    ]


def _network(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int) -> str:
    # Masking the integer is what ip_network(strict=False) does, at a fraction of its cost per request.
    host_bits = ip.max_prefixlen - prefix
    return f"{type(ip)((int(ip) >> host_bits) << host_bits)}/{prefix}"


def truncated_address(address: str) -> str:
    """For logs: the /24 or /48 network, never the address itself."""
    buckets = buckets_of(address)
    return buckets[-1].network


@functools.lru_cache(maxsize=2)
def _daily_secret(day: str) -> bytes:
    return hmac.new(settings.SECRET_KEY.encode(), f"ratelimit:{day}".encode(), hashlib.sha256).digest()


def _key(initiative_id: int, bucket: Bucket, window: int) -> str:
    secret = _daily_secret(datetime.date.today().isoformat())
    # hmac.digest: the one-shot C path, a fifth of the cost of hmac.new for the same digest.
    name = hmac.digest(secret, bucket.network.encode(), "sha256").hex()[:32]
    return cache.make_key(f"ratelimit:{initiative_id}:{name}:{window}")


# One command instead of five (INCR and EXPIRE per bucket, SET NX for the proof): Redis runs it
# atomically, and packing and parsing one command costs the signing path a fifth of five.
_ATTEMPT_SCRIPT = """
local buckets = tonumber(ARGV[1])
local answers = {}
for i = 1, buckets do
  answers[i] = redis.call('INCR', KEYS[i])
  if answers[i] == 1 then redis.call('EXPIRE', KEYS[i], ARGV[2]) end
end
if #KEYS > buckets then
  answers[buckets + 1] = redis.call('SET', KEYS[buckets + 1], '1', 'NX', 'EX', ARGV[3]) and 1 or 0
end
return answers
"""
_scripts: dict[int, Any] = {}


def _attempt_script() -> Any:
    client = redis_client()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_ATTEMPT_SCRIPT)
    return script


def _counts(
    initiative_id: int, address: str, *, add: bool, spend_key: str = ""
) -> tuple[list[tuple[Bucket, int]], bool]:
    """The buckets' counts in this window, counting this attempt when `add`, and whether `spend_key` was
    set now for the first time: one Redis command."""
    window = int(time.time() // WINDOW_SECONDS)
    buckets = buckets_of(address)
    keys = [_key(initiative_id, bucket, window) for bucket in buckets]
    if not add:
        counts = redis_client().mget(keys)
        return [(bucket, int(count or 0)) for bucket, count in zip(buckets, counts, strict=True)], False
    answers = _attempt_script()(
        keys=[*keys, spend_key] if spend_key else keys, args=[len(keys), WINDOW_SECONDS * 2, SPENT_SECONDS]
    )
    first_use = bool(answers.pop()) if spend_key else False
    return [(bucket, int(count)) for bucket, count in zip(buckets, answers, strict=True)], first_use


def _decide(counted: list[tuple[Bucket, int]], *, including_this_one: bool) -> RateDecision:
    for bucket, count in counted:
        if count > bucket.hard_limit:
            retry_after = WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
            return RateDecision(False, True, retry_after, bucket.kind)
    # Whether a harder proof is due is judged on the attempts before this one: the challenge this
    # attempt solved was issued then.
    before = 1 if including_this_one else 0
    harder = any(count - before > bucket.soft_limit for bucket, count in counted)
    return RateDecision(True, harder)


@dataclass(frozen=True)
class SigningAttempt:
    decision: RateDecision
    proof_first_use: bool  # whether the proof of work was spent by this attempt (not used before)


def signing_attempt_register(initiative_id: int, address: str, *, proof: Proof) -> SigningAttempt:
    """Count one signing attempt, say whether it may go on, and spend its proof of work (if it is a
    solved one) in the same round trip."""
    counted, first_use = _counts(initiative_id, address, add=True, spend_key=proof.spent_key)
    decision = _decide(counted, including_this_one=True)
    if not decision.allowed:
        logger.warning("rate limited: initiative=%s bucket=%s", initiative_id, decision.bucket_kind)
    return SigningAttempt(decision, first_use)


def signing_pressure(initiative_id: int, address: str) -> RateDecision:
    """Where a client stands, without counting (for the cost of the next challenge)."""
    counted, _ = _counts(initiative_id, address, add=False)
    return _decide(counted, including_this_one=False)

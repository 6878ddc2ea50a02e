"""Rate limits for signing, in Redis: per IPv4 address (/32) and IPv6 /64, and per coarser network
(/24, /48). Over the soft limit the proof of work gets harder; over the hard limit the answer is 429.

Redis holds counters under keyed hashes of the network that change every day, never an address, and
nothing about a client is stored with a statement.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from collection.redis_store import redis_client

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


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the address a trusted proxy (TRUSTED_PROXY_HOPS) saw."""
    hops = settings.TRUSTED_PROXY_HOPS
    if hops > 0:
        forwarded = [
            part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()
        ]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return str(request.META.get("REMOTE_ADDR", ""))


def buckets_of(address: str) -> list[Bucket]:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return [
            Bucket("network", "unknown", settings.RATE_LIMIT_NETWORK_SOFT, settings.RATE_LIMIT_NETWORK_HARD)
        ]
    exact, coarse = (32, 24) if ip.version == 4 else (64, 48)
    return [
        Bucket(
            "address",
            str(ipaddress.ip_network(f"{ip}/{exact}", strict=False)),
            settings.RATE_LIMIT_ADDRESS_SOFT,
            settings.RATE_LIMIT_ADDRESS_HARD,
        ),
        Bucket(
            "network",
            str(ipaddress.ip_network(f"{ip}/{coarse}", strict=False)),
            settings.RATE_LIMIT_NETWORK_SOFT,
            settings.RATE_LIMIT_NETWORK_HARD,
        ),
    ]


def truncated_address(address: str) -> str:
    """For logs: the /24 or /48 network, never the address itself."""
    buckets = buckets_of(address)
    return buckets[-1].network


def _key(initiative_id: int, bucket: Bucket, window: int) -> str:
    day = datetime.date.today().isoformat()
    secret = hmac.new(settings.SECRET_KEY.encode(), f"ratelimit:{day}".encode(), hashlib.sha256).digest()
    name = hmac.new(secret, bucket.network.encode(), hashlib.sha256).hexdigest()[:32]
    return f"ratelimit:{initiative_id}:{name}:{window}"


def _counts(initiative_id: int, address: str, *, add: bool) -> list[tuple[Bucket, int]]:
    """The buckets' counts in this window, counting this attempt when `add`: one Redis round trip."""
    window = int(time.time() // WINDOW_SECONDS)
    buckets = buckets_of(address)
    keys = [cache.make_key(_key(initiative_id, bucket, window)) for bucket in buckets]
    pipeline = redis_client().pipeline(transaction=False)
    for key in keys:
        if add:
            pipeline.incr(key)
            pipeline.expire(key, WINDOW_SECONDS * 2)
        else:
            pipeline.get(key)
    answers = pipeline.execute()
    counts = answers[0::2] if add else answers
    return [(bucket, int(count or 0)) for bucket, count in zip(buckets, counts, strict=True)]


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


def signing_attempt_register(initiative_id: int, address: str) -> RateDecision:
    """Count one signing attempt and say whether it may go on."""
    decision = _decide(_counts(initiative_id, address, add=True), including_this_one=True)
    if not decision.allowed:
        logger.warning("rate limited: initiative=%s bucket=%s", initiative_id, decision.bucket_kind)
    return decision


def signing_pressure(initiative_id: int, address: str) -> RateDecision:
    """Where a client stands, without counting (for the cost of the next challenge)."""
    return _decide(_counts(initiative_id, address, add=False), including_this_one=False)

"""Who is asking, as far as limits go: the client's address behind the trusted proxies, and the networks
it belongs to. Used by the signing limits (collection/ratelimit.py) and the sign-in throttle
(tenants/throttle.py); the addresses never leave the process (callers hash them)."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


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


def client_networks(address: str) -> tuple[str, str]:
    """The address's own network (IPv4 /32, IPv6 /64: what one client controls) and its coarse network
    (/24, /48: a provider's customer, an office); "unknown" for both when it is no address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown", "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # An IPv4 client on a dual-stack socket (::ffff:a.b.c.d) is that IPv4 address, not one ::/64.
        ip = ip.ipv4_mapped
    exact, coarse = (32, 24) if ip.version == 4 else (64, 48)
    return (
        str(ipaddress.ip_network(f"{ip}/{exact}", strict=False)),
        str(ipaddress.ip_network(f"{ip}/{coarse}", strict=False)),
    )

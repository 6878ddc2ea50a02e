"""The anti-bot proof of work (REQ-21) and the rate limits: 403 for a missing, forged, foreign,
replayed or too easy proof; harder proofs, then 429, for a client that signs too much."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.cache import cache
from django.test import override_settings

from collection.models import Statement
from collection.ratelimit import truncated_address
from tenants.models import Initiative
from tests.collection.signing import valid_form
from tests.conftest import client_for, solved_proof

pytestmark = pytest.mark.django_db


def _post(initiative: Initiative, proof: str, address: str = "203.0.113.7", country: str = "AT") -> int:
    data = {**valid_form(country), "altcha": proof}
    return int(client_for(initiative).post(f"/sign/{country}/", data, REMOTE_ADDR=address).status_code)


def _stored(initiative: Initiative) -> int:
    with initiative:
        return Statement.objects.count()


def test_the_challenge_names_its_cost_and_is_not_cached(alpha: Initiative) -> None:
    response = client_for(alpha).get("/altcha/challenge.json")
    challenge = response.json()
    assert challenge["algorithm"] == "SHA-256" and challenge["maxnumber"] == 500
    assert "cost=500" in challenge["salt"]
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.mark.parametrize("proof", ["", "not-base64!", base64.b64encode(b"{}").decode(), "x" * 3000])
def test_a_missing_or_malformed_proof_is_a_403(alpha: Initiative, proof: str) -> None:
    assert _post(alpha, proof) == 403
    assert _stored(alpha) == 0


def test_a_forged_or_tampered_proof_is_a_403(alpha: Initiative) -> None:
    payload = json.loads(base64.b64decode(solved_proof(client_for(alpha))))
    for field, value in (
        ("number", payload["number"] + 1),
        ("signature", "0" * 64),
        ("salt", payload["salt"].replace("cost=500", "cost=500000")),
    ):
        forged = base64.b64encode(json.dumps({**payload, field: value}).encode()).decode()
        assert _post(alpha, forged) == 403
    assert _stored(alpha) == 0


def test_a_proof_is_good_once(alpha: Initiative) -> None:
    proof = solved_proof(client_for(alpha))
    assert _post(alpha, proof) == 303
    assert _post(alpha, proof, country="FR") == 403  # the same solution again, for another statement
    assert _stored(alpha) == 1


def test_a_proof_for_another_initiative_is_refused(alpha: Initiative, beta: Initiative) -> None:
    assert _post(alpha, solved_proof(client_for(beta))) == 403


def test_the_initiatives_own_cost_is_used(alpha: Initiative) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(altcha_cost=2000)
    assert client_for(alpha).get("/altcha/challenge.json").json()["maxnumber"] == 2000


@override_settings(RATE_LIMIT_ADDRESS_SOFT=2, RATE_LIMIT_ADDRESS_HARD=4)
def test_a_busy_address_gets_harder_proofs_then_429(
    alpha: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    client = client_for(alpha)
    statuses = []
    for attempt in range(6):
        data = {
            **valid_form("FR"),
            "first_names": f"Anne {chr(65 + attempt)}",
            "altcha": solved_proof(client, REMOTE_ADDR="198.51.100.23"),
        }
        statuses.append(client.post("/sign/FR/", data, REMOTE_ADDR="198.51.100.23").status_code)
        cost = client.get("/altcha/challenge.json", REMOTE_ADDR="198.51.100.23").json()["maxnumber"]
        assert cost == (5000 if attempt >= 2 else 500), "past the soft limit, challenges are ten times harder"
    assert statuses[:4] == [303, 303, 303, 303] and statuses[4:] == [429, 429]
    response = client.post("/sign/FR/", valid_form("FR"), REMOTE_ADDR="198.51.100.23")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    # Another network is not affected.
    assert _post(alpha, solved_proof(client), address="192.0.2.5", country="AT") == 303
    assert "198.51.100.23" not in caplog.text and "198.51.100.0/24" in caplog.text


@override_settings(RATE_LIMIT_ADDRESS_SOFT=1, RATE_LIMIT_ADDRESS_HARD=100)
def test_a_proof_easier_than_the_client_now_owes_is_refused(alpha: Initiative) -> None:
    client = client_for(alpha)
    easy = [solved_proof(client) for _ in range(3)]  # fetched while the address is still quiet
    assert _post(alpha, easy[0], address="198.51.100.9") == 303
    assert _post(alpha, easy[1], address="198.51.100.9", country="FR") == 303
    assert _post(alpha, easy[2], address="198.51.100.9", country="DE") == 403  # now owes a harder one


@override_settings(RATE_LIMIT_ADDRESS_HARD=1000, RATE_LIMIT_NETWORK_SOFT=1000, RATE_LIMIT_NETWORK_HARD=2)
def test_ipv6_addresses_count_per_64_and_networks_per_48(alpha: Initiative) -> None:
    assert _post(alpha, solved_proof(client_for(alpha)), address="2001:db8:1:1::1") == 303
    assert _post(alpha, solved_proof(client_for(alpha)), address="2001:db8:1:2::1", country="FR") == 303
    assert _post(alpha, solved_proof(client_for(alpha)), address="2001:db8:1:3::1", country="DE") == 429
    assert truncated_address("2001:db8:1:3::1") == "2001:db8:1::/48"


def test_redis_holds_no_address(alpha: Initiative) -> None:
    _post(alpha, solved_proof(client_for(alpha)), address="203.0.113.77")
    client = cache._cache.get_client()  # type: ignore[attr-defined]
    keys = b" ".join(client.keys("*"))
    # Every key of the database, whatever its type (other processes of the tests queue tasks here too).
    readers = {
        b"string": lambda key: [client.get(key)],
        b"list": lambda key: client.lrange(key, 0, -1),
        b"hash": lambda key: [*client.hkeys(key), *client.hvals(key)],
        b"set": lambda key: list(client.smembers(key)),
        b"zset": lambda key: client.zrange(key, 0, -1),
    }
    values = b" ".join(
        value
        for key in client.keys("*")
        for value in readers.get(client.type(key), lambda key: [])(key)
        if value is not None
    )
    for form in (b"203.0.113.77", b"203.0.113.0"):
        assert form not in keys and form not in values


@override_settings(RATE_LIMIT_ADDRESS_SOFT=1000, RATE_LIMIT_ADDRESS_HARD=2, RATE_LIMIT_NETWORK_HARD=1000)
def test_two_addresses_of_one_ipv6_64_share_the_address_limit(alpha: Initiative) -> None:
    client = client_for(alpha)
    assert _post(alpha, solved_proof(client), address="2001:db8:5:6::1") == 303
    assert _post(alpha, solved_proof(client), address="2001:db8:5:6::ffff:2", country="FR") == 303
    assert _post(alpha, solved_proof(client), address="2001:db8:5:6:abcd::3", country="DE") == 429
    # The next /64 of the same /48 has its own address limit.
    assert _post(alpha, solved_proof(client), address="2001:db8:5:7::1", country="DE") == 303


@override_settings(RATE_LIMIT_ADDRESS_SOFT=1000, RATE_LIMIT_ADDRESS_HARD=1, RATE_LIMIT_NETWORK_HARD=1000)
def test_ipv4_clients_of_a_dual_stack_socket_count_as_their_ipv4_address(alpha: Initiative) -> None:
    client = client_for(alpha)
    assert _post(alpha, solved_proof(client), address="::ffff:198.51.100.1") == 303
    # Another IPv4 client is not in the first one's bucket (as it would be in ::/64) ...
    assert _post(alpha, solved_proof(client), address="::ffff:198.51.100.2", country="FR") == 303
    # ... and the mapped and the plain form of one address are one bucket.
    assert _post(alpha, solved_proof(client), address="198.51.100.1", country="DE") == 429
    assert truncated_address("::ffff:198.51.100.1") == "198.51.100.0/24"


@override_settings(TRUSTED_PROXY_HOPS=1, RATE_LIMIT_ADDRESS_HARD=1, RATE_LIMIT_NETWORK_HARD=1000)
def test_behind_a_trusted_proxy_the_address_it_saw_is_counted(alpha: Initiative) -> None:
    client = client_for(alpha)

    def post(forwarded_for: str, country: str) -> int:
        data = {**valid_form(country), "altcha": solved_proof(client)}
        response = client.post(
            f"/sign/{country}/", data, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for
        )
        return int(response.status_code)

    # Clients behind the one ingress are told apart by the address the ingress saw ...
    assert post("203.0.113.50", "AT") == 303
    assert post("203.0.113.51", "FR") == 303
    # ... which a client cannot forge by sending its own header first: the ingress appends the real one.
    assert post("192.0.2.99, 203.0.113.50", "DE") == 429


@pytest.mark.parametrize("depth", [100, 1400])
def test_a_deeply_nested_proof_is_a_403_not_a_500(alpha: Initiative, depth: int) -> None:
    proof = base64.b64encode(b"[" * depth).decode()
    assert len(proof) <= 2000
    assert _post(alpha, proof) == 403
    assert _stored(alpha) == 0


def _buckets_by_ipaddress(address: str) -> list[tuple[str, str]]:
    """What buckets_of gives, worked out by the standard library alone."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return [("network", "unknown")]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    exact, coarse = (32, 24) if ip.version == 4 else (64, 48)
    return [
        ("address", str(ipaddress.ip_network(f"{ip}/{exact}", strict=False))),
        ("network", str(ipaddress.ip_network(f"{ip}/{coarse}", strict=False))),
    ]


@pytest.mark.parametrize(
    "address",
    [
        "203.0.113.7",
        "0.0.0.0",  # noqa: S104  (parsed, never bound)
        "255.255.255.255",
        "10.0.0.1",
        "1.2.3.04",
        "01.2.3.4",
        "1.2.3.256",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.",
        ".1.2.3",
        "1..2.3",
        "1.2.3.-4",
        "1.2.3.+4",
        "1.2.3.٤",
        "1.2.3.4 ",
        " 1.2.3.4",
        "1.2.3.0x4",
        "",
        "::ffff:1.2.3.4",
        "2001:db8::1",
        "not an address",
        "1.2.3.4/24",
    ],
)
def test_the_buckets_are_those_the_standard_library_gives(address: str) -> None:
    from collection.ratelimit import buckets_of

    assert [(bucket.kind, bucket.network) for bucket in buckets_of(address)] == _buckets_by_ipaddress(address)


def test_random_ipv4_addresses_get_the_standard_librarys_buckets() -> None:
    import random

    from collection.ratelimit import buckets_of

    generator = random.Random(16)
    for _ in range(5000):
        address = ".".join(str(generator.randrange(256)) for _ in range(4))
        assert [(b.kind, b.network) for b in buckets_of(address)] == _buckets_by_ipaddress(address)

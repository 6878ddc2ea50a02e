"""The sign-in throttle (tenants/throttle.py) over HTTP on both consoles, against the real Redis: brute
force is answered 429 with Retry-After, the delays grow and are capped, the counters are shared by both
consoles and by NFKC variants of a name, a stranger on another network does not delay the owner, and
Redis and the audit log hold no user name or address."""

from __future__ import annotations

import datetime
import html
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone

from tenants import throttle
from tenants.audit import audit_pseudonym
from tenants.models import AuditEvent, Initiative, OrganiserMembership
from tenants.network import client_networks
from tenants.second_factor import PENDING_KEY
from tests.conftest import host_of

pytestmark = pytest.mark.django_db

PASSWORD = "a long and good passphrase 42"
OPERATOR_LOGIN = "/operator/login/"
MANAGE_LOGIN = "/manage/login/"
HOME = "203.0.113.7"  # the owner's network
ELSEWHERE = "198.51.100.9"  # a stranger's


@pytest.fixture(autouse=True)
def _quick_password_hashing() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture
def staff() -> User:
    return get_user_model().objects.create_user("operator-anna", password=PASSWORD, is_staff=True)


@pytest.fixture
def organiser(alpha: Initiative) -> User:
    user = get_user_model().objects.create_user("organiser@example.org", password=PASSWORD)
    OrganiserMembership.objects.create(user=user, initiative=alpha)
    return user


def operator_client(address: str = HOME) -> Client:
    return Client(HTTP_HOST=settings.PLATFORM_DOMAIN, REMOTE_ADDR=address)


def manage_client(initiative: Initiative, address: str = HOME) -> Client:
    return Client(HTTP_HOST=host_of(initiative), REMOTE_ADDR=address)


def operator_sign_in(username: str, password: str, address: str = HOME) -> Any:
    data = {"username": username, "password": password, "next": "/operator/"}
    return operator_client(address).post(OPERATOR_LOGIN, data)


def manage_sign_in(initiative: Initiative, username: str, password: str, address: str = HOME) -> Any:
    return manage_client(initiative, address).post(MANAGE_LOGIN, {"username": username, "password": password})


def full_width(name: str) -> str:
    """The name in full-width forms (U+FF01 to U+FF5E), which NFKC maps back to ASCII."""
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in name)


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


def refused(response: Any) -> bool:
    """A checked and refused password: the admin shows its form again (200), the organisers' page 400."""
    return response.status_code in (200, 400) and 'name="password"' in response.content.decode()


def throttled_for(response: Any) -> int:
    assert response.status_code == 429, response.status_code
    assert "Too many failed sign-ins" in text(response)
    return int(response["Retry-After"])


# -- both consoles --------------------------------------------------------------------------------------


def test_brute_force_on_the_operator_console_is_answered_429_even_with_the_right_password(
    staff: User,
) -> None:
    for _attempt in range(5):
        assert refused(operator_sign_in(staff.username, "guess"))
    blocked = operator_sign_in(staff.username, PASSWORD)
    assert throttled_for(blocked) == throttle.BASE_DELAY_SECONDS
    assert "Please try again in 30 seconds" in text(blocked)
    # The throttled attempt checked no password: it did not even reach the second-factor step.
    client = operator_client()
    again = client.post(OPERATOR_LOGIN, {"username": staff.username, "password": PASSWORD})
    assert again.status_code == 429 and PENDING_KEY not in client.session

    failed = AuditEvent.objects.filter(action="signin.failed")
    assert failed.count() == 5  # the throttled attempts checked no password and are not failures
    for event in failed:  # audited once each, by tenants/account_audit.py
        assert event.details == {
            "area": "operator",
            "username_hash": audit_pseudonym("username", staff.username.casefold()),
            "user_id": staff.pk,
        }
        assert event.actor == "anonymous" and event.initiative is None
        assert staff.username not in str(event.details) and PASSWORD not in str(event.details)


def test_brute_force_on_the_organiser_sign_in_is_answered_429(alpha: Initiative, organiser: User) -> None:
    for _attempt in range(5):
        assert manage_sign_in(alpha, organiser.username, "guess").status_code == 400
    assert throttled_for(manage_sign_in(alpha, organiser.username, PASSWORD)) == 30
    events = AuditEvent.objects.filter(action="signin.failed", initiative=alpha)
    assert [event.details["area"] for event in events] == ["organiser"] * 5


def test_both_consoles_share_the_counters(alpha: Initiative, organiser: User) -> None:
    """An organiser's password guessed on the operator console (which refuses the account afterwards
    anyway) counts against the same account as on the initiative's site, and the other way round."""
    for _attempt in range(3):
        assert refused(operator_sign_in(organiser.username, "guess"))
    for _attempt in range(2):
        assert manage_sign_in(alpha, organiser.username, "guess").status_code == 400
    assert throttled_for(manage_sign_in(alpha, organiser.username, PASSWORD)) == 30
    assert throttled_for(operator_sign_in(organiser.username, PASSWORD)) == 30


# -- the name as Django authenticates it ---------------------------------------------------------------


def test_nfkc_variants_of_a_name_share_one_counter(alpha: Initiative, organiser: User) -> None:
    wide = full_width(organiser.username)
    variants = [
        wide,
        f"  {organiser.username} ",
        organiser.username.replace("@", full_width("@")),
        wide,
        full_width("o") + organiser.username[1:],
    ]
    assert len(set(variants)) == 4
    for variant in variants:
        assert manage_sign_in(alpha, variant, "guess").status_code == 400
    assert throttled_for(manage_sign_in(alpha, organiser.username, PASSWORD)) == 30
    assert throttled_for(operator_sign_in(wide, PASSWORD)) == 30
    # All five are audited as the one account.
    accounts = {event.details["user_id"] for event in AuditEvent.objects.filter(action="signin.failed")}
    assert accounts == {organiser.pk}


def test_the_normalisation_is_the_one_django_authenticates_with(alpha: Initiative, organiser: User) -> None:
    # Django signs in a full-width variant of the name (NFKC), so it must be the same counter ...
    assert manage_sign_in(alpha, full_width(organiser.username), PASSWORD).status_code == 302
    # ... but not another case, which is another account to ModelBackend (and so another counter).
    assert manage_sign_in(alpha, "Organiser@example.org", PASSWORD).status_code == 400
    assert throttle.signin_username_normalise(full_width("Org") + "\ufb01") == "Orgfi"  # with a ligature


# -- a stranger does not lock out the owner -------------------------------------------------------------


def test_a_stranger_on_another_network_does_not_delay_the_owner(alpha: Initiative, organiser: User) -> None:
    for _attempt in range(5):
        assert manage_sign_in(alpha, organiser.username, "guess", address=ELSEWHERE).status_code == 400
    assert throttled_for(manage_sign_in(alpha, organiser.username, PASSWORD, address=ELSEWHERE)) > 0
    # Neither on the initiative's site nor on the other console, from the owner's network.
    assert manage_sign_in(alpha, organiser.username, PASSWORD, address=HOME).status_code == 302
    assert manage_sign_in(alpha, organiser.username, "typo", address=HOME).status_code == 400
    # Another address in the stranger's /24 is the stranger's network.
    neighbour = "198.51.100.200"
    assert throttled_for(manage_sign_in(alpha, organiser.username, PASSWORD, address=neighbour)) > 0


def test_a_distributed_attack_reaches_the_accounts_ceiling(
    alpha: Initiative, organiser: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a guesser with many networks reaches the account's global ceiling (lowered here from 100)."""
    monkeypatch.setitem(throttle.FREE_FAILURES, throttle.ACCOUNT, 6)
    botnet = [f"192.0.2.{n}" if n < 3 else f"100.{64 + n}.0.1" for n in range(6)]
    for address in botnet:
        assert manage_sign_in(alpha, organiser.username, "guess", address=address).status_code == 400
    assert throttled_for(manage_sign_in(alpha, organiser.username, PASSWORD, address=HOME)) == 30


def test_one_client_guessing_many_accounts_is_delayed(
    alpha: Initiative, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(throttle.FREE_FAILURES, throttle.ADDRESS, 4)
    for n in range(4):
        assert manage_sign_in(alpha, f"someone-{n}@example.org", "guess").status_code == 400
    assert throttled_for(manage_sign_in(alpha, "someone-else@example.org", "guess")) == 30
    # Another client of the same /24 is not this client (its network bucket allows 100).
    neighbour = manage_sign_in(alpha, "someone-else@example.org", "guess", address="203.0.113.8")
    assert neighbour.status_code == 400


# -- growing delays, and the owner after them ----------------------------------------------------------


def test_the_delays_grow_to_the_cap_and_the_right_password_then_works(staff: User) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as traveller:
        for _attempt in range(5):
            assert refused(operator_sign_in(staff.username, "guess"))
        waits = []
        for _round in range(7):
            wait = throttled_for(operator_sign_in(staff.username, PASSWORD))
            waits.append(wait)
            traveller.shift(datetime.timedelta(seconds=wait - 1))
            assert throttled_for(operator_sign_in(staff.username, PASSWORD)) == 1  # not a second early
            traveller.shift(datetime.timedelta(seconds=1))
            assert refused(operator_sign_in(staff.username, "guess"))  # one more password is checked
        assert waits == [30, 60, 120, 240, 480, 900, 900]

        wait = throttled_for(operator_sign_in(staff.username, PASSWORD))
        traveller.shift(datetime.timedelta(seconds=wait))
        signed_in = operator_sign_in(staff.username, PASSWORD)
        # The password is right: on to the second factor (tenants/second_factor.py).
        assert (signed_in.status_code, signed_in["Location"]) == (302, "/operator/login/code/")
        # The owner is back: the account's count from this network is forgotten.
        for _attempt in range(5):
            assert refused(operator_sign_in(staff.username, "typo"))
        assert throttled_for(operator_sign_in(staff.username, PASSWORD)) == 30


def test_failures_are_forgotten_after_an_hour(alpha: Initiative, organiser: User) -> None:
    for _attempt in range(5):
        manage_sign_in(alpha, organiser.username, "guess")
    keys = _throttle_keys()
    assert keys and all(0 < _redis().ttl(key) <= throttle.FAILURE_MEMORY_SECONDS for key in keys)


# -- no names or addresses in Redis; bad input --------------------------------------------------------


def _redis() -> Any:
    return throttle._redis()


def _throttle_keys() -> list[bytes]:
    return list(_redis().scan_iter(match=f"signin:{settings.CACHES['default']['KEY_PREFIX']}:*"))


def test_redis_holds_no_name_and_no_address(alpha: Initiative, organiser: User) -> None:
    manage_sign_in(alpha, organiser.username, "guess")
    operator_sign_in(organiser.username, "guess", address="2001:db8:1:2::7")
    keys = _throttle_keys()
    assert len(keys) == 7  # one account, two networks, two addresses, one account per network each
    stored = b" ".join(keys + [_redis().get(key) for key in keys])
    for secret in (organiser.username, "organiser", HOME, "203.0.113", "2001:db8"):
        assert secret.encode() not in stored


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"username": "", "password": ""},
        {"username": "x" * 20_000, "password": "guess"},
        {"username": "\x00", "password": "guess"},
        {"username": ["a", "b"], "password": "guess"},
    ],
)
def test_bad_input_is_refused_without_a_500(alpha: Initiative, data: dict[str, Any]) -> None:
    assert manage_client(alpha).post(MANAGE_LOGIN, data).status_code == 400
    assert operator_client().post(OPERATOR_LOGIN, data).status_code == 200
    assert operator_client(address="not an address").post(OPERATOR_LOGIN, data).status_code == 200


@pytest.mark.parametrize(
    ("address", "networks"),
    [
        ("203.0.113.7", ("203.0.113.7/32", "203.0.113.0/24")),
        ("::ffff:203.0.113.7", ("203.0.113.7/32", "203.0.113.0/24")),
        ("2001:db8:1:2:3:4:5:6", ("2001:db8:1:2::/64", "2001:db8:1::/48")),
        ("nonsense", ("unknown", "unknown")),
    ],
)
def test_the_networks_of_an_address(address: str, networks: tuple[str, str]) -> None:
    assert client_networks(address) == networks
    if networks[0] != "unknown":
        assert ipaddress.ip_network(networks[0]).network_address in ipaddress.ip_network(networks[1])

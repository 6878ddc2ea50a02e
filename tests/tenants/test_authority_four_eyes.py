"""Four eyes on competent-authority certificates from the command line and in the service: the
registrant cannot confirm, `set_authority --confirm` needs `--as` naming another active operator, the
fingerprint is not printed before confirmation, the security contact hears of every registration and
confirmation, and a refusal changes nothing."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import override_settings

from eci_crypto.certificates import certificate_fingerprint, certificate_load, self_signed_certificate_create
from tenants.authorities import (
    NotificationError,
    SameOperatorError,
    authority_confirm,
    authority_register,
)
from tenants.models import AuditEvent, CompetentAuthority

pytestmark = pytest.mark.django_db

COUNTRY = "MT"


@pytest.fixture(scope="module")
def certificate_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    certificate = self_signed_certificate_create("Four-eyes test authority")[1]
    path = tmp_path_factory.mktemp("authority") / "mt.crt"
    path.write_bytes(certificate)
    return path, certificate_fingerprint(certificate_load(certificate))


@pytest.fixture
def operators() -> Iterator[None]:
    """Two operators allowed to register and confirm ("alice", "bob"), and staff and accounts that
    are not: a viewer without the permissions, an inactive operator, an organiser-like non-staff."""
    users = get_user_model().objects
    users.create_user("alice", password="p" * 16, is_staff=True, is_superuser=True)
    users.create_user("bob", password="p" * 16, is_staff=True, is_superuser=True)
    users.create_user("viewer", password="p" * 16, is_staff=True)
    users.create_user("gone", password="p" * 16, is_staff=True, is_superuser=True, is_active=False)
    users.create_user("outsider", password="p" * 16, is_superuser=True)  # not staff
    CompetentAuthority.objects.filter(country=COUNTRY).delete()
    mail.outbox.clear()
    yield


def run(*arguments: str) -> str:
    out = StringIO()
    call_command("set_authority", "--country", COUNTRY, *arguments, stdout=out)
    return out.getvalue()


def refused_count() -> int:
    return AuditEvent.objects.filter(action="authority.confirmation_refused").count()


def unconfirmed() -> bool:
    authority = CompetentAuthority.objects.get(country=COUNTRY)
    return authority.confirmed_at is None and authority.confirmed_by == ""


def test_register_prints_no_fingerprint_and_another_operator_confirms(
    operators: None, certificate_file: tuple[Path, str]
) -> None:
    path, fingerprint = certificate_file
    human = run("--certificate", str(path), "--as", "alice")
    assert "Registered the certificate of MT" in human and "--as <their username>" in human
    assert fingerprint not in human and fingerprint.replace(":", "") not in human
    listing = StringIO()
    call_command("set_authority", "--list", "--json", stdout=listing)
    (listed,) = [a for a in json.loads(listing.getvalue())["authorities"] if a["country"] == COUNTRY]
    assert listed["fingerprint_sha256"] is None and fingerprint not in listing.getvalue()
    human_list = StringIO()
    call_command("set_authority", "--list", stdout=human_list)
    assert "MT  NOT usable  fingerprint not confirmed" in human_list.getvalue()

    confirmed = json.loads(run("--confirm", fingerprint.lower(), "--as", "bob", "--json"))
    assert confirmed["confirmed_by"] == "bob" and confirmed["registered_by"] == "alice"
    assert confirmed["usable"] is True and confirmed["fingerprint_sha256"] == fingerprint
    event = AuditEvent.objects.filter(action="authority.confirmed").latest("pk")
    assert event.actor == "bob" and event.details["registered_by"] == "alice"
    registered = AuditEvent.objects.filter(action="authority.registered").latest("pk")
    assert registered.actor == "alice" and "fingerprint" not in registered.details


def test_confirm_without_as_is_refused_audited_and_changes_nothing(
    operators: None, certificate_file: tuple[Path, str]
) -> None:
    path, fingerprint = certificate_file
    run("--certificate", str(path), "--as", "alice")
    before = refused_count()
    with pytest.raises(CommandError, match="--confirm needs --as USERNAME"):
        run("--confirm", fingerprint)
    assert unconfirmed() and refused_count() == before + 1
    event = AuditEvent.objects.filter(action="authority.confirmation_refused").latest("pk")
    assert event.details == {"country": COUNTRY, "reason": "no_operator_named"}


def test_the_registrant_as_confirmer_is_refused_audited_and_mailed(
    operators: None, certificate_file: tuple[Path, str]
) -> None:
    path, fingerprint = certificate_file
    run("--certificate", str(path), "--as", "alice")
    before = refused_count()
    out = StringIO()
    with pytest.raises(CommandError, match="registered by alice: another operator must confirm it"):
        call_command(
            "set_authority",
            "--country",
            COUNTRY,
            "--confirm",
            fingerprint,
            "--as",
            "alice",
            "--json",
            stdout=out,
        )
    answer = json.loads(out.getvalue())  # one JSON object on refusal too
    assert "another operator" in answer["error"]
    assert unconfirmed() and refused_count() == before + 1
    assert AuditEvent.objects.filter(action="authority.confirmation_refused").latest("pk").details == {
        "country": COUNTRY,
        "reason": "same_operator",
    }
    assert [m.subject for m in mail.outbox][-1].endswith("self-confirmation refused for MT")


@pytest.mark.parametrize(
    ("as_user", "why"),
    [
        ("nobody", "does not exist"),
        ("gone", "inactive"),
        ("outsider", "not staff"),
        ("viewer", "staff without the permission"),
        ("", "empty"),
    ],
)
def test_as_must_name_an_active_operator_with_the_permission(
    operators: None, certificate_file: tuple[Path, str], as_user: str, why: str
) -> None:
    path, fingerprint = certificate_file
    run("--certificate", str(path), "--as", "alice")
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match="--as must name an active operator"):
        run("--confirm", fingerprint, "--as", as_user)
    assert unconfirmed(), why
    assert AuditEvent.objects.count() == before
    with pytest.raises(CommandError, match="--as must name an active operator"):
        run("--certificate", str(path), "--as", as_user)
    assert CompetentAuthority.objects.get(country=COUNTRY).registered_by == "alice", "nothing re-registered"


def test_a_viewer_given_the_permission_may_confirm(
    operators: None, certificate_file: tuple[Path, str]
) -> None:
    path, fingerprint = certificate_file
    run("--certificate", str(path), "--as", "alice")
    viewer = get_user_model().objects.get(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="change_competentauthority"))
    assert "Confirmed the certificate of MT" in run("--confirm", fingerprint, "--as", "viewer")


def test_an_anonymous_registration_is_confirmed_by_a_named_operator(
    operators: None, certificate_file: tuple[Path, str]
) -> None:
    path, fingerprint = certificate_file
    run("--certificate", str(path))
    assert CompetentAuthority.objects.get(country=COUNTRY).registered_by == "command-line"
    run("--confirm", fingerprint, "--as", "bob")
    assert CompetentAuthority.objects.get(country=COUNTRY).confirmed_by == "bob"


def test_the_security_contact_gets_one_mail_per_registration_and_confirmation(
    operators: None, certificate_file: tuple[Path, str]
) -> None:
    path, fingerprint = certificate_file
    run("--certificate", str(path), "--as", "alice")
    with pytest.raises(CommandError):
        run("--confirm", "AB:CD", "--as", "bob")  # a mistyped fingerprint: no mail, nothing confirmed
    run("--confirm", fingerprint, "--as", "bob")
    assert [m.subject for m in mail.outbox] == [
        "[ECI platform] certificate registered for MT",
        "[ECI platform] certificate confirmed for MT",
    ]
    for message in mail.outbox:
        assert message.to == [settings.SECURITY_CONTACT_EMAIL]
        assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert fingerprint not in mail.outbox[0].body and fingerprint in mail.outbox[1].body


def test_the_service_refuses_the_registrant_and_anonymous_actors(
    operators: None, certificate_file: tuple[Path, str]
) -> None:
    path, fingerprint = certificate_file
    authority_register(country=COUNTRY, certificate_pem=path.read_bytes(), actor="alice")
    for actor in ("alice", "command-line", "system", ""):
        with pytest.raises(SameOperatorError):
            authority_confirm(country=COUNTRY, fingerprint=fingerprint, actor=actor)
    assert unconfirmed()
    authority_confirm(country=COUNTRY, fingerprint=fingerprint, actor="bob")
    assert not unconfirmed()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_without_a_reachable_mail_server_nothing_is_registered_or_confirmed(
    operators: None, certificate_file: tuple[Path, str]
) -> None:
    path, fingerprint = certificate_file
    unreachable = override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=_closed_port(),
        EMAIL_TIMEOUT=5,
    )
    with unreachable, pytest.raises(NotificationError, match="nothing was changed"):
        authority_register(country=COUNTRY, certificate_pem=path.read_bytes(), actor="alice")
    assert not CompetentAuthority.objects.filter(country=COUNTRY).exists()
    assert not AuditEvent.objects.filter(action="authority.registered", actor="alice").exists()

    authority_register(country=COUNTRY, certificate_pem=path.read_bytes(), actor="alice")
    with unreachable, pytest.raises(CommandError, match="could not be e-mailed"):
        run("--confirm", fingerprint, "--as", "bob")
    assert unconfirmed()
    assert not AuditEvent.objects.filter(action="authority.confirmed", actor="bob").exists()


def test_bad_input_to_the_command_changes_nothing(
    operators: None, certificate_file: tuple[Path, str]
) -> None:
    path, fingerprint = certificate_file
    run("--certificate", str(path), "--as", "alice")
    before = (AuditEvent.objects.exclude(action="authority.confirmation_refused").count(), len(mail.outbox))
    for arguments, message in [
        (["--confirm", "not hex at all", "--as", "bob"], "does not match"),
        (["--confirm", fingerprint[:-3], "--as", "bob"], "does not match"),
        (["--confirm", "", "--as", "bob"], "does not match"),
    ]:
        with pytest.raises(CommandError, match=message):
            run(*arguments)
    with pytest.raises(CommandError, match="not a Member State"):
        call_command(
            "set_authority", "--country", "XX", "--confirm", fingerprint, "--as", "bob", stdout=StringIO()
        )
    assert unconfirmed()
    assert (
        AuditEvent.objects.exclude(action="authority.confirmation_refused").count(),
        len(mail.outbox),
    ) == before

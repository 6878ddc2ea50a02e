"""Account activity in the audit log (tenants/account_audit.py): sign-in succeeded and failed, sign-out,
over HTTP on both consoles; users created and changed (which fields, the flags' new values, never a
password); groups and permissions; organiser memberships. Nothing of a password or a username typed at
a failed sign-in is kept."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from tenants.models import AuditEvent, Initiative, OrganiserMembership
from tests.conftest import client_for
from tests.second_factor import two_step_sign_in

PASSWORD = "a-long-enough-password-for-tests"
WRONG = "not-the-right-password-at-all"


@pytest.fixture
def fresh_audit_log(db: None) -> None:
    from tests.tenants.test_audit_chain import _tamper

    _tamper("DELETE FROM tenants_auditevent")


def _actions() -> list[str]:
    return list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))


def _all_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("actor", "action", "initiative_slug", "details")))


def _verified() -> bool:
    from tenants.audit import audit_chain_verify

    return audit_chain_verify().broken is None


def test_operator_sign_in_failure_success_and_sign_out_are_audited_over_http(
    fresh_audit_log: None, platform_client: Client
) -> None:
    operator = get_user_model().objects.create_user("night-op", password=PASSWORD, is_staff=True)
    AuditEvent.objects.filter(action="user.created").get()

    refused = platform_client.post("/operator/login/", {"username": "night-op", "password": WRONG})
    assert refused.status_code == 200 and "_auth_user_id" not in platform_client.session
    failed = AuditEvent.objects.get(action="signin.failed")
    assert failed.actor == "anonymous" and failed.initiative_id is None
    assert failed.details["area"] == "operator" and failed.details["user_id"] == operator.pk
    assert len(failed.details["username_hash"]) == 32

    signed_in = two_step_sign_in(platform_client, "/operator/login/", operator, PASSWORD, next="/operator/")
    assert signed_in.status_code == 303
    succeeded = AuditEvent.objects.get(action="signin.succeeded")
    assert (succeeded.actor, succeeded.details) == ("night-op", {"user_id": operator.pk, "area": "operator"})

    assert platform_client.post("/operator/logout/").status_code == 200
    signed_out = AuditEvent.objects.get(action="signout")
    assert (signed_out.actor, signed_out.details) == (
        "night-op",
        {"user_id": operator.pk, "area": "operator"},
    )

    # The sign-in's last_login update is no account change; nothing of the passwords is kept.
    assert _actions() == ["user.created", "signin.failed", "signin.succeeded", "signout"]
    assert PASSWORD not in _all_text() and WRONG not in _all_text()
    assert _verified()


def test_organiser_sign_in_and_out_are_audited_with_their_initiative(
    fresh_audit_log: None, alpha: Initiative, beta: Initiative
) -> None:
    organiser = get_user_model().objects.create_user("org@example.eu", password=PASSWORD)
    OrganiserMembership.objects.create(user=organiser, initiative=alpha)
    client = client_for(alpha)

    assert client.post("/manage/login/", {"username": "org@example.eu", "password": WRONG}).status_code == 400
    assert two_step_sign_in(client, "/manage/login/", organiser, PASSWORD).status_code == 303
    client.post("/manage/logout/")

    events = {event.action: event for event in AuditEvent.objects.filter(action__startswith="sign")}
    assert set(events) == {"signin.failed", "signin.succeeded", "signout"}
    for event in events.values():
        assert (event.initiative_id, event.initiative_slug) == (alpha.pk, "alpha")
        assert event.details["area"] == "organiser"
    assert events["signin.succeeded"].actor == "org@example.eu"  # an organiser's username, as elsewhere
    assert "org@example.eu" not in json.dumps(events["signin.failed"].details)
    assert events["signin.failed"].actor == "anonymous"
    assert not AuditEvent.objects.filter(initiative=beta).exists()


def test_a_failed_sign_in_keeps_a_keyed_hash_of_the_username_only(
    fresh_audit_log: None, platform_client: Client
) -> None:
    from tenants.audit import audit_pseudonym

    wide = "\uff53\uff4f\uff4d\uff45\uff4f\uff4e\uff45"  # "someone" in full-width letters
    for username in ("Someone.Unknown@example.eu", f"{wide}.unknown@example.eu", "else@example.eu"):
        platform_client.post("/operator/login/", {"username": username, "password": WRONG})
    first, full_width, other = AuditEvent.objects.filter(action="signin.failed").order_by("sequence")
    # Variants Django's NFKC folding and case make one name share one pseudonym; another name differs.
    assert first.details["username_hash"] == full_width.details["username_hash"]
    assert first.details["username_hash"] != other.details["username_hash"]
    assert first.details["username_hash"] == audit_pseudonym("username", "someone.unknown@example.eu")
    assert "user_id" not in first.details  # no such account
    text = _all_text()
    assert "unknown@example.eu" not in text.lower() and "else@" not in text and WRONG not in text


def test_user_flag_changes_are_audited_with_the_fields_and_new_values(fresh_audit_log: None) -> None:
    user = get_user_model().objects.create_user("flagged", password=PASSWORD)
    created = AuditEvent.objects.get(action="user.created")
    assert created.actor == "system"  # no request: a command or a worker
    assert created.details == {
        "user_id": user.pk,
        "usable_password": True,
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
    }

    user.is_staff = True
    user.is_superuser = True
    user.save()
    user.is_active = False
    user.save(update_fields=["is_active"])
    user.set_password("another-long-password-here")
    user.email = "flagged@example.eu"
    user.save()
    user.save()  # nothing changed: nothing recorded

    changes = [
        event.details for event in AuditEvent.objects.filter(action="user.changed").order_by("sequence")
    ]
    assert changes == [
        {"user_id": user.pk, "fields": ["is_staff", "is_superuser"], "is_staff": True, "is_superuser": True},
        {"user_id": user.pk, "fields": ["is_active"], "is_active": False},
        {"user_id": user.pk, "fields": ["email", "password"]},
    ]
    assert "pbkdf2" not in _all_text() and "flagged@example.eu" not in _all_text()

    user_id = user.pk
    user.delete()
    assert AuditEvent.objects.get(action="user.deleted").details == {"user_id": user_id}
    assert _verified()


def test_an_operator_changing_a_user_in_the_console_is_the_actor(
    fresh_audit_log: None, operator: Client
) -> None:
    target = get_user_model().objects.create_user("target", password=PASSWORD)
    response = operator.post(
        f"/operator/auth/user/{target.pk}/change/",
        {
            "username": "target",
            "first_name": "",
            "last_name": "",
            "email": "",
            "is_active": "on",
            "is_staff": "on",
            "date_joined_0": "2026-01-05",
            "date_joined_1": "10:00:00",
            "initial-date_joined_0": "2026-01-05",
            "initial-date_joined_1": "10:00:00",
            "last_login_0": "",
            "last_login_1": "",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(action="user.changed", details__user_id=target.pk)
    assert event.actor == "op"
    assert event.details == {"user_id": target.pk, "fields": ["is_staff"], "is_staff": True}


def test_groups_and_permissions_given_and_taken_are_audited_from_either_side(fresh_audit_log: None) -> None:
    user = get_user_model().objects.create_user("grouped")
    group = Group.objects.create(name="authority-registrars")
    permission = Permission.objects.get(codename="change_competentauthority")

    user.groups.add(group)
    group.user_set.remove(user)
    group.user_set.add(user)
    user.groups.clear()
    user.user_permissions.add(permission)
    permission.user_set.clear()
    group.permissions.add(permission)
    group.permissions.clear()
    group_id = group.pk
    group.delete()

    recorded = [
        (event.action, event.details)
        for event in AuditEvent.objects.exclude(action="user.created").order_by("sequence")
    ]
    assert recorded == [
        ("group.created", {"group_id": group_id, "name": "authority-registrars"}),
        ("user.groups_changed", {"user_id": user.pk, "added": [group_id]}),
        ("user.groups_changed", {"user_id": user.pk, "removed": [group_id]}),
        ("user.groups_changed", {"user_id": user.pk, "added": [group_id]}),
        ("user.groups_changed", {"user_id": user.pk, "removed": [group_id]}),
        ("user.permissions_changed", {"user_id": user.pk, "added": [permission.pk]}),
        ("user.permissions_changed", {"user_id": user.pk, "removed": [permission.pk]}),
        ("group.permissions_changed", {"group_id": group_id, "added": [permission.pk]}),
        ("group.permissions_changed", {"group_id": group_id, "removed": [permission.pk]}),
        ("group.deleted", {"group_id": group_id, "name": "authority-registrars"}),
    ]
    assert _verified()


def test_memberships_added_and_removed_are_audited_on_their_initiative(
    fresh_audit_log: None, alpha: Initiative
) -> None:
    user = get_user_model().objects.create_user("member@example.eu")
    membership = OrganiserMembership.objects.create(user=user, initiative=alpha)
    membership_id, user_id = membership.pk, user.pk
    user.delete()  # the membership goes with the account
    added, removed = (
        AuditEvent.objects.get(action="membership.added"),
        AuditEvent.objects.get(action="membership.removed"),
    )
    for event in (added, removed):
        assert (event.initiative_id, event.initiative_slug) == (alpha.pk, "alpha")
        assert event.details == {"user_id": user_id, "membership_id": membership_id}
    assert _actions() == ["user.created", "membership.added", "membership.removed", "user.deleted"]
    assert "member@example.eu" not in _all_text()

"""Roles kept apart: a staff account never organises and an organiser never becomes staff, whichever path
tries (the model, onboarding, the operator console); and in the console only a superuser grants
privileges or changes a privileged account."""

from __future__ import annotations

import datetime
import html
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from tenants.models import Initiative, OrganiserMembership
from tenants.roles import ORGANISER_CANNOT_BE_STAFF, RoleConflictError
from tests.conftest import REGISTER_DATA
from tests.second_factor import verified_login

pytestmark = pytest.mark.django_db

PASSWORD = "a long and good passphrase 42"


def _user(name: str, **fields: Any) -> User:
    return get_user_model().objects.create_user(name, password=PASSWORD, **fields)


def _organiser(alpha: Initiative, name: str = "organiser@example.org") -> User:
    user = _user(name)
    OrganiserMembership.objects.create(user=user, initiative=alpha)
    return user


# -- the model layer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("privilege", [{"is_staff": True}, {"is_superuser": True}])
def test_a_staff_account_cannot_become_an_organiser(alpha: Initiative, privilege: dict[str, bool]) -> None:
    staff = _user("operator-anna", **privilege)
    with pytest.raises(RoleConflictError, match="cannot organise an initiative"):
        OrganiserMembership.objects.create(user=staff, initiative=alpha)
    with pytest.raises(RoleConflictError):
        OrganiserMembership.objects.get_or_create(user=staff, initiative=alpha)
    assert not OrganiserMembership.objects.filter(user=staff).exists()


def test_the_membership_check_reads_the_committed_row_not_a_stale_object(alpha: Initiative) -> None:
    user = _user("operator-anna")
    stale = get_user_model().objects.get(pk=user.pk)
    get_user_model().objects.filter(pk=user.pk).update(is_staff=True)  # promoted meanwhile
    with pytest.raises(RoleConflictError):
        OrganiserMembership.objects.create(user=stale, initiative=alpha)


@pytest.mark.parametrize("privilege", ["is_staff", "is_superuser"])
def test_an_organiser_cannot_become_staff(alpha: Initiative, privilege: str) -> None:
    organiser = _organiser(alpha)
    setattr(organiser, privilege, True)
    with pytest.raises(RoleConflictError, match="cannot be operator staff"):
        organiser.save()
    organiser.refresh_from_db()
    assert not (organiser.is_staff or organiser.is_superuser)
    # Other changes to an organiser still save.
    organiser.first_name = "Eva"
    organiser.save()


def test_an_organiser_may_become_staff_once_no_longer_an_organiser(alpha: Initiative) -> None:
    organiser = _organiser(alpha)
    OrganiserMembership.objects.filter(user=organiser).delete()
    organiser.is_staff = True
    organiser.save()
    organiser.refresh_from_db()
    assert organiser.is_staff


# -- onboarding ---------------------------------------------------------------------------------------


def test_onboarding_refuses_a_staff_account_as_first_organiser() -> None:
    _user("operator@example.eu", is_staff=True)
    registered = timezone.localdate() - datetime.timedelta(days=3)
    contacts = [f"{person.name} <{person.email}>" for person in REGISTER_DATA["contact_persons"]]  # type: ignore[attr-defined]
    arguments = [
        "--slug=kappa",
        f"--registration-number=ECI({registered.year})000555",
        "--title=Kappa",
        f"--subject={REGISTER_DATA['subject']}",
        f"--objectives={REGISTER_DATA['objectives']}",
        f"--register-url={REGISTER_DATA['register_url']}",
        *(f"--contact={contact}" for contact in contacts),
        f"--registered-on={registered.isoformat()}",
        f"--collection-start={timezone.localdate().isoformat()}",
        "--organiser-email=Operator@Example.eu",
    ]
    with pytest.raises(CommandError, match="cannot organise an initiative"):
        call_command("onboard_initiative", *arguments)
    assert not Initiative.objects.filter(slug="kappa").exists()


# -- the operator console -------------------------------------------------------------------------------


def _console(user: User) -> Client:
    return verified_login(Client(HTTP_HOST=settings.PLATFORM_DOMAIN), user)


def _user_manager() -> User:
    """A staff member who may view and change users, not a superuser."""
    manager = _user("operator-bo", is_staff=True)
    manager.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_user", "change_user", "view_group", "change_group"])
    )
    return manager


def _change_form(user: User, **changes: str) -> dict[str, str]:
    joined = timezone.localtime(user.date_joined)
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "date_joined_0": joined.date().isoformat(),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
    }
    if user.is_active:
        data["is_active"] = "on"
    data.update(changes)
    return data


def _page(response: Any) -> str:
    return html.unescape(response.content.decode())


def test_a_non_superuser_staff_cannot_grant_privileges(alpha: Initiative) -> None:
    manager = _user_manager()
    plain = _user("someone")
    group = Group.objects.create(name="authority registrars")
    console = _console(manager)
    url = f"/operator/auth/user/{plain.pk}/change/"

    page = console.get(url)
    assert page.status_code == 200
    assert 'name="is_staff"' not in _page(page) and 'name="is_superuser"' not in _page(page)
    assert 'name="groups"' not in _page(page) and 'name="user_permissions"' not in _page(page)

    permission = Permission.objects.get(codename="change_user")
    form = _change_form(
        plain,
        first_name="Changed",
        is_staff="on",
        is_superuser="on",
        groups=str(group.pk),
        user_permissions=str(permission.pk),
    )
    response = console.post(url, form)
    assert response.status_code == 302
    plain.refresh_from_db()
    assert plain.first_name == "Changed"  # what the manager may change is changed ...
    assert not (plain.is_staff or plain.is_superuser)  # ... privileges are not
    assert not plain.groups.exists() and not plain.user_permissions.exists()

    # Nor through a group's permissions, nor on themselves.
    assert console.post(f"/operator/auth/group/{group.pk}/change/", {"name": "x"}).status_code == 403
    assert console.post("/operator/auth/group/add/", {"name": "mine"}).status_code == 403
    own = console.post(f"/operator/auth/user/{manager.pk}/change/", _change_form(manager, is_superuser="on"))
    assert own.status_code == 403
    manager.refresh_from_db()
    assert not manager.is_superuser


def test_a_non_superuser_staff_cannot_change_a_privileged_account(alpha: Initiative) -> None:
    console = _console(_user_manager())
    root = _user("root-operator", is_staff=True, is_superuser=True)
    assert console.post(f"/operator/auth/user/{root.pk}/change/", _change_form(root)).status_code == 403
    password = console.post(
        f"/operator/auth/user/{root.pk}/password/", {"password1": "x" * 20, "password2": "x" * 20}
    )
    assert password.status_code == 403
    root.refresh_from_db()
    assert root.check_password(PASSWORD)
    assert console.post(f"/operator/auth/user/{root.pk}/delete/", {"post": "yes"}).status_code == 403
    assert get_user_model().objects.filter(pk=root.pk).exists()


def test_a_superuser_grants_privileges_but_never_to_an_organiser(alpha: Initiative) -> None:
    console = _console(_user("root-operator", is_staff=True, is_superuser=True))
    plain, organiser = _user("someone"), _organiser(alpha)

    granted = console.post(f"/operator/auth/user/{plain.pk}/change/", _change_form(plain, is_staff="on"))
    assert granted.status_code == 302
    plain.refresh_from_db()
    assert plain.is_staff

    refused = console.post(
        f"/operator/auth/user/{organiser.pk}/change/", _change_form(organiser, is_staff="on")
    )
    assert refused.status_code == 200
    assert ORGANISER_CANNOT_BE_STAFF in _page(refused)
    organiser.refresh_from_db()
    assert not organiser.is_staff

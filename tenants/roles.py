"""Roles kept apart: an organiser account is never operator staff, and a staff account never organises an
initiative. An operator who also organised one could, alone, export a Member State's statements and
decrypt them; an organiser made staff would reach every initiative. One person who needs both has two
accounts.

Enforced where the data changes, so that every path (console, commands, services, shell) meets it:
OrganiserMembership.save refuses a staff or superuser account, and a pre_save receiver on the user model
refuses staff or superuser for an account with memberships. Both lock the user's row first (inside a
transaction), so a promotion and a membership made at the same moment cannot both pass. The operator
console and onboarding check first, to answer with a form error instead of an exception.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection

STAFF_CANNOT_ORGANISE = (
    "An operator staff account cannot organise an initiative; the organiser needs an account of their own."
)
ORGANISER_CANNOT_BE_STAFF = (
    "An organiser of an initiative cannot be operator staff or superuser; an operator needs an account of "
    "their own."
)


class RoleConflictError(ValidationError):
    """A change would make one account both staff and organiser."""


def user_privileged(user: Any) -> bool:
    return bool(user.is_staff or user.is_superuser)


def user_organises(user_id: int | None) -> bool:
    # Through the memberships' reverse name: this module is imported by tenants.models.
    users = get_user_model()._default_manager
    return user_id is not None and users.filter(pk=user_id, organiser_of__isnull=False).exists()


def _user_row_lock(user_id: int) -> Any:
    """The user's row as committed, locked until the end of the transaction."""
    return get_user_model()._default_manager.select_for_update().filter(pk=user_id).first()


def membership_check(user_id: int) -> None:
    """Inside a transaction, before a membership is written: refuse a staff or superuser account."""
    user = _user_row_lock(user_id)
    if user is not None and user_privileged(user):
        raise RoleConflictError(STAFF_CANNOT_ORGANISE, code="staff_cannot_organise")


def user_roles_check(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """pre_save receiver of the user model (connected in tenants/apps.py)."""
    if raw or instance.pk is None or not user_privileged(instance):
        return
    if connection.in_atomic_block:
        _user_row_lock(instance.pk)  # serialises with membership_check
    if user_organises(instance.pk):
        raise RoleConflictError(ORGANISER_CANNOT_BE_STAFF, code="organiser_cannot_be_staff")

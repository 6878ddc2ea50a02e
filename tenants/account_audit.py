"""Account activity in the audit log, from Django's signals, so that every path is covered (the operator
console, the organiser pages, invitations, commands): sign-in succeeded or failed, sign-out, a user
created, changed or deleted (which fields; the flags' new values; never a password), groups and
permissions granted or taken, organiser memberships added or removed.

Failed sign-ins are recorded here, from `user_login_failed`, and only here: the sign-in throttle need
not record them again. A failure names no username: it keeps a keyed hash of it (`audit_pseudonym`), so
that failures against one account can be told apart and counted, and the account's id when it exists.

Who made a model change is the signed-in user of the request it happened in (AuditActorMiddleware keeps
the request for the signals); outside a request it is `system`."""

from __future__ import annotations

import contextvars
import unicodedata
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model, user_logged_in, user_logged_out, user_login_failed
from django.contrib.auth.models import Group
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.http import HttpRequest, HttpResponse

from tenants.account_notices import AccountChange, account_change_notify
from tenants.audit import ANONYMOUS_ACTOR, SYSTEM_ACTOR, audit_pseudonym, audit_record
from tenants.models import Initiative, OrganiserMembership

# A change to these is recorded by name; the flags with their new value too. Never a value otherwise.
USER_FIELDS = ("username", "email", "first_name", "last_name", "password")
USER_FLAGS = ("is_active", "is_staff", "is_superuser")

_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar("audit_request", default=None)


class AuditActorMiddleware:
    """Keeps the request while it is served, for the signals below to name the signed-in actor. Stands
    after the authentication middleware (where there is none, the actor is anonymous)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def _actor() -> str:
    request = _request.get()
    if request is None:
        return SYSTEM_ACTOR
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return str(user.get_username())
    return ANONYMOUS_ACTOR


def _place(request: HttpRequest | None) -> tuple[Initiative | None, str]:
    """The initiative whose host the request came to, and the signed-in area: the operator console on
    the platform domain, the organiser pages on an initiative's host."""
    tenant = getattr(request, "tenant", None)
    if isinstance(tenant, Initiative):
        return tenant, "organiser"
    return None, "operator"


def _signed_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    initiative, area = _place(request)
    audit_record(
        actor=user.get_username(),
        action="signin.succeeded",
        initiative=initiative,
        user_id=user.pk,
        area=area,
    )


def _sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    user_model = get_user_model()
    username = credentials.get("username", credentials.get(user_model.USERNAME_FIELD))
    initiative, area = _place(request)
    details: dict[str, object] = {"area": area}
    if isinstance(username, str) and username:
        # Folded as Django folds usernames (NFKC), and case too: variants of one name share a pseudonym.
        details["username_hash"] = audit_pseudonym(
            "username", unicodedata.normalize("NFKC", username).casefold()
        )
        user_id = (
            user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username})
            .values_list("pk", flat=True)
            .first()
        )
        if user_id is not None:
            details["user_id"] = user_id
    audit_record(actor=ANONYMOUS_ACTOR, action="signin.failed", initiative=initiative, **details)


def _signed_out(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is None:  # signing out without being signed in
        return
    initiative, area = _place(request)
    audit_record(
        actor=user.get_username(), action="signout", initiative=initiative, user_id=user.pk, area=area
    )


def _user_before_save(
    sender: Any, instance: Any, raw: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    instance._audit_before = None
    if raw or instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & {*USER_FIELDS, *USER_FLAGS}:
        return  # last_login on every sign-in: nothing of account or privileges
    instance._audit_before = (
        sender._default_manager.filter(pk=instance.pk).values(*USER_FIELDS, *USER_FLAGS).first()
    )


def _user_saved(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    flags: dict[str, object] = {flag: bool(getattr(instance, flag)) for flag in USER_FLAGS}
    if created:
        audit_record(
            actor=_actor(),
            action="user.created",
            initiative=None,
            user_id=instance.pk,
            usable_password=instance.has_usable_password(),
            **flags,
        )
        return
    before = getattr(instance, "_audit_before", None)
    instance._audit_before = None
    if before is None:
        return
    changed = [name for name in (*USER_FIELDS, *USER_FLAGS) if before[name] != getattr(instance, name)]
    if changed:
        audit_record(
            actor=_actor(),
            action="user.changed",
            initiative=None,
            user_id=instance.pk,
            fields=changed,
            **{flag: flags[flag] for flag in USER_FLAGS if flag in changed},
        )
    if "password" in changed:  # whichever way it changed: the account holder hears of it
        account_change_notify(instance.pk, AccountChange.PASSWORD)


def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    audit_record(actor=_actor(), action="user.deleted", user_id=instance.pk)


def _group_saved(sender: Any, instance: Group, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if created and not raw:
        audit_record(actor=_actor(), action="group.created", group_id=instance.pk, name=instance.name)


def _group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    audit_record(actor=_actor(), action="group.deleted", group_id=instance.pk, name=instance.name)


def _relation_audit(
    through: type[Model], *, owner: str, owner_field: str, other_field: str, event: str
) -> Callable[..., None]:
    """A handler for one many-to-many relation (user-groups, user-permissions, group-permissions), from
    either side; a `clear()` is recorded with the ids it removed."""

    def handler(
        sender: Any, instance: Model, action: str, reverse: bool, pk_set: set[int] | None, **kw: Any
    ) -> None:
        side = other_field if reverse else owner_field
        if action == "pre_clear":
            values = through._default_manager.filter(**{f"{side}_id": instance.pk})
            instance._audit_cleared = list(  # type: ignore[attr-defined]
                values.values_list(f"{other_field if not reverse else owner_field}_id", flat=True)
            )
            return
        if action == "post_clear":
            ids = getattr(instance, "_audit_cleared", [])
        elif action in ("post_add", "post_remove"):
            ids = sorted(pk_set or ())
        else:
            return
        if not ids:
            return
        change = "added" if action == "post_add" else "removed"
        # Recorded per owner (a user, or a group for its permissions) whichever side was changed.
        pairs = [(instance.pk, ids)] if not reverse else [(owner_id, [instance.pk]) for owner_id in ids]
        for owner_id, others in pairs:
            audit_record(actor=_actor(), action=event, **{f"{owner}_id": owner_id, change: sorted(others)})

    return handler


def _membership_saved(
    sender: Any, instance: OrganiserMembership, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if created and not raw:
        audit_record(
            actor=_actor(),
            action="membership.added",
            initiative=instance.initiative,
            user_id=instance.user_id,
            membership_id=instance.pk,
        )


def _membership_deleted(sender: Any, instance: OrganiserMembership, **kwargs: Any) -> None:
    initiative = Initiative.objects.filter(pk=instance.initiative_id).first()
    audit_record(
        actor=_actor(),
        action="membership.removed",
        initiative=initiative,
        user_id=instance.user_id,
        membership_id=instance.pk,
    )


def connect() -> None:
    """Connect the handlers (once: AppConfig.ready)."""
    user_model = get_user_model()
    user_logged_in.connect(_signed_in, dispatch_uid="audit.signin.succeeded")
    user_login_failed.connect(_sign_in_failed, dispatch_uid="audit.signin.failed")
    user_logged_out.connect(_signed_out, dispatch_uid="audit.signout")
    pre_save.connect(_user_before_save, sender=user_model, dispatch_uid="audit.user.before")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="audit.user.saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid="audit.user.deleted")
    post_save.connect(_group_saved, sender=Group, dispatch_uid="audit.group.saved")
    post_delete.connect(_group_deleted, sender=Group, dispatch_uid="audit.group.deleted")
    relations = (
        (user_model.groups.through, "user", "user", "group", "user.groups_changed"),
        (user_model.user_permissions.through, "user", "user", "permission", "user.permissions_changed"),
        (Group.permissions.through, "group", "group", "permission", "group.permissions_changed"),
    )
    for through, owner, owner_field, other_field, action in relations:
        m2m_changed.connect(
            _relation_audit(
                through, owner=owner, owner_field=owner_field, other_field=other_field, event=action
            ),
            sender=through,
            weak=False,
            dispatch_uid=f"audit.{action}",
        )
    post_save.connect(_membership_saved, sender=OrganiserMembership, dispatch_uid="audit.membership.added")
    post_delete.connect(
        _membership_deleted, sender=OrganiserMembership, dispatch_uid="audit.membership.removed"
    )

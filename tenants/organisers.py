"""Organisers of an initiative: invitations by e-mail, joining by one, passwords, removal.

An invitation is a random token sent once in a link on the initiative's own site; only its SHA-256 is
kept, so the database alone cannot be used to join. It works once, until it expires
(ORGANISER_INVITATION_HOURS), and a newer invitation to the same address replaces it. Accepting creates
the account (username and address are the invited address, normalised as Django's `create_user` does),
or adds the membership to the account that already has that address after its password is given.

Organisers are never operator staff: an address of a staff account is refused when inviting and when
accepting. Removing an organiser ends every session of that account, on every host.

Services (writes) and the few reads they share live together here: the topic is small.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
import smtplib
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from tenants.audit import audit_record
from tenants.models import Initiative, InitiativeState, OrganiserInvitation, OrganiserMembership
from tenants.sessions import user_sessions_end
from tenants.urls import initiative_site_url

# An invitation leads to the initiative's site: one being provisioned has none, a destroyed one keeps
# only its public page and its existing organisers.
NO_INVITATION_STATES = frozenset({InitiativeState.PROVISIONING, InitiativeState.DESTROYED})
ADDRESS_MAX_LENGTH = OrganiserInvitation._meta.get_field("email").max_length or 254
TOKEN_MAX_LENGTH = 100  # ours are 43 characters; anything much longer is not one


class OrganiserError(ValueError):
    """A refused organiser change; `field` names the input at fault, `messages` lists every problem (the
    password validators give several), `status` is the HTTP answer a page gives."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None, messages: list[str] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.messages = messages or [message]


class InvitationGoneError(OrganiserError):
    """The invitation was used, revoked or has expired, or its initiative takes no organisers now."""

    status = 410


class OperatorAddressError(OrganiserError):
    status = 403


# -- reads ------------------------------------------------------------------------------------------------


def organiser_address_normalise(email: str) -> str:
    """The address as Django's `create_user` stores a username and an e-mail: the domain in lower case,
    the whole in Unicode NFKC (full-width variants of one address are one address)."""
    user_model = get_user_model()
    return str(user_model.normalize_username(BaseUserManager.normalize_email(email.strip())))


def accounts_with_address(address: str) -> QuerySet[Any]:
    """Accounts whose user name or e-mail is the address, in any case (onboarding stored them in lower
    case; a person types it as they like)."""
    return get_user_model().objects.filter(Q(username__iexact=address) | Q(email__iexact=address))


def invitation_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_for_token(initiative: Initiative, token: str) -> OrganiserInvitation | None:
    """The invitation of this initiative with this token, whatever its state; None for an unknown token
    or one of another initiative (its link belongs to that initiative's site)."""
    if not token or len(token) > TOKEN_MAX_LENGTH:
        return None
    return (
        OrganiserInvitation.objects.select_related("initiative")
        .filter(initiative_id=initiative.pk, token_sha256=invitation_token_digest(token))
        .first()
    )


def invitation_problem(
    invitation: OrganiserInvitation, *, now: datetime.datetime | None = None
) -> str | None:
    """Why the invitation can no longer be accepted, or None while it can."""
    now = now or timezone.now()
    if invitation.accepted_at is not None:
        return "This invitation has already been used. Sign in with the account it created."
    if invitation.revoked_at is not None:
        return "This invitation was replaced by a newer one or withdrawn. Use the link of the newest message."
    if invitation.expires_at <= now:
        return (
            "This invitation has expired. Ask an organiser of the initiative or the operator for a new one."
        )
    if invitation.initiative.state in NO_INVITATION_STATES:
        return "This initiative takes no new organisers."
    return None


def invitation_account(invitation: OrganiserInvitation) -> AbstractBaseUser | None:
    """The existing account the invitation joins, or None when accepting creates one. Refused when the
    address belongs to operator staff or to several accounts."""
    accounts = list(accounts_with_address(invitation.email))
    if any(account.is_staff or account.is_superuser for account in accounts):
        raise OperatorAddressError(
            "This address belongs to an operator account; operator accounts cannot organise an initiative. "
            "Ask for an invitation to another address."
        )
    if len(accounts) > 1:
        raise OrganiserError("Several accounts use this address; ask the operator to sort them out first.")
    return accounts[0] if accounts else None


def invitation_needs_new_password(account: AbstractBaseUser | None) -> bool:
    """A new account, or one that never had a password (made at onboarding), sets one; an account with a
    password proves it is theirs by giving it."""
    return account is None or not account.has_usable_password()


def organiser_accounts_with_address(initiative: Initiative, email: str) -> list[Any]:
    """The active organiser accounts of this initiative with this address (for a password reset)."""
    address = organiser_address_normalise(email)
    if not address:
        return []
    return list(
        accounts_with_address(address)
        .filter(is_active=True, is_staff=False, is_superuser=False, organiser_of__initiative=initiative)
        .distinct()
    )


def organisers_of(initiative: Initiative) -> QuerySet[OrganiserMembership]:
    return (
        OrganiserMembership.objects.filter(initiative=initiative)
        .select_related("user")
        .order_by("created_at")
    )


def organiser_membership(initiative: Initiative, user_id: int) -> OrganiserMembership | None:
    return (
        OrganiserMembership.objects.select_related("user")
        .filter(initiative=initiative, user_id=user_id)
        .first()
    )


def invitations_open(initiative: Initiative) -> QuerySet[OrganiserInvitation]:
    return OrganiserInvitation.objects.filter(
        initiative=initiative,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).order_by("created_at")


# -- writes -----------------------------------------------------------------------------------------------


def _address_checked(email: str) -> str:
    address = organiser_address_normalise(email)
    if not address:
        raise OrganiserError("Enter the e-mail address to invite.", field="email")
    if len(address) > ADDRESS_MAX_LENGTH:
        raise OrganiserError(f"An e-mail address has at most {ADDRESS_MAX_LENGTH} characters.", field="email")
    try:
        validate_email(address)
    except ValidationError:
        raise OrganiserError("Enter a valid e-mail address.", field="email") from None
    return address


def organiser_invite(initiative: Initiative, *, email: str, actor: str) -> OrganiserInvitation:
    """Invite `email` to organise the initiative: store the invitation (its token's hash only) and send
    the link by e-mail. Earlier open invitations to the same address are revoked. Refused for a bad
    address, an operator's address, a present organiser, an initiative being provisioned or destroyed,
    and when the message cannot be sent; a refusal writes nothing."""
    address = _address_checked(email)
    with transaction.atomic():
        # The initiative's row serialises invitations to it (one open invitation per address).
        current = Initiative.objects.select_for_update().get(pk=initiative.pk)
        if current.state in NO_INVITATION_STATES:
            raise OrganiserError(f"{current.slug} is {current.state}: it takes no new organisers.")
        accounts = list(accounts_with_address(address))
        if any(account.is_staff or account.is_superuser for account in accounts):
            raise OrganiserError(
                "This address belongs to an operator account; organisers are never operators.", field="email"
            )
        if OrganiserMembership.objects.filter(initiative=current, user__in=accounts).exists():
            raise OrganiserError("This address is already an organiser of the initiative.", field="email")
        now = timezone.now()
        earlier = OrganiserInvitation.objects.filter(
            initiative=current, email__iexact=address, accepted_at__isnull=True, revoked_at__isnull=True
        )
        revoked = sorted(earlier.values_list("pk", flat=True))
        earlier.update(revoked_at=now)
        token = secrets.token_urlsafe(32)
        invitation = OrganiserInvitation.objects.create(
            initiative=current,
            email=address,
            token_sha256=invitation_token_digest(token),
            invited_by=actor,
            expires_at=now + datetime.timedelta(hours=settings.ORGANISER_INVITATION_HOURS),
        )
        audit_record(
            actor=actor,
            action="organiser.invited",
            initiative=current,
            invitation_id=invitation.pk,
            revoked_invitation_ids=revoked,
            expires_at=invitation.expires_at.isoformat(),
        )
        # Sent inside the transaction: a message that cannot go out leaves no invitation behind. The
        # token exists only here and in the message, so it is never handed to a worker.
        _invitation_send(current, invitation, token)
    return invitation


def invitation_link(initiative: Initiative, token: str) -> str:
    return f"{initiative_site_url(initiative)}manage/invitation/{token}/"


def _invitation_send(initiative: Initiative, invitation: OrganiserInvitation, token: str) -> None:
    context = {
        "initiative": initiative,
        "title": initiative.text("title", "en"),
        "link": invitation_link(initiative, token),
        "expires_at": timezone.localtime(invitation.expires_at),
        "hours": settings.ORGANISER_INVITATION_HOURS,
    }
    subject = f"Invitation to organise the European citizens' initiative {initiative.registration_number}"
    body = render_to_string("manage/invitation_email.txt", context)
    try:
        EmailMessage(subject, body, to=[invitation.email]).send(fail_silently=False)
    except (smtplib.SMTPException, OSError):
        raise OrganiserError(
            "The invitation e-mail could not be sent, so no invitation was made. Try again later."
        ) from None


def organiser_invitation_accept(invitation: OrganiserInvitation, *, password: str) -> Any:
    """Accept the invitation: create the account with `password` (Django's validators), set it on an
    account that never had one, or check it against the existing account's; then add the membership
    and mark the invitation used. Returns the account. A refusal writes nothing."""
    with transaction.atomic():
        # Locked: two tabs accepting at once get one membership; the second finds it used.
        invitation = (
            OrganiserInvitation.objects.select_for_update().select_related("initiative").get(pk=invitation.pk)
        )
        problem = invitation_problem(invitation)
        if problem:
            raise InvitationGoneError(problem)
        account = invitation_account(invitation)
        if invitation_needs_new_password(account):
            user = account or get_user_model()(username=invitation.email, email=invitation.email)
            _password_validate(password, user)
            user.set_password(password)
            kind = "existing" if account is not None else "new"
            try:
                with transaction.atomic():
                    user.save()
            except IntegrityError:
                raise InvitationGoneError(
                    "An account with this address was just created; open the link again."
                ) from None
        else:
            assert account is not None
            if not (account.is_active and account.check_password(password)):
                raise OrganiserError(
                    "This is not the password of the account with this address.", field="password"
                )
            user, kind = account, "existing"
        _, created = OrganiserMembership.objects.get_or_create(user=user, initiative=invitation.initiative)
        if not created:
            raise InvitationGoneError("You are already an organiser of this initiative: sign in.")
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        audit_record(
            actor=user.get_username(),
            action="organiser.joined",
            initiative=invitation.initiative,
            invitation_id=invitation.pk,
            user_id=user.pk,
            account=kind,
        )
    return user


def _password_validate(password: str, user: Any) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as error:
        raise OrganiserError(
            "The password is not accepted.", field="password", messages=list(error.messages)
        ) from None


def organiser_password_set(user: Any, *, password: str, initiative: Initiative, how: str) -> None:
    """Set an organiser's own password after a reset link or a change (`how`: "reset" or "changed"),
    Django's validators applied. Every other session of the account ends: Django binds a session to the
    password it was opened with. Audited, never with the password."""
    _password_validate(password, user)
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_record(
            actor=user.get_username(),
            action=f"organiser.password_{how}",
            initiative=initiative,
            user_id=user.pk,
        )


def organiser_remove(initiative: Initiative, user: Any, *, actor: str) -> int:
    """Remove the user from the initiative's organisers and end all of the user's sessions (so the next
    request is signed out everywhere); returns how many sessions ended. The account stays."""
    with transaction.atomic():
        deleted, _ = OrganiserMembership.objects.filter(initiative=initiative, user=user).delete()
        if not deleted:
            raise OrganiserError("This account is not an organiser of the initiative.")
        ended = user_sessions_end(user.pk)
        audit_record(
            actor=actor,
            action="organiser.removed",
            initiative=initiative,
            user_id=user.pk,
            sessions_ended=ended,
        )
    return ended

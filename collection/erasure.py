"""The collection app's part of the destruction of REQ-18 and REQ-19 (run by tenants.destruction): the
statements, the e-mail addresses and the published counts, each removed in the initiative's schema."""

from __future__ import annotations

from django.core.cache import cache

from collection.models import ContactEmail, Statement
from collection.selectors import COUNTS_CACHE_KEY, statement_counts_by_country
from tenants.destruction import ErasureOutcome, ErasureStep, register_erasure_step
from tenants.models import DestructionScope, Initiative


def statements_destroy(initiative: Initiative) -> ErasureOutcome:
    """Every statement row, duplicate-index digests with them. The counts per Member State are what
    stays (they go into the destruction record in the same transaction)."""
    with initiative:
        counts = statement_counts_by_country()
        deleted, _ = Statement.objects.all().delete()
    return ErasureOutcome(rows={"statements": deleted}, counts=counts)


def contact_emails_destroy(initiative: Initiative) -> ErasureOutcome:
    with initiative:
        deleted, _ = ContactEmail.objects.all().delete()
    return ErasureOutcome(rows={"contact_emails": deleted})


def published_counts_destroy(initiative: Initiative) -> ErasureOutcome:
    """The counts in the cache: per country and by the minute, a small one could point at a person."""
    with initiative:
        cache.delete(COUNTS_CACHE_KEY)
    return ErasureOutcome()


def _statements_measure(initiative: Initiative) -> dict[str, int]:
    with initiative:
        return {"statements": Statement.objects.count()}


def _contact_emails_measure(initiative: Initiative) -> dict[str, int]:
    with initiative:
        return {"contact_emails": ContactEmail.objects.count()}


def erasure_steps_register() -> None:
    register_erasure_step(
        ErasureStep(
            name="statements",
            scope=DestructionScope.STATEMENTS,
            order=20,
            erase=statements_destroy,
            measure=_statements_measure,
        )
    )
    register_erasure_step(
        ErasureStep(
            name="published_counts",
            scope=DestructionScope.STATEMENTS,
            order=30,
            erase=published_counts_destroy,
            measure=lambda initiative: {},
            transactional=False,
        )
    )
    register_erasure_step(
        ErasureStep(
            name="contact_emails",
            scope=DestructionScope.EMAILS,
            order=20,
            erase=contact_emails_destroy,
            measure=_contact_emails_measure,
        )
    )

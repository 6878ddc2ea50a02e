"""Writes in the current initiative's schema."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from collection.models import ContactEmail, Statement
from collection.sealed import identity_of, personal_data_encode
from collection.selectors import COUNTS_CACHE_KEY, statement_counts_by_country
from tenants.db import connection
from tenants.guard import PublicSchemaTenantTableError
from tenants.keyring.index import index_digest, index_digests_to_check
from tenants.keyring.sealing import seal, sealed_version
from tenants.models import Initiative

# Refreshed every minute by beat; a day of slack keeps a page showing the last count during an outage.
COUNTS_TTL_SECONDS = 24 * 3600


class DuplicateStatementError(Exception):
    """REQ-14: this person has already supported the initiative."""


def statement_record(
    *, country: str, personal_data: dict[str, str], form_revision: str, contact_email: str = ""
) -> Statement:
    """Store one statement of support of the current initiative: its personal data sealed under the
    initiative's primary key, its identity only as an index digest; and, if the signatory gave one with
    its consent, the e-mail address apart (REQ-19), in the same transaction. Validation is the caller's."""
    initiative = connection.tenant
    if not isinstance(initiative, Initiative):
        raise PublicSchemaTenantTableError("Statements are recorded with an initiative active.")
    initiative_id = initiative.pk
    identity = identity_of(personal_data, country)
    # Under every live index key, oldest first: during an index rotation an earlier statement of the
    # same person may carry a digest under an older key than the one this process writes with.
    digests = index_digests_to_check(initiative_id, identity)
    record_id = uuid.uuid4()
    sealed = seal(initiative_id, record_id, country, personal_data_encode(personal_data))
    index_version, digest = index_digest(initiative_id, identity)
    statement = Statement(
        id=record_id,
        country=country,
        form_revision=form_revision,
        submitted_at=timezone.now(),
        key_version=sealed_version(sealed),
        index_digest=digest,
        index_key_version=index_version,
        sealed_personal_data=sealed,
    )
    if digests == [digest]:
        # One live index key (outside an index rotation): the unique digest alone decides, in one
        # statement, whoever arrives at the same instant.
        return _statement_insert_unless_duplicate(statement, initiative_id, contact_email)
    try:
        with transaction.atomic():
            # Two submissions of one person serialise here, whichever index key each process writes
            # with: the lock is on the digest under the oldest live key, the same for both.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digests[0][:8], "big", signed=True)]
                )
            if Statement.objects.filter(index_digest__in=digests).exists():
                raise DuplicateStatementError
            if contact_email:
                _contact_email_store(initiative_id, contact_email)
            statement.save(force_insert=True)
            return statement
    except IntegrityError:
        # The same person at the same instant: the unique digest lets exactly one row in.
        raise DuplicateStatementError from None


_STATEMENT_COLUMNS = (
    "id",
    "country",
    "form_revision",
    "submitted_at",
    "key_version",
    "index_digest",
    "index_key_version",
    "sealed_personal_data",
)


def _statement_insert_unless_duplicate(
    statement: Statement, initiative_id: int, contact_email: str
) -> Statement:
    """The hot path of signing: one round trip, atomic without a transaction block. The contact address
    (if any) is written by the same statement and only when the statement itself went in."""
    # Table and column names are our models'; every value is a bound parameter.
    sql = (
        f"WITH new_statement AS (INSERT INTO {Statement._meta.db_table} ({', '.join(_STATEMENT_COLUMNS)}) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (index_digest) DO NOTHING RETURNING id)"
    )
    parameters: list[object] = [getattr(statement, column) for column in _STATEMENT_COLUMNS]
    if contact_email:
        email_id, sealed_email = _contact_email_sealed(initiative_id, contact_email)
        sql += (
            f", new_email AS (INSERT INTO {ContactEmail._meta.db_table} "  # noqa: S608
            "(id, scope, key_version, sealed_email, given_on) "
            "SELECT %s, 'EU', %s, %s, %s WHERE EXISTS (SELECT 1 FROM new_statement))"
        )
        parameters += [email_id, sealed_version(sealed_email), sealed_email, timezone.localdate()]
    sql += " SELECT count(*) FROM new_statement"
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        (inserted,) = cursor.fetchone()
    if not inserted:
        raise DuplicateStatementError
    return statement


def _contact_email_sealed(initiative_id: int, address: str) -> tuple[uuid.UUID, bytes]:
    """A new contact address record's id and its sealed address (scope "EU": no nationality is kept)."""
    record_id = uuid.uuid4()
    return record_id, seal(initiative_id, record_id, "EU", address.encode())


def _contact_email_store(initiative_id: int, address: str) -> ContactEmail:
    record_id, sealed = _contact_email_sealed(initiative_id, address)
    return ContactEmail.objects.create(
        id=record_id, scope="EU", key_version=sealed_version(sealed), sealed_email=sealed
    )


def counts_refresh() -> dict[str, object]:
    """Recompute the per-country counts from the table and publish them to the cache.

    Counting never touches a shared counter row in the signing transaction: this periodic aggregate is
    what pages and /api/counts.json read. The cache key is prefixed with the schema by django-tenants.
    """
    counts = statement_counts_by_country()
    snapshot = {
        "schema": connection.schema_name,
        "total": sum(counts.values()),
        "by_country": counts,
        "counted_at": timezone.now().isoformat(),
    }
    cache.set(COUNTS_CACHE_KEY, snapshot, timeout=COUNTS_TTL_SECONDS)
    return snapshot

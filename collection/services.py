"""Writes in the current initiative's schema."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import uuid

import psycopg
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from collection.models import ContactEmail, Statement
from collection.sealed import identity_of, personal_data_encode
from collection.selectors import (
    COUNTS_CACHE_KEY,
    CountAround,
    counts_published,
    statement_counts_around,
    statement_counts_by_country,
)
from tenants.db import connection
from tenants.guard import PublicSchemaTenantTableError
from tenants.keyring.index import index_digest, index_digests_to_check
from tenants.keyring.sealing import seal, sealed_version
from tenants.models import Initiative

logger = logging.getLogger(__name__)

# Longer than a signing transaction stays open and than the clocks of web and worker hosts differ.
COUNTS_SLACK = datetime.timedelta(minutes=1)
# The refresh runs every minute: a snapshot this old means it has stopped for this initiative.
COUNTS_STALE_AFTER = datetime.timedelta(minutes=15)


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
    # Django's cursor sets the initiative's search_path; the statement itself goes with server-side
    # binding, prepared once per connection (psycopg's client-side quoting was 4 % of a signature's CPU,
    # measured). PostgreSQL parses a prepared statement again when search_path changes, so one
    # initiative's prepared insert never writes into another's schema (test_signing_lane.py).
    with connection.cursor() as cursor, connection.wrap_database_errors:
        prepared = psycopg.Cursor(cursor.connection)
        prepared.execute(sql, parameters, prepare=True)
        (inserted,) = prepared.fetchone()  # type: ignore[misc]
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
    # Taken before counting, so the count holds every statement submitted well before counted_at: what
    # counts_reconcile checks it against.
    counted_at = timezone.now()
    return _counts_publish(statement_counts_by_country(), counted_at)


def _counts_publish(counts: dict[str, int], counted_at: datetime.datetime) -> dict[str, object]:
    snapshot: dict[str, object] = {
        "schema": connection.schema_name,
        "total": sum(counts.values()),
        "by_country": counts,
        "counted_at": counted_at.isoformat(),
    }
    cache.set(COUNTS_CACHE_KEY, snapshot, timeout=COUNTS_TTL_SECONDS)
    return snapshot


@dataclasses.dataclass(frozen=True)
class CountsReconciliation:
    """What counts_reconcile found: country codes and numbers only."""

    schema: str
    # "" when the published counts agree with the table; otherwise why the table's were republished:
    # "missing", "malformed", "differs" or "stale".
    drift: str
    published_total: int | None
    table_total: int
    # The countries whose published count was wrong: code -> (published, table).
    countries: dict[str, tuple[int, int]]


def counts_reconcile() -> CountsReconciliation:
    """Compare the published counts with the table; when they drifted, republish the table's and warn.

    A snapshot agrees when every count, and the total, lies within what the table held at its counted_at
    (statements signed since are the next refresh's, not drift) and it is recent. Runs nightly.
    """
    published = counts_published()
    parsed = _counts_published_parsed(published)
    counted_at = timezone.now()  # of the republished counts, taken before counting as in counts_refresh
    table = statement_counts_around(parsed[2] if parsed else counted_at, slack=COUNTS_SLACK)
    table_now = {code: count.now for code, count in table.items()}
    table_total = sum(table_now.values())
    countries: dict[str, tuple[int, int]] = {}
    if published is None:
        drift, published_total = "missing", None
    elif parsed is None:
        drift, published_total = "malformed", None
    else:
        published_total, by_country, published_at = parsed
        drift, countries = _counts_drift(published_total, by_country, published_at, table, counted_at)
    if drift:
        # A minute's refresh that published meanwhile counted later than this: it stands.
        latest = _counts_published_parsed(counts_published())
        if latest is None or latest[2] <= counted_at:
            _counts_publish(table_now, counted_at)
        logger.warning(
            "published counts of %s drifted (%s), republished from the table: total %s published, %s in "
            "the table; countries (published vs table): %s",
            getattr(connection.tenant, "slug", connection.schema_name),
            drift,
            published_total,
            table_total,
            ", ".join(f"{code} {was} vs {count}" for code, (was, count) in countries.items()) or "none",
        )
    return CountsReconciliation(
        schema=str(connection.schema_name),
        drift=drift,
        published_total=published_total,
        table_total=table_total,
        countries=countries,
    )


def _counts_published_parsed(
    published: dict[str, object] | None,
) -> tuple[int, dict[str, int], datetime.datetime] | None:
    """(total, by country, counted at) of a snapshot as counts_refresh writes it; None for anything
    else, including another schema's snapshot."""
    if not isinstance(published, dict) or published.get("schema") != connection.schema_name:
        return None
    total, by_country, counted_at = (published.get(key) for key in ("total", "by_country", "counted_at"))
    if type(total) is not int or not isinstance(by_country, dict) or not isinstance(counted_at, str):
        return None
    if not all(isinstance(code, str) and type(count) is int for code, count in by_country.items()):
        return None
    try:
        moment = datetime.datetime.fromisoformat(counted_at)
    except ValueError:
        return None
    # A time to come would pass for fresh forever and hide a refresh that has stopped.
    if moment.tzinfo is None or moment > timezone.now() + COUNTS_SLACK:
        return None
    return total, by_country, moment


def _counts_drift(
    total: int,
    by_country: dict[str, int],
    counted_at: datetime.datetime,
    table: dict[str, CountAround],
    now: datetime.datetime,
) -> tuple[str, dict[str, tuple[int, int]]]:
    """Why a well-formed snapshot is wrong ("" if it is not), and the countries it has wrong."""
    nothing = CountAround(at_least=0, at_most=0, now=0)
    around = {code: table.get(code, nothing) for code in sorted(set(by_country) | set(table))}
    published = {code: by_country.get(code, 0) for code in around}
    wrong = {
        code: (published[code], count.now)
        for code, count in around.items()
        if not count.at_least <= published[code] <= count.at_most
    }
    at_least = sum(count.at_least for count in around.values())
    at_most = sum(count.at_most for count in around.values())
    if wrong or total != sum(published.values()) or not at_least <= total <= at_most:
        return "differs", wrong
    if counted_at < now - COUNTS_STALE_AFTER:
        return "stale", {
            code: (published[code], count.now)
            for code, count in around.items()
            if published[code] != count.now
        }
    return "", {}

"""Statements straight into an initiative's table with COPY, sealed and indexed as the signing service
would (the signing path itself is benchmarked over HTTP): for the benchmarks that need many rows."""

from __future__ import annotations

import datetime
import io
import uuid
from collections.abc import Callable

from collection.sealed import identity_of, personal_data_encode
from tenants.db import connection
from tenants.keyring.index import digest_with
from tenants.keyring.keys import data_key
from tenants.keyring.sealing import seal_with
from tenants.models import Initiative, KeyPurpose

BATCH = 50_000
FIRST_SUBMISSION = datetime.datetime(2026, 11, 28, 12, tzinfo=datetime.UTC)


def statements_bulk_load(
    initiative: Initiative,
    count: int,
    *,
    country: str,
    person: Callable[[int], dict[str, str]],
    form_revision: str,
) -> None:
    """`count` statements of `country`, the n-th of them `person(n)` (a different person each)."""
    key = data_key(initiative.pk, KeyPurpose.PERSONAL_DATA, 1)
    index_key = data_key(initiative.pk, KeyPurpose.INDEX, 1)
    with initiative, connection.cursor() as cursor:
        for start in range(0, count, BATCH):
            buffer = io.StringIO()
            for number in range(start, min(count, start + BATCH)):
                record = uuid.uuid4()
                data = person(number)
                sealed = seal_with(key, record, country, personal_data_encode(data))
                digest = digest_with(index_key, identity_of(data, country))
                # One statement a millisecond, in order, as the table fills when people sign.
                submitted_at = FIRST_SUBMISSION + datetime.timedelta(milliseconds=number)
                buffer.write(
                    f"{record}\t{country}\t{form_revision}\t{submitted_at.isoformat()}\t1\t"
                    f"\\\\x{digest.hex()}\t1\t\\\\x{sealed.hex()}\n"
                )
            with cursor.cursor.copy(
                "COPY collection_statement (id, country, form_revision, submitted_at, key_version, "
                "index_digest, index_key_version, sealed_personal_data) FROM STDIN"
            ) as copy:
                copy.write(buffer.getvalue())
        cursor.execute("ANALYZE collection_statement")

"""Reading one country's statements for an export: one consistent snapshot, streamed through a
server-side cursor on a connection of its own, fetched a batch ahead by a thread, and opened (decrypted
and decoded) record by record. Memory stays flat whatever the number of statements."""

from __future__ import annotations

import datetime
import queue
import threading
import uuid
from collections.abc import Iterator

import orjson
import psycopg
from django.conf import settings

from collection.models import Statement
from exports.xml_signatures import ExportDataError, SignatureRecord
from regulation.annex_iii import FORM_REVISION_NUMBERS
from tenants.db import connection
from tenants.keyring.keys import UnwrappedKey, data_key
from tenants.keyring.sealing import open_with, sealed_version, sealed_version_bytes
from tenants.models import KeyPurpose

_VERSION_BYTES = sealed_version_bytes()
_END_OF_ROWS = object()


class StatementSnapshot:
    """The country's statements, opened, from one consistent snapshot on a connection of its own: the
    server-side cursor needs an open transaction, and the lease and progress updates on Django's
    connection must commit while it streams."""

    def __init__(self, initiative_id: int, country: str) -> None:
        self.country = country
        self.initiative_id = initiative_id
        self.schema = connection.schema_name
        self.stream: psycopg.Connection | None = None
        # The fetching thread and its stop signal, ended by __exit__ whatever stopped the export.
        self.stop = threading.Event()
        self.fetcher: threading.Thread | None = None

    def __enter__(self) -> tuple[int, Iterator[SignatureRecord]]:
        parameters = connection.get_connection_params()
        parameters.pop("cursor_factory", None)
        parameters.pop("context", None)
        self.stream = psycopg.connect(**parameters, autocommit=False)
        try:
            self.stream.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self.stream.execute("SELECT set_config('search_path', %s, true)", [f'"{self.schema}"'])
            table = Statement._meta.db_table
            row = self.stream.execute(
                f"SELECT count(*) FROM {table} WHERE country = %s",  # noqa: S608  (our table, bound values)
                [self.country],
            ).fetchone()
        except BaseException:
            self.stream.close()
            raise
        expected = int(row[0]) if row else 0
        return expected, self._records()

    def _records(self) -> Iterator[SignatureRecord]:
        revisions = FORM_REVISION_NUMBERS
        initiative_id = self.initiative_id
        country = self.country
        keys: dict[int, UnwrappedKey] = {}
        decode = orjson.loads
        for rows in self._batches():
            for record_bytes, record_id, submitted_on, form_revision, sealed in rows:
                # The version in the header picks the key; open_with checks the header in full.
                version = int.from_bytes(sealed[_VERSION_BYTES], "big")
                key = keys.get(version)
                if key is None:
                    key = keys[version] = data_key(
                        initiative_id, KeyPurpose.PERSONAL_DATA, sealed_version(sealed)
                    )
                revision = revisions.get(form_revision)
                if revision is None:
                    raise ExportDataError(f"statement {record_id}: unknown form revision {form_revision!r}")
                personal_data = decode(open_with(key, record_bytes, country, sealed))
                yield SignatureRecord(record_id, submitted_on, revision, personal_data)

    def _batches(self) -> Iterator[list[tuple[bytes, str, datetime.date, str, bytes]]]:
        """Batches of rows from a thread of their own: PostgreSQL sends the next batch while this one is
        written (the fetch waits on the network, without the GIL). At most two batches wait: memory stays
        bounded whatever the number of statements."""
        stream = self.stream
        assert stream is not None
        waiting: queue.Queue[object] = queue.Queue(maxsize=2)
        stop = self.stop
        table = Statement._meta.db_table
        query = (
            # The submission day is the platform's local day, computed by PostgreSQL.
            # The id twice: its 16 bytes for the sealing's associated data and its text for the XML, both
            # made by PostgreSQL (building and printing UUID objects cost the writer a tenth of its time).
            f"SELECT uuid_send(id), id::text, (submitted_at AT TIME ZONE %s)::date, form_revision, "  # noqa: S608
            f"sealed_personal_data FROM {table} WHERE country = %s ORDER BY submitted_at, id"
        )

        def put(item: object) -> None:
            while not stop.is_set():
                try:
                    waiting.put(item, timeout=0.5)
                    return
                except queue.Full:
                    continue

        def fetch() -> None:
            try:
                with stream.cursor(name=f"export_{uuid.uuid4().hex}", binary=True) as cursor:
                    cursor.execute(query, [settings.TIME_ZONE, self.country])
                    while not stop.is_set() and (rows := cursor.fetchmany(settings.EXPORT_FETCH_RECORDS)):
                        put(rows)
                put(_END_OF_ROWS)
            except BaseException as error:  # handed to the consumer, raised there
                put(error)

        fetcher = self.fetcher = threading.Thread(target=fetch, name="export-fetch", daemon=True)
        fetcher.start()
        try:
            while True:
                item = waiting.get()
                if item is _END_OF_ROWS:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            fetcher.join(timeout=30)

    def __exit__(self, *_: object) -> None:
        # The export may have stopped mid-stream (bad data, a lost lease, the storage): the fetching
        # thread stops before its connection goes, not when the generator is collected.
        self.stop.set()
        if self.fetcher is not None:
            self.fetcher.join(timeout=30)
        if self.stream is not None:
            self.stream.rollback()
            self.stream.close()

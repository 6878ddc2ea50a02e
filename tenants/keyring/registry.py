"""The tables that hold sealed records, so the re-encryption sweep can move them without the keyring
knowing the apps that own them. An app registers its table in its AppConfig.ready()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import models


@dataclass(frozen=True)
class SealedTable:
    model: type[models.Model]
    sealed_field: str  # the blob (see sealing.py)
    version_field: str  # the personal-data key version the blob names
    country_field: str  # bound into the blob's associated data
    # The duplicate-index digest and its key version, and how to get the identity bytes (see index.py)
    # from a record's opened data and country, so an index-key sweep can recompute the digest. None for
    # a table without an index (an index sweep passes it by).
    digest_field: str | None = None
    digest_version_field: str | None = None
    identity: Callable[[bytes, str], bytes] | None = None
    # Records kept after the statements are destroyed (the e-mail addresses of REQ-19): destroying the
    # statements' keys re-seals them under a key of their own first (see shredding.py).
    outlives_statements: bool = False

    def column(self, field: str) -> str:
        model_field = self.model._meta.get_field(getattr(self, field))
        assert isinstance(model_field, models.Field)
        return str(model_field.column)

    @property
    def table(self) -> str:
        return str(self.model._meta.db_table)


SEALED_TABLES: list[SealedTable] = []


def sealed_tables_for(purpose: str) -> list[SealedTable]:
    """The tables a sweep of `purpose` moves: all for personal data, the indexed ones for the index."""
    if purpose == "index":
        return [table for table in SEALED_TABLES if table.digest_field]
    return list(SEALED_TABLES)


def sealed_tables_outliving_statements() -> list[SealedTable]:
    return [table for table in SEALED_TABLES if table.outlives_statements]


def register_sealed_table(table: SealedTable) -> None:
    if all(existing.model is not table.model for existing in SEALED_TABLES):
        SEALED_TABLES.append(table)

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
    digest_field: str  # the duplicate-index digest
    digest_version_field: str  # the index key version of the digest
    # From a record's opened personal data and country to its identity bytes (see index.py), so that an
    # index-key sweep can recompute the digest.
    identity: Callable[[bytes, str], bytes]

    def column(self, field: str) -> str:
        model_field = self.model._meta.get_field(getattr(self, field))
        assert isinstance(model_field, models.Field)
        return str(model_field.column)

    @property
    def table(self) -> str:
        return str(self.model._meta.db_table)


SEALED_TABLES: list[SealedTable] = []


def register_sealed_table(table: SealedTable) -> None:
    if all(existing.model is not table.model for existing in SEALED_TABLES):
        SEALED_TABLES.append(table)

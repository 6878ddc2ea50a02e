"""Data keys: created at onboarding, unwrapped on demand and cached in this process only.

Unwrapped keys live in process memory for KEY_CACHE_SECONDS and nowhere else: not in the database, the
cache, logs or task arguments. A process learns of a new version when its cache entry for the primary
version expires; a version it has never seen is loaded from the database on first use.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from tenants.keyring.providers import KeyProviderError, key_provider
from tenants.models import DataKey, DataKeyState, Initiative, KeyEncryptionKey, KeyPurpose


class KeyUnavailableError(RuntimeError):
    """The key version asked for does not exist, is destroyed, or cannot be unwrapped: fail closed."""


@dataclass(frozen=True)
class UnwrappedKey:
    initiative_id: int
    purpose: str
    version: int
    material: bytes
    # The cipher lives and dies with this entry of the process cache, never longer.
    cipher: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cipher", AESGCM(self.material))

    def __repr__(self) -> str:  # never print key material, even in a traceback
        return (
            f"UnwrappedKey(initiative={self.initiative_id}, purpose={self.purpose}, version={self.version})"
        )


class _ProcessKeyCache:
    """Unwrapped data keys and primary versions, per process, each entry for KEY_CACHE_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[int, str, int], tuple[float, UnwrappedKey]] = {}
        self._primary: dict[tuple[int, str], tuple[float, int]] = {}
        # The live versions (pending, primary, decrypt-only): safe to remember for the cache time, as a
        # new version stays pending longer than that before anything is written with it.
        self._live: dict[tuple[int, str], tuple[float, list[int]]] = {}

    def key(self, slot: tuple[int, str, int]) -> UnwrappedKey | None:
        entry = self._keys.get(slot)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def remember_key(self, key: UnwrappedKey) -> None:
        with self._lock:
            self._keys[(key.initiative_id, key.purpose, key.version)] = (
                time.monotonic() + settings.KEY_CACHE_SECONDS,
                key,
            )

    def primary(self, slot: tuple[int, str]) -> int | None:
        entry = self._primary.get(slot)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def remember_primary(self, slot: tuple[int, str], version: int) -> None:
        with self._lock:
            self._primary[slot] = (time.monotonic() + settings.KEY_CACHE_SECONDS, version)

    def live(self, slot: tuple[int, str]) -> list[int] | None:
        entry = self._live.get(slot)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def remember_live(self, slot: tuple[int, str], versions: list[int]) -> None:
        with self._lock:
            self._live[slot] = (time.monotonic() + settings.KEY_CACHE_SECONDS, versions)

    def forget_initiative(self, initiative_id: int) -> None:
        with self._lock:
            self._keys = {slot: entry for slot, entry in self._keys.items() if slot[0] != initiative_id}
            self._primary = {slot: entry for slot, entry in self._primary.items() if slot[0] != initiative_id}
            self._live = {slot: entry for slot, entry in self._live.items() if slot[0] != initiative_id}

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._primary.clear()
            self._live.clear()


process_key_cache = _ProcessKeyCache()


def wrap_context(initiative_id: int, purpose: str, version: int) -> dict[str, str]:
    """What a wrapped data key is bound to: it unwraps for this initiative, purpose and version only."""
    return {"initiative": str(initiative_id), "purpose": purpose, "version": str(version)}


def current_kek(initiative_id: int) -> KeyEncryptionKey:
    """The KEK new data keys are wrapped with; locked, so a KEK rotation cannot retire it meanwhile."""
    kek = (
        KeyEncryptionKey.objects.select_for_update()
        .filter(initiative_id=initiative_id, retired_at__isnull=True)
        .order_by("-pk")
        .first()
    )
    if kek is None:
        raise KeyUnavailableError(f"Initiative {initiative_id} has no key-encryption key.")
    return kek


def data_key_create(initiative_id: int, purpose: str, state: str, kek: KeyEncryptionKey) -> DataKey:
    """A new random data key at the next version, stored wrapped under `kek`."""
    latest = DataKey.objects.filter(initiative_id=initiative_id, purpose=purpose).aggregate(v=Max("version"))
    version = (latest["v"] or 0) + 1
    material = os.urandom(32)
    wrapped = key_provider().wrap(
        kek.reference, material, context=wrap_context(initiative_id, purpose, version)
    )
    return DataKey.objects.create(
        initiative_id=initiative_id,
        purpose=purpose,
        version=version,
        state=state,
        kek=kek,
        wrapped=wrapped,
        primary_since=timezone.now() if state == DataKeyState.PRIMARY else None,
    )


def initiative_keys_create(initiative: Initiative, *, created_keks: list[str]) -> None:
    """At onboarding: a KEK from the provider and a primary data key for each purpose. The KEK's
    reference goes into `created_keks` at once, so a failed onboarding can destroy it again."""
    provider = key_provider()
    reference = provider.create_kek(label=initiative.schema_name)
    created_keks.append(reference)
    with transaction.atomic():
        kek = KeyEncryptionKey.objects.create(
            initiative=initiative, provider=provider.name, reference=reference
        )
        for purpose in KeyPurpose:
            data_key_create(initiative.pk, purpose, DataKeyState.PRIMARY, kek)


def _load(initiative_id: int, purpose: str, version: int) -> UnwrappedKey:
    row = (
        DataKey.objects.select_related("kek")
        .filter(initiative_id=initiative_id, purpose=purpose, version=version)
        .first()
    )
    if row is None or row.state == DataKeyState.DESTROYED or not row.wrapped:
        raise KeyUnavailableError(
            f"No usable {purpose} key version {version} for initiative {initiative_id}."
        )
    try:
        material = key_provider().unwrap(
            row.kek.reference, bytes(row.wrapped), context=wrap_context(initiative_id, purpose, version)
        )
    except KeyProviderError as error:
        raise KeyUnavailableError(str(error)) from None
    return UnwrappedKey(initiative_id, purpose, version, material)


def data_key(initiative_id: int, purpose: str, version: int) -> UnwrappedKey:
    """The unwrapped key of one version (from this process's cache when fresh)."""
    key = process_key_cache.key((initiative_id, purpose, version))
    if key is None:
        key = _load(initiative_id, purpose, version)
        process_key_cache.remember_key(key)
    return key


def primary_data_key(initiative_id: int, purpose: str) -> UnwrappedKey:
    """The key new writes use."""
    version = process_key_cache.primary((initiative_id, purpose))
    if version is None:
        found = (
            DataKey.objects.filter(initiative_id=initiative_id, purpose=purpose, state=DataKeyState.PRIMARY)
            .values_list("version", flat=True)
            .first()
        )
        if found is None:
            raise KeyUnavailableError(f"Initiative {initiative_id} has no primary {purpose} key.")
        version = found
        process_key_cache.remember_primary((initiative_id, purpose), version)
    return data_key(initiative_id, purpose, version)


def live_data_keys(initiative_id: int, purpose: str) -> list[UnwrappedKey]:
    """Every version that may still be in use (pending, primary, decrypt-only), oldest first. The
    duplicate check needs them all while a sweep moves digests from an old index key to a new one."""
    versions = process_key_cache.live((initiative_id, purpose))
    if versions is None:
        versions = sorted(
            DataKey.objects.filter(
                initiative_id=initiative_id,
                purpose=purpose,
                state__in=[DataKeyState.PENDING, DataKeyState.PRIMARY, DataKeyState.DECRYPT_ONLY],
            ).values_list("version", flat=True)
        )
        process_key_cache.remember_live((initiative_id, purpose), versions)
    return [data_key(initiative_id, purpose, version) for version in versions]

"""The duplicate index (REQ-14): HMAC-SHA256 under the initiative's index key over normalised identity
data, so the same person is found again without storing who they are.

Part B countries: country + document type + document number. Part A countries: country + first names +
family names + date of birth + postal code. Normalisation folds case, white space, punctuation and
diacritics; letters with no decomposition (Ø, Ł, ß, Þ, Æ ...) are transliterated by anyascii, a
maintained Unicode-to-ASCII table, so they map to letters and never vanish.
"""

from __future__ import annotations

import hmac
import re
import unicodedata

from anyascii import anyascii

from tenants.keyring.keys import UnwrappedKey, live_data_keys, primary_data_key
from tenants.models import KeyPurpose

_NOT_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")
_FIELD_SEPARATOR = "\x1f"


def normalise_name(value: str) -> str:
    """'  Łukasz-Øyvind  ' and 'lukasz oyvind' give the same text; no letter maps to nothing."""
    text = anyascii(unicodedata.normalize("NFKC", value)).casefold()
    return _NOT_ALPHANUMERIC.sub(" ", text).strip()


def normalise_document_number(value: str) -> str:
    """Document numbers compare without spaces, dashes, dots or case."""
    return _NOT_ALPHANUMERIC.sub("", anyascii(unicodedata.normalize("NFKC", value)).casefold())


def identity_part_b(*, country: str, document_type: str, document_number: str) -> bytes:
    fields = ["B", country.upper(), document_type.strip().lower(), normalise_document_number(document_number)]
    return _FIELD_SEPARATOR.join(fields).encode()


def identity_part_a(
    *, country: str, first_names: str, family_names: str, date_of_birth: str, postal_code: str
) -> bytes:
    fields = [
        "A",
        country.upper(),
        normalise_name(first_names),
        normalise_name(family_names),
        date_of_birth.strip(),
        normalise_document_number(postal_code),
    ]
    return _FIELD_SEPARATOR.join(fields).encode()


def digest_with(key: UnwrappedKey, identity: bytes) -> bytes:
    return hmac.digest(key.material, identity, "sha256")  # the one-shot C path of hmac.new(...).digest()


def index_digest(initiative_id: int, identity: bytes) -> tuple[int, bytes]:
    """The digest to store with a new record, and the index key version it was made with."""
    key = primary_data_key(initiative_id, KeyPurpose.INDEX)
    return key.version, digest_with(key, identity)


def index_digests_to_check(initiative_id: int, identity: bytes) -> list[bytes]:
    """The digests under every live index key version: while a sweep moves the index to a new key, an
    earlier statement of the same person may still carry a digest under the old one."""
    return [digest_with(key, identity) for key in live_data_keys(initiative_id, KeyPurpose.INDEX)]

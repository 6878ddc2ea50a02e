"""What a verification reports: VerificationReport, filled in as the checks go and printed as one JSON
object, and VerificationRefusedError, the check that failed (its message is the one line the user sees)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from eci_crypto.cms.reader import VerifiedExport
from exports.format import SCHEMA_PATH
from exports.verification.xml_check import XmlCheck


class VerificationRefusedError(Exception):
    """A check that failed; the message is the one line the user sees."""


def refuse(message: str) -> NoReturn:
    raise VerificationRefusedError(message)


@dataclass
class VerificationReport:
    """What the JSON summary says; filled in as the checks go. `error` is None when every check passed."""

    file: Path
    platform_certificate_sha256: str | None = None
    authority_certificate_sha256: str | None = None
    file_bytes: int | None = None
    file_sha256: str | None = None
    verified: VerifiedExport | None = None
    xml: XmlCheck | None = None
    manifest_path: Path | None = None
    manifest_note: str | None = None
    mismatches: list[str] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)
    out: Path | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        verified = self.verified
        xml = self.xml if verified is not None else None  # unauthenticated content says nothing
        valid = xml if xml is not None and xml.error is None else None  # nor do values that failed the XSD
        return {
            "ok": self.error is None,
            "file": str(self.file),
            "country": valid.country if valid else None,
            "registration_number": valid.registration_number if valid else None,
            "records": xml.records if xml else None,
            "signed_at": verified.signing_time.isoformat() if verified and verified.signing_time else None,
            "platform_certificate_sha256": self.platform_certificate_sha256,
            "authority_certificate_sha256": self.authority_certificate_sha256,
            "file_bytes": self.file_bytes,
            "file_sha256": self.file_sha256,
            "content_bytes": verified.content_bytes if verified else None,
            "content_sha256": verified.content_sha256 if verified else None,
            "xsd": SCHEMA_PATH.name,
            "xsd_valid": (xml.error is None) if xml else None,
            "manifest": {
                "checked": self.manifest_path is not None,
                "path": str(self.manifest_path) if self.manifest_path else None,
                "mismatches": self.mismatches,
                "not_compared": self.not_compared,
                "note": self.manifest_note,
            },
            "out": str(self.out) if self.out else None,
            "error": self.error,
        }

    def as_json_text(self) -> str:
        """The summary as printed: one line of JSON, keys sorted."""
        return json.dumps(self.as_json(), sort_keys=True)

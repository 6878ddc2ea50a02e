"""The manifest of an export file (written next to it by the platform): found next to the file or named,
read, and compared with what the verification found in the file."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from eci_crypto.certificates import fingerprint_normalised
from exports.format import FILE_SUFFIX, MANIFEST_FORMAT, MANIFEST_SUFFIX
from exports.verification.report import VerificationReport, refuse


def default_manifest_paths(file: Path) -> list[Path]:
    """Where the manifest of `file` is looked for: the platform stores `<job>.xml.p7m` with
    `<job>.manifest.json`, and a file renamed `BE.xml.p7m` goes with `BE.manifest.json`."""
    name = file.name
    candidates = []
    for suffix in (FILE_SUFFIX, ".p7m"):
        if name.endswith(suffix) and len(name) > len(suffix):
            candidates.append(file.with_name(name[: -len(suffix)] + MANIFEST_SUFFIX))
            break
    candidates.append(file.with_name(name + MANIFEST_SUFFIX))
    return candidates


_MISSING = object()


def _manifest_value(manifest: dict[str, Any], dotted: str) -> object:
    value: object = manifest
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _short(value: object) -> str:
    """A manifest's value as quoted in a message: the manifest is the platform's, but may be anything."""
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 100 else text[:100] + "..."


def _same_time(actual: datetime.datetime, recorded: object) -> bool:
    try:
        return isinstance(recorded, str) and datetime.datetime.fromisoformat(recorded) == actual
    except ValueError:
        return False


def manifest_mismatches(manifest: dict[str, Any], report: VerificationReport) -> tuple[list[str], list[str]]:
    """(mismatches, fields not compared) between the file as verified and its manifest. Only the file's
    size and digest are compared when the file did not decrypt and verify (the rest is unknown then), and
    the XML's country, registration number and count only when it is valid against the XSD."""
    actual: dict[str, tuple[object, Any]] = {
        "format": (MANIFEST_FORMAT, str),
        "file.bytes": (report.file_bytes, int),
        "file.sha256": (report.file_sha256, str.lower),
    }
    verified, xml = report.verified, report.xml
    if verified is not None:
        actual.update(
            {
                "content.bytes": (verified.content_bytes, int),
                "content.sha256": (verified.content_sha256, str.lower),
                "platform_certificate_sha256": (verified.signer_fingerprint, fingerprint_normalised),
            }
        )
        if xml is not None and xml.error is None:  # values that failed the XSD are not quoted
            actual.update(
                {
                    "country": (xml.country, str),
                    "initiative.registration_number": (xml.registration_number, str),
                    "records": (xml.records, int),
                }
            )
        if report.authority_certificate_sha256 is not None:
            actual["authority_certificate_sha256"] = (
                report.authority_certificate_sha256,
                fingerprint_normalised,
            )
    mismatches = []
    for name, (value, normal) in actual.items():
        recorded = _manifest_value(manifest, name)
        if recorded is _MISSING:
            mismatches.append(f"{name}: missing from the manifest")
            continue
        try:
            same = normal(recorded) == normal(value)
        except (TypeError, ValueError):
            same = False
        if not same:
            mismatches.append(f"{name}: the file has {value}, the manifest says {_short(recorded)}")
    if verified is not None and verified.signing_time is not None:
        recorded = _manifest_value(manifest, "signed_at")
        if not _same_time(verified.signing_time, recorded):
            mismatches.append(
                f"signed_at: the file was signed at {verified.signing_time.isoformat()}, the manifest says "
                f"{'nothing' if recorded is _MISSING else _short(recorded)}"
            )
    compared = set(actual) | ({"signed_at"} if verified is not None else set())
    everything = [
        "format",
        "country",
        "initiative.registration_number",
        "records",
        "file.bytes",
        "file.sha256",
        "content.bytes",
        "content.sha256",
        "platform_certificate_sha256",
        "authority_certificate_sha256",
        "signed_at",
    ]
    return mismatches, [name for name in everything if name not in compared]


def manifest_load(report: VerificationReport, given: str | None) -> dict[str, Any] | None:
    """The manifest, if there is one: a missing one is an error only when it was named."""
    if given:
        path = Path(given)
    else:
        found = [candidate for candidate in default_manifest_paths(report.file) if candidate.is_file()]
        if not found:
            looked = " or ".join(str(p) for p in default_manifest_paths(report.file))
            report.manifest_note = f"No manifest found (looked for {looked}); nothing compared with one."
            return None
        path = found[0]
    try:
        manifest = json.loads(path.read_bytes())
    except OSError as error:
        refuse(f"The manifest ({path}) cannot be read: {error.strerror}.")
    except ValueError:
        refuse(f"The manifest ({path}) is not JSON.")
    if not isinstance(manifest, dict):
        refuse(f"The manifest ({path}) is not a JSON object.")
    report.manifest_path = path
    return manifest

"""Verify an export file as its competent authority does: decrypt it with the authority's private key, check
the AES-GCM tag and the platform's CMS signature, validate the XML against the published XSD while it
streams by, count the statements and compare everything with the manifest. Prints one JSON object.

Needs no database and no Redis (an authority has neither): no system checks, no query. The XML is
unverified until the whole file has been read (GCM authenticates at the very end), so --out writes to a
private temporary file next to the target that is renamed into place only when every check passed.
Messages name positions, element names, counts and digests, never a value from the file.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management.base import BaseCommand, CommandError, CommandParser
from lxml import etree

from eci_crypto.certificates import (
    CertificateError,
    certificate_fingerprint,
    certificate_load,
    fingerprint_normalised,
    private_key_load,
)
from eci_crypto.cms.reader import ExportFileError, VerifiedExport, export_file_read
from exports.format import FILE_SUFFIX, MANIFEST_FORMAT, MANIFEST_SUFFIX, SCHEMA_PATH, export_schema
from exports.services import ExportRefusedError, platform_signing_identity

_READ_SIZE = 1024 * 1024
_PARTIAL_SUFFIX = ".partial"
# The elements the check looks at; the others are validated by libxml2 but raise no Python event.
_ROOT = "supportForm"
_WATCHED = (_ROOT, "forCountry", "registrationNumber", "signature")
# Element names only (never a value) are quoted from libxml2's messages, and only when they look like one.
_ELEMENT_IN_MESSAGE = re.compile(r"Element '([A-Za-z_][A-Za-z0-9_.-]{0,63})'")
_ERROR_NAMES: dict[int, str] = {
    value: name for name, value in vars(etree.ErrorTypes).items() if isinstance(value, int)
}
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"

# libxml2 keeps the tables of every identity constraint (xs:unique) until the end of the document, even
# of those scoped to one signature (it bubbles them up to the root for keyrefs): about 2.5 KB per
# statement, 1.3 GB for 500,000, and two thirds of the time. So the streaming validation uses the XSD
# without these three, and they are checked here instead, per signature and with a set of the statements'
# identifiers (about 80 bytes per statement). A test fails if the XSD's constraints change.
_XS = "{http://www.w3.org/2001/XMLSchema}"
IDENTITY_CONSTRAINTS = frozenset({"oneSignaturePerIdentifier", "oneGroupPerName", "onePropertyPerKey"})
# A group name or property key that a sibling already has (what oneGroupPerName and onePropertyPerKey
# forbid): evaluated on each signature while it is still in the tree.
_REPEATED_NAMES = etree.XPath("boolean(signatoryInfo/groups/group[name = preceding-sibling::group/name])")
_REPEATED_KEYS = etree.XPath(
    "boolean(signatoryInfo/groups/group/properties/property[key = preceding-sibling::property/key])"
)


@functools.cache
def streaming_schema() -> etree.XMLSchema:
    """The published XSD without the identity constraints this command checks itself; the whole XSD if
    they are not all there as expected (correct still, only memory then grows with the statements)."""
    document = etree.parse(str(SCHEMA_PATH))
    constraints = [
        element for element in document.iter(f"{_XS}unique") if element.get("name") in IDENTITY_CONSTRAINTS
    ]
    if {element.get("name") for element in constraints} != IDENTITY_CONSTRAINTS:
        return export_schema()
    for element in constraints:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    return etree.XMLSchema(document)


class _Refused(Exception):
    """A check that failed; the message is the one line the user sees."""


class _HashingReader:
    """The export file as read: its SHA-256 and size, for the manifest (which hashes the whole file)."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.hash = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int, /) -> bytes:
        data = self._source.read(size)
        self.hash.update(data)
        self.bytes += len(data)
        return data

    def drain(self) -> None:
        """Reads what the verification left unread (it stops at the first fault), so that the file's
        digest is the whole file's and can still tell a damaged download from a wrong key."""
        while self.read(_READ_SIZE):
            pass


class _XmlCheck:
    """The sink of the decrypted XML: copies it to the output file, if any, and feeds it to an lxml pull
    parser that validates it against the XSD as it goes. Each signature is dropped from the tree once it
    has ended and checked (libxml2 validates on the parser's events, not on the tree), so memory stays
    flat but for the set of statement identifiers that the XSD's uniqueness constraint needs."""

    def __init__(self, output: BinaryIO | None) -> None:
        self._output = output
        # resolve_entities is left at lxml's default: with resolve_entities=False and a schema, lxml 6 /
        # libxml2 2.14 report a truncated document as complete. The end of the root is checked anyway.
        self._parser = etree.XMLPullParser(events=("end",), tag=_WATCHED, schema=streaming_schema())
        self._identifiers: set[int] = set()
        self.records = 0
        self.country: str | None = None
        self.registration_number: str | None = None
        self.error: str | None = None
        self.output_error: str | None = None
        self._root_ended = False

    def write(self, data: bytes, /) -> int:
        if self._output is not None and self.output_error is None:
            try:
                self._output.write(data)
            except OSError as error:  # a full disk: reported as such, not as a fault of the file
                self.output_error = str(error.strerror)
        if self.error is None:  # after the first fault only the cryptographic checks go on
            try:
                self._parser.feed(data)
                self._read_events()
            except etree.XMLSyntaxError as error:
                self.error = self._describe(error)
            except (etree.LxmlError, ValueError) as error:  # lxml's other faults: their class only
                self.error = f"The XML cannot be parsed ({type(error).__name__})."
        return len(data)

    def finish(self) -> None:
        if self.error is not None:
            return
        try:
            self._parser.close()
            self._read_events()
        except etree.XMLSyntaxError as error:
            self.error = self._describe(error)
            return
        if not self._root_ended:
            self.error = f"The XML ends before its root element ({_ROOT}) is closed."

    def _read_events(self) -> None:
        for _event, element in self._parser.read_events():
            tag = element.tag
            if tag == "signature":
                self._signature_check(element)
                if self.error is not None:
                    return
                self.records += 1
                element.clear()
                parent = element.getparent()
                while parent is not None and element.getprevious() is not None:
                    del parent[0]
            elif tag == "forCountry":
                self.country = element.text
            elif tag == "registrationNumber":
                self.registration_number = element.text
            elif tag == _ROOT:
                self._root_ended = True

    def _signature_check(self, signature: etree._Element) -> None:
        """The XSD's identity constraints (see IDENTITY_CONSTRAINTS), in libxml2's words."""
        constraint = None
        if _REPEATED_NAMES(signature):
            constraint = "oneGroupPerName"
        elif _REPEATED_KEYS(signature):
            constraint = "onePropertyPerKey"
        else:
            try:  # the XSD's pattern has already admitted only canonical UUIDs
                identifier = int(str(signature.findtext("signatureIdentifier")).replace("-", ""), 16)
            except ValueError:
                return
            if identifier in self._identifiers:
                constraint = "oneSignaturePerIdentifier"
            self._identifiers.add(identifier)
        if constraint is not None:
            self.error = (
                f"The XML is not valid against {SCHEMA_PATH.name}: SCHEMAV_CVC_IDC ({constraint}) at element "
                f"signature, after {self.records} complete signature(s)."
            )

    def _describe(self, error: etree.XMLSyntaxError) -> str:
        # libxml2's messages quote the offending value: say what kind of error, where, and which element.
        kind = _ERROR_NAMES.get(error.code, f"error {error.code}")
        element = _ELEMENT_IN_MESSAGE.search(error.msg or "")
        at = f" at element {element.group(1)}" if element else ""
        after = f", after {self.records} complete signature(s)."
        if kind.startswith("SCHEMAV_"):
            return f"The XML is not valid against {SCHEMA_PATH.name}: {kind}{at}{after}"
        line = error.lineno if isinstance(error.lineno, int) and error.lineno > 0 else None
        return f"The XML is not well-formed: {kind}{at}{f' on line {line}' if line else ''}{after}"


@dataclass
class _Outcome:
    """What the JSON summary says; filled in as the checks go."""

    file: Path
    platform_certificate_sha256: str | None = None
    authority_certificate_sha256: str | None = None
    file_bytes: int | None = None
    file_sha256: str | None = None
    verified: VerifiedExport | None = None
    xml: _XmlCheck | None = None
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


def manifest_mismatches(manifest: dict[str, Any], outcome: _Outcome) -> tuple[list[str], list[str]]:
    """(mismatches, fields not compared) between the file as verified and its manifest. Only the file's
    size and digest are compared when the file did not decrypt and verify (the rest is unknown then), and
    the XML's country, registration number and count only when it is valid against the XSD."""
    actual: dict[str, tuple[object, Any]] = {
        "format": (MANIFEST_FORMAT, str),
        "file.bytes": (outcome.file_bytes, int),
        "file.sha256": (outcome.file_sha256, str.lower),
    }
    verified, xml = outcome.verified, outcome.xml
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
        if outcome.authority_certificate_sha256 is not None:
            actual["authority_certificate_sha256"] = (
                outcome.authority_certificate_sha256,
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


class Command(BaseCommand):
    help = (
        "Decrypt and verify an export file with a competent authority's private key: the GCM tag, the "
        "platform's signature, the XML against the XSD and the manifest. Prints one JSON object."
    )
    # An authority runs this without the platform's database: no system checks, no query.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The export file (<job>.xml.p7m, or renamed e.g. BE.xml.p7m).")
        parser.add_argument(
            "--authority-key", required=True, help="The authority's RSA private key (PEM file)."
        )
        parser.add_argument(
            "--key-password-file", help="A file holding the private key's password (one line)."
        )
        parser.add_argument(
            "--authority-certificate",
            help="The authority's certificate (PEM), to compare its fingerprint with the manifest's; "
            "by default the one in the key file, if any.",
        )
        parser.add_argument(
            "--platform-certificate",
            help="The platform's export-signing certificate (PEM), as published; by default the "
            "platform's own (EXPORT_SIGNING_CERTIFICATE_FILE).",
        )
        parser.add_argument(
            "--manifest",
            help="The manifest (JSON); by default the file's .manifest.json sibling, if there is one.",
        )
        parser.add_argument(
            "--out", help="Write the verified XML here (only when every check passed; mode 0600)."
        )
        parser.add_argument(
            "--json", action="store_true", help="Accepted for uniformity: the output is always JSON."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outcome = _Outcome(file=Path(options["file"]))
        try:
            self._verify(outcome, options)
        except _Refused as refusal:
            outcome.error = " ".join(str(refusal).split())  # one line
        self.stdout.write(json.dumps(outcome.as_json(), sort_keys=True))
        if outcome.error is not None:
            raise CommandError(outcome.error)

    def _verify(self, outcome: _Outcome, options: dict[str, Any]) -> None:
        file = outcome.file
        if not file.is_file():
            _refuse(f"The export file {file} does not exist or is not a file.")
        recipient_key, key_bytes = _authority_key(options)
        authority_certificate = _authority_certificate(options, key_bytes, recipient_key)
        if authority_certificate is not None:
            outcome.authority_certificate_sha256 = certificate_fingerprint(authority_certificate)
        platform_certificate = _platform_certificate(options.get("platform_certificate"))
        outcome.platform_certificate_sha256 = certificate_fingerprint(platform_certificate)
        manifest = _manifest_load(outcome, options.get("manifest"))
        out = Path(options["out"]) if options.get("out") else None
        if out is not None:
            if not out.parent.is_dir():
                _refuse(f"The folder of --out ({out.parent}) does not exist.")
            if out.exists() and out.resolve() == file.resolve():
                _refuse("--out names the export file itself.")

        crypto_error: str | None = None
        with _output_file(out) as (output, publish):
            xml = outcome.xml = _XmlCheck(output)
            try:
                with file.open("rb") as handle:
                    source = _HashingReader(handle)
                    try:
                        outcome.verified = export_file_read(
                            source,
                            xml,
                            recipient_key=recipient_key,
                            expected_signer=platform_certificate,
                        )
                    except ExportFileError as error:
                        crypto_error = str(error)
                    except Exception as error:  # the reader's own defect: no traceback, not its text
                        crypto_error = f"The file could not be read ({type(error).__name__})."
                    source.drain()
                    outcome.file_bytes = source.bytes
                    outcome.file_sha256 = source.hash.hexdigest()
            except OSError as error:
                _refuse(f"The export file {file} cannot be read: {error.strerror}.")
            if outcome.verified is not None:
                xml.finish()
            if manifest is not None:
                outcome.mismatches, outcome.not_compared = manifest_mismatches(manifest, outcome)
            if crypto_error is not None:
                _refuse(crypto_error)
            if xml.output_error is not None:
                _refuse(f"The XML could not be written to {out}: {xml.output_error}.")
            if xml.error is not None:
                _refuse(xml.error)
            if outcome.mismatches:
                _refuse(
                    f"The file does not match its manifest ({outcome.manifest_path}): "
                    + "; ".join(outcome.mismatches)
                    + "."
                )
            if out is not None:
                publish()
                outcome.out = out


def _refuse(message: str) -> NoReturn:
    raise _Refused(message)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        _refuse(f"{what} ({path}) cannot be read: {error.strerror}.")


def _authority_key(options: dict[str, Any]) -> tuple[rsa.RSAPrivateKey, bytes]:
    key_bytes = _read(options["authority_key"], "The authority key")
    password = None
    if options.get("key_password_file"):
        password = _read(options["key_password_file"], "The key password file").rstrip(b"\r\n")
    try:
        return private_key_load(key_bytes, password), key_bytes
    except CertificateError as error:
        _refuse(f"The authority key ({options['authority_key']}) cannot be used: {error}")


def _public_der(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _authority_certificate(
    options: dict[str, Any], key_bytes: bytes, recipient_key: rsa.RSAPrivateKey
) -> x509.Certificate | None:
    """The authority's certificate, when given (or kept in the key file): it must belong to the key."""
    path = options.get("authority_certificate")
    if path:
        data = _read(path, "The authority certificate")
    elif _PEM_CERTIFICATE in key_bytes:
        path, data = options["authority_key"], key_bytes
    else:
        return None
    try:
        certificate = certificate_load(data)
        public_key = certificate.public_key()
    except (CertificateError, ValueError) as error:
        _refuse(f"The authority certificate ({path}) cannot be used: {error}")
    if not isinstance(public_key, rsa.RSAPublicKey) or _public_der(public_key) != _public_der(
        recipient_key.public_key()
    ):
        _refuse(f"The authority certificate ({path}) does not belong to the authority key.")
    return certificate


def _platform_certificate(path: str | None) -> x509.Certificate:
    if path:
        try:
            return certificate_load(_read(path, "The platform certificate"))
        except CertificateError as error:
            _refuse(f"The platform certificate ({path}) cannot be used: {error}")
    try:  # the platform's own certificate, from the files the settings name (no database)
        return platform_signing_identity().certificate
    except ExportRefusedError as error:
        _refuse(f"{error} Pass the published certificate with --platform-certificate.")


def _manifest_load(outcome: _Outcome, given: str | None) -> dict[str, Any] | None:
    """The manifest, if there is one: a missing one is an error only when it was named."""
    if given:
        path = Path(given)
    else:
        found = [candidate for candidate in default_manifest_paths(outcome.file) if candidate.is_file()]
        if not found:
            looked = " or ".join(str(p) for p in default_manifest_paths(outcome.file))
            outcome.manifest_note = f"No manifest found (looked for {looked}); nothing compared with one."
            return None
        path = found[0]
    try:
        manifest = json.loads(path.read_bytes())
    except OSError as error:
        _refuse(f"The manifest ({path}) cannot be read: {error.strerror}.")
    except ValueError:
        _refuse(f"The manifest ({path}) is not JSON.")
    if not isinstance(manifest, dict):
        _refuse(f"The manifest ({path}) is not a JSON object.")
    outcome.manifest_path = path
    return manifest


@contextlib.contextmanager
def _output_file(out: Path | None) -> Iterator[tuple[BinaryIO | None, Any]]:
    """(a writable file or None, publish): a private temporary file next to `out` (mkstemp: mode 0600)
    that publish() renames to `out`; deleted when the block ends unpublished, whatever the reason."""
    if out is None:
        yield None, lambda: None
        return
    try:
        descriptor, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=_PARTIAL_SUFFIX)
    except OSError as error:
        _refuse(f"No file can be created in the folder of --out ({out.parent}): {error.strerror}.")
    partial = Path(name)
    published = False
    handle = os.fdopen(descriptor, "wb")

    def publish() -> None:
        nonlocal published
        try:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.replace(partial, out)
        except OSError as error:
            _refuse(f"The verified XML could not be written to {out}: {error.strerror}.")
        published = True

    try:
        yield handle, publish
    finally:
        if not published:
            handle.close()
            partial.unlink(missing_ok=True)

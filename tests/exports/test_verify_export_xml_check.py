"""verify_export on files that are signed and encrypted correctly but whose XML is not valid for the
schema: it fails naming the check, never quoting a value; duplicate statements fail the schema's
uniqueness check; and the streaming validation leaves out exactly the constraints checked in Python
(exports/verification/xml_check.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from eci_crypto.certificates import certificate_load
from eci_crypto.cms.writer import ExportFileWriter
from exports.format import SCHEMA_PATH, export_schema
from exports.services import platform_signing_identity
from exports.verification.xml_check import IDENTITY_CONSTRAINTS, streaming_schema
from tests.exports.conftest import AuthorityKeys, Factory, Verify
from tests.exports.verifying import deliver, key_arguments, leftovers


# Signed and encrypted correctly, but not valid XML for the schema: written by hand with the platform's
# identity. SECRET stands for personal data, which no message may quote.
def _signed_xml(xml: bytes, keys: AuthorityKeys, path: Path) -> None:
    with path.open("wb") as output:
        writer = ExportFileWriter(output, platform_signing_identity(), certificate_load(keys.certificate_pem))
        writer.write(xml)
        writer.close()


def _repeated_first(pattern: bytes, xml: bytes) -> bytes:
    """The XML with the first match of pattern written twice in a row."""
    match = re.search(pattern, xml, flags=re.DOTALL)
    assert match is not None
    return xml[: match.end()] + match.group(0) + xml[match.end() :]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda xml: xml.replace(b"</supportForm>", b""), "not well-formed: ERR_TAG_NOT_FINISHED"),
        (lambda xml: xml[: xml.index(b"<signature>") + 200], "not well-formed"),
        (lambda xml: xml.replace(b"<signatures>", b"<signatures><unknown/>"), "at element unknown"),
        (
            lambda xml: re.sub(
                rb"<value>[^<]*</value>", b"<value>  </value>", xml, count=1
            ),  # a blank value: the pattern quotes it
            "SCHEMAV_CVC_PATTERN_VALID at element value",
        ),
        (
            lambda xml: re.sub(
                rb"<signatureIdentifier>[^<]*<", b"<signatureIdentifier>SECRET-NAME<", xml, count=1
            ),
            "at element signatureIdentifier",
        ),
        (lambda xml: xml.replace(b"<forCountry>DE<", b"<forCountry>SECRET<"), "at element forCountry"),
        (lambda xml: _repeated_first(rb"<property>.*?</property>", xml), "(onePropertyPerKey)"),
        (lambda xml: _repeated_first(rb"<group>.*?</group>", xml), "(oneGroupPerName)"),
    ],
    ids=[
        "unclosed",
        "truncated",
        "unknown-element",
        "blank-value",
        "bad-identifier",
        "bad-country",
        "repeated-key",
        "repeated-group",
    ],
)
def test_signed_xml_that_is_not_valid_fails_without_quoting_values(
    exporting_factory: Factory,
    authority_keys: AuthorityKeys,
    tmp_path: Path,
    verify: Verify,
    change: Callable[[bytes], bytes],
    expected: str,
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    xml = change(delivered.xml.replace(b"Zo\xc3\xab \xc3\x98rsted", b"SECRET"))  # the contact person
    assert xml != delivered.xml and b"SECRET" in xml
    file = tmp_path / "DE.xml.p7m"
    _signed_xml(xml, authority_keys, file)
    out = tmp_path / "DE.xml"
    summary, error = verify(file, *key_arguments(authority_keys), "--out", out)
    assert error is not None and expected in error, error
    assert summary["ok"] is False and summary["xsd_valid"] is False
    assert "SECRET" not in json.dumps(summary) and "SECRET" not in error
    assert not out.exists() and leftovers(tmp_path) == []


def test_duplicate_statements_fail_the_schemas_uniqueness_check(
    exporting_factory: Factory, authority_keys: AuthorityKeys, tmp_path: Path, verify: Verify
) -> None:
    delivered = deliver(exporting_factory, authority_keys, tmp_path / "received")
    start = delivered.xml.index(b"<signature>")
    end = delivered.xml.index(b"</signature>") + len(b"</signature>\n")
    xml = delivered.xml[:end] + delivered.xml[start:end] + delivered.xml[end:]
    file = tmp_path / "DE.xml.p7m"
    _signed_xml(xml, authority_keys, file)
    summary, error = verify(file, *key_arguments(authority_keys))
    assert error is not None and "SCHEMAV_CVC_IDC (oneSignaturePerIdentifier)" in error
    assert "after 1 complete signature(s)" in error  # the copy of the first comes second
    assert summary["xsd_valid"] is False


def test_the_streaming_validation_leaves_out_exactly_the_constraints_checked_in_python() -> None:
    """libxml2 holds every identity constraint's table to the end (memory grows with the statements), so
    the command checks them itself: a new or renamed constraint in the XSD must be added there."""
    document = etree.parse(str(SCHEMA_PATH))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    assert not list(document.iter(f"{xs}key", f"{xs}keyref"))
    assert {element.get("name") for element in document.iter(f"{xs}unique")} == IDENTITY_CONSTRAINTS
    assert streaming_schema() is not export_schema()

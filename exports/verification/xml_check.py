"""The XML check of the verification: the decrypted XML, as it streams out of the export file, validated
against the published XSD (exports/schema/export-v1.xsd) by an lxml pull parser, its signatures counted, and
the XSD's identity constraints checked in Python (see IDENTITY_CONSTRAINTS). Messages name positions,
element names and counts, never a value from the file.
"""

from __future__ import annotations

import functools
import re
from typing import BinaryIO

from lxml import etree

from exports.format import SCHEMA_PATH, export_schema

# The elements the check looks at; the others are validated by libxml2 but raise no Python event.
_ROOT = "supportForm"
_WATCHED = (_ROOT, "forCountry", "registrationNumber", "signature")
# Element names only (never a value) are quoted from libxml2's messages, and only when they look like one.
_ELEMENT_IN_MESSAGE = re.compile(r"Element '([A-Za-z_][A-Za-z0-9_.-]{0,63})'")
_ERROR_NAMES: dict[int, str] = {
    value: name for name, value in vars(etree.ErrorTypes).items() if isinstance(value, int)
}

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
    """The published XSD without the identity constraints XmlCheck checks itself; the whole XSD if
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


class XmlCheck:
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

"""BER and DER framing of the export files, written and read by hand where asn1crypto cannot help: it
encodes and parses whole values only, whereas an export file is written before the length of its content is
known (indefinite lengths, X.690 8.1.3.6) and read as a stream of any size.

Writing: the indefinite-length headers, the end-of-contents octets and the header of each content chunk.
Reading: BerReader, one element header or bounded value at a time. The small structures inside (recipient
and signer information, algorithm identifiers) are still encoded and decoded by asn1crypto.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import core

# The reader's bounds: how much it reads at a time, and the most it holds of one small structure.
READ_SIZE = 256 * 1024
STRUCTURE_LIMIT = 1024 * 1024
NESTING_LIMIT = 32

# BER framing written by hand: asn1crypto encodes whole values only, and these headers go out before the
# length of what follows is known (X.690 8.1.3.6: length octet 0x80, closed by two zero octets).
INDEFINITE_SEQUENCE = b"\x30\x80"
INDEFINITE_CONTEXT_0 = b"\xa0\x80"  # [0] EXPLICIT content, and the [0] IMPLICIT encryptedContent
INDEFINITE_OCTET_STRING = b"\x24\x80"  # constructed OCTET STRING: a series of primitive OCTET STRINGs
END_OF_CONTENTS = b"\x00\x00"

# Identifier octets read back: the class and constructed bits (the top three), with the tag number.
UNIVERSAL = 0x00
UNIVERSAL_CONSTRUCTED = 0x20
CONTEXT = 0x80
CONTEXT_CONSTRUCTED = 0xA0
TAG_INTEGER = 2
TAG_OCTET_STRING = 4
TAG_OID = 6
TAG_SEQUENCE = 16
TAG_SET = 17


class BinarySink(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class BinarySource(Protocol):
    def read(self, size: int, /) -> bytes: ...


# Chunk headers by hand: an asn1crypto object per chunk would cost more than hashing and encrypting it.
def der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def octet_string_header(length: int) -> bytes:
    return b"\x04" + der_length(length)


def write_all(output: BinarySink, data: bytes) -> None:
    """Writes everything, also to raw files whose write() may take only part of it."""
    written = output.write(data)
    if written is None or written >= len(data):
        return
    view = memoryview(data)[written:]
    while view:
        written = output.write(view.tobytes()) or 0
        view = view[written:]


# Reading ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    form: int  # the class and constructed bits of the identifier octet
    number: int
    length: int | None  # None: indefinite
    raw: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.form & 0x20)

    def is_(self, form: int, number: int) -> bool:
        return self.form == form and self.number == number


class BerReader:
    """Reads BER from a stream, one element header or bounded value at a time, keeping track of the
    position so that definite-length containers can end, and never holding more than one read ahead.
    Hand-written because asn1crypto parses whole values only; it still decodes the small structures."""

    def __init__(self, read_some: Callable[[], bytes], what: str, error_type: type[Exception]) -> None:
        self._read_some = read_some  # returns any amount, b"" at the end
        self._what = what  # how messages name the stream, e.g. "The file"
        self._error_type = error_type  # what error() makes: the reader's own exception class
        self._buffer = b""
        self._offset = 0
        self.position = 0

    def error(self, problem: str) -> Exception:
        """The exception to raise for malformed input, saying what and where (never the bytes)."""
        return self._error_type(
            f"{self._what} is not a valid export file: {problem} (at byte {self.position})."
        )

    def _fill(self, size: int) -> bool:
        while len(self._buffer) - self._offset < size:
            more = self._read_some()
            if not more:
                return False
            self._buffer = self._buffer[self._offset :] + more
            self._offset = 0
        return True

    def _take(self, size: int) -> bytes:
        data = self._buffer[self._offset : self._offset + size]
        self._offset += size
        self.position += size
        return data

    def read_exact(self, size: int) -> bytes:
        if not self._fill(size):
            raise self.error("it ends too early")
        return self._take(size)

    def read_some(self, limit: int) -> bytes:
        """Between 1 and limit bytes: what is buffered, else one read of the source."""
        if not self._fill(1):
            raise self.error("it ends too early")
        return self._take(min(limit, len(self._buffer) - self._offset))

    def peek_identifier(self) -> int | None:
        if not self._fill(1):
            return None
        return self._buffer[self._offset]

    def at_end(self, end: int | None) -> bool:
        """Whether the container ending at `end` (None: indefinite length) has no more elements."""
        if end is not None:
            if self.position > end:
                raise self.error("an element overruns its container")
            return self.position == end
        if not self._fill(2):
            raise self.error("it ends too early")
        return self._buffer[self._offset : self._offset + 2] == END_OF_CONTENTS

    def leave(self, end: int | None) -> None:
        if not self.at_end(end):
            raise self.error("unexpected data at the end of a structure")
        if end is None:
            self._take(2)

    def at_eof(self) -> bool:
        return not self._fill(1)

    def header(self) -> Header:
        identifier = self.read_exact(1)
        raw = [identifier]
        number = identifier[0] & 0x1F
        if number == 0x1F:  # high tag number form: base-128 octets
            number = 0
            while True:
                octet = self.read_exact(1)
                raw.append(octet)
                number = (number << 7) | (octet[0] & 0x7F)
                if not octet[0] & 0x80:
                    break
                if number > 0xFFFF:
                    raise self.error("a tag number is too large")
        length_octet = self.read_exact(1)
        raw.append(length_octet)
        length: int | None = length_octet[0]
        if length_octet[0] == 0x80:
            if not identifier[0] & 0x20:
                raise self.error("a primitive element has an indefinite length")
            length = None
        elif length_octet[0] > 0x80:
            count = length_octet[0] & 0x7F
            if count > 8:
                raise self.error("a length is too large")
            length_octets = self.read_exact(count)
            raw.append(length_octets)
            length = int.from_bytes(length_octets, "big")
        return Header(form=identifier[0] & 0xE0, number=number, length=length, raw=b"".join(raw))

    def expect(self, form: int, number: int, name: str) -> Header:
        header = self.header()
        if not header.is_(form, number):
            raise self.error(f"{name} expected")
        return header

    def enter(self, form: int, number: int, name: str) -> int | None:
        """Reads a constructed element's header; returns where it ends (None: at its end-of-contents)."""
        header = self.expect(form, number, name)
        return None if header.length is None else self.position + header.length

    def value(self, header: Header, limit: int = STRUCTURE_LIMIT) -> bytes:
        """The contents of a definite-length element of at most limit bytes."""
        if header.length is None:
            raise self.error("a definite length expected")
        if header.length > limit:
            raise self.error("an element is too large")
        return self.read_exact(header.length)

    def oid(self, name: str) -> str:
        header = self.expect(UNIVERSAL, TAG_OID, name)
        return str(core.ObjectIdentifier.load(header.raw + self.value(header, 256)).dotted)

    def integer(self, name: str) -> int:
        header = self.expect(UNIVERSAL, TAG_INTEGER, name)
        return int(core.Integer.load(header.raw + self.value(header, 64)).native)

    def element(self, limit: int = STRUCTURE_LIMIT, depth: int = 0) -> bytes:
        """A whole small element as encoded, also with indefinite lengths inside (asn1crypto reads those)."""
        start = self.position
        header = self.header()
        if header.length is not None:
            return header.raw + self.value(header, limit)
        if depth > NESTING_LIMIT:
            raise self.error("elements are nested too deeply")
        parts = [header.raw]
        while not self.at_end(None):
            parts.append(self.element(limit - (self.position - start), depth + 1))
        parts.append(self.read_exact(2))
        return b"".join(parts)

    def octets(self, header: Header, depth: int = 0) -> Iterator[bytes]:
        """The contents of an OCTET STRING (or of an implicitly tagged one), primitive or constructed, in
        pieces of at most READ_SIZE bytes."""
        if not header.constructed:
            remaining = header.length or 0  # primitive: always definite
            while remaining:
                piece = self.read_some(min(remaining, READ_SIZE))
                remaining -= len(piece)
                yield piece
            return
        if depth > NESTING_LIMIT:
            raise self.error("strings are nested too deeply")
        end = None if header.length is None else self.position + header.length
        while not self.at_end(end):
            child = self.header()
            if child.number != TAG_OCTET_STRING or child.form & 0xC0 != UNIVERSAL:
                raise self.error("an OCTET STRING expected")
            yield from self.octets(child, depth + 1)
        self.leave(end)

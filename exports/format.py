"""What the export writer and the verification agree on: the names of an export file and its manifest, the
manifest's format, and the published XSD of the XML inside (regulation/export_format.md).

Free of Django and of the other apps: exports.verification (the authorities' settings-free check) imports it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

# <job>.xml.p7m in the storage, <CC>.xml.p7m as downloaded; the manifest next to it.
FILE_SUFFIX = ".xml.p7m"
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = "eci-export-manifest"
MANIFEST_VERSION = 1

SCHEMA_PATH = Path(__file__).with_name("schema") / "export-v1.xsd"
SCHEMA_VERSION = 1


@cache
def export_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))

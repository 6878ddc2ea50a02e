"""docs/security.md names tests as evidence (REQ-22, REQ-23): each one it names must exist, and each file
path it cites must be in the repository, so the checklist cannot quietly point at nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from eci_platform.embedded import REPOSITORY_ROOT

DOCUMENT = REPOSITORY_ROOT / "docs" / "security.md"
# `tests/x/test_y.py::test_z`, and the continuation form `, ::test_w` that reuses the file before it.
TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(\w+)`")
FILE_REFERENCE = re.compile(
    r"`((?:tenants|collection|exports|eci_platform|eci_crypto|workers|regulation)/[\w/.]+)"
)


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_the_security_page_names_exists() -> None:
    text = DOCUMENT.read_text()
    cited = []
    for line in text.splitlines():
        current: str | None = None
        for match in TEST_REFERENCE.finditer(line):
            current = match.group(1) or current
            assert current, f"a ::test without its file: {line}"
            cited.append((current, match.group(2)))
    assert len(cited) > 50
    missing = [
        f"{file}::{name}"
        for file, name in cited
        if not (REPOSITORY_ROOT / file).is_file() or name not in _test_names(REPOSITORY_ROOT / file)
    ]
    assert not missing, missing


def test_every_file_the_security_page_cites_exists() -> None:
    cited = {match.group(1).rstrip(".") for match in FILE_REFERENCE.finditer(DOCUMENT.read_text())}
    assert len(cited) > 20
    missing = sorted(path for path in cited if not (REPOSITORY_ROOT / path).exists())
    assert not missing, missing

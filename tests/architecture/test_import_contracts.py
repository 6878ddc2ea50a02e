"""The import contracts of pyproject.toml hold, and they would catch a wrong-way import: the same check
on a copy of the tree with one such import added fails and names it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = ("eci_platform", "exports", "collection", "tenants", "workers", "regulation", "eci_crypto")
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent))


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS, "import-linter is a development dependency"
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=tree,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_of_the_tree(destination: Path) -> Path:
    for package in PACKAGES:
        if (REPOSITORY / package).is_dir():
            shutil.copytree(
                REPOSITORY / package,
                destination / package,
                ignore=shutil.ignore_patterns("__pycache__", "locale", "static", "templates", "*.csv"),
            )
    shutil.copy(REPOSITORY / "pyproject.toml", destination / "pyproject.toml")
    return destination


def test_the_tree_keeps_its_import_contracts() -> None:
    result = _lint_imports(REPOSITORY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_way_import", "named"),
    [
        ("tenants/models.py", "import collection.models", "tenants is not allowed to import collection"),
        ("collection/services.py", "import exports.services", "collection is not allowed to import exports"),
        ("workers/base.py", "import tenants.models", "workers is not allowed to import tenants"),
        (
            "regulation/periods.py",
            "import django.utils.timezone",
            "regulation is not allowed to import django",
        ),
        ("eci_crypto/certificates.py", "import django.conf", "eci_crypto is not allowed to import django"),
        (
            "exports/verification/verify.py",
            "import exports.models",
            "exports.verification is not allowed to import exports.models",
        ),
        ("exports/format.py", "import tenants.models", "exports.format is not allowed to import tenants"),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(
    tmp_path: Path, module: str, wrong_way_import: str, named: str
) -> None:
    tree = _copy_of_the_tree(tmp_path)
    with (tree / module).open("a") as source:
        source.write(f"\n{wrong_way_import}  # added by the test\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert named in result.stdout, result.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(sorted(edges.get(target, ())))))
            elif target in on_stack:
                low[node] = min(low[node], index[target])
    return groups


def test_no_module_imports_itself_through_others() -> None:
    """No import cycle, not even one held together by imports inside functions (grimp reads those too):
    the cycle of six modules through workers.tasks is gone and stays gone."""
    import grimp

    graph = grimp.build_graph(*[p for p in PACKAGES if (REPOSITORY / p).is_dir()])
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    assert _cycles(edges) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

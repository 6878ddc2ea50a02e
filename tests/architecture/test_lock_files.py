"""The lock files (requirements/runtime.txt, requirements/dev.txt) agree with pyproject.toml's dependencies:
a dependency added, re-bounded or given another extra without `make lock` fails here (deploy/lock.py)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from eci_platform.embedded import REPOSITORY_ROOT


def _lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_lock", REPOSITORY_ROOT / "deploy" / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lock = _lock_module()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(REPOSITORY_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPOSITORY_ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_lock_files_agree_with_pyproject() -> None:
    assert lock.disagreements() == []


def test_every_locked_package_has_hashes() -> None:
    for name in lock.LOCKS:
        lines = (REPOSITORY_ROOT / name).read_text().splitlines()
        entries = [index for index, line in enumerate(lines) if lock.PIN.match(line)]
        assert len(entries) >= len(lock.pins(REPOSITORY_ROOT / name)) > 0
        for index in entries:
            assert lines[index].endswith("\\") and lines[index + 1].strip().startswith("--hash=sha256:"), (
                f"{name}: {lines[index]} has no hashes"
            )


def test_comments_and_order_in_pyproject_do_not_count(project: Path) -> None:
    _edit(
        project / "pyproject.toml",
        '"django>=5.2,<5.3",            # 5.2 is the LTS line',
        '"django <5.3, >=5.2",',
    )
    assert lock.disagreements(project) == []


def test_a_new_dependency_without_make_lock_fails(project: Path) -> None:
    _edit(
        project / "pyproject.toml",
        "dependencies = [\n",
        'dependencies = [\n    "pyjokes>=0.6,<1",\n',
    )
    problems = lock.disagreements(project)
    assert "requirements/runtime.txt does not pin pyjokes" in problems
    assert "requirements/dev.txt does not pin pyjokes" in problems
    assert any("runtime.txt is out of date with pyproject.toml's dependencies" in p for p in problems)


def test_a_bound_the_pin_falls_outside_fails(project: Path) -> None:
    _edit(project / "pyproject.toml", '"python-dateutil>=2.9,<3",', '"python-dateutil>=3,<4",')
    problems = lock.disagreements(project)
    assert any(p.startswith("requirements/runtime.txt pins python-dateutil==2.9") for p in problems), problems


def test_a_new_extra_of_a_locked_package_fails_though_every_pin_still_fits(project: Path) -> None:
    _edit(project / "pyproject.toml", '"celery[redis]>=5.4,<6",', '"celery[redis,sqs]>=5.4,<6",')
    problems = lock.disagreements(project)
    assert problems == [
        "requirements/runtime.txt is out of date with pyproject.toml's dependencies: run `make lock`",
        "requirements/dev.txt is out of date with pyproject.toml's dependencies: run `make lock`",
    ]


def test_a_dev_lock_on_other_versions_than_the_runtime_lock_fails(project: Path) -> None:
    version = lock.pins(project / "requirements" / "runtime.txt")["django"]
    _edit(project / "requirements" / "dev.txt", f"\ndjango=={version} ", "\ndjango==5.2.0 ")
    assert f"requirements/dev.txt has django==5.2.0, runtime.txt {version}" in lock.disagreements(project)


def test_the_check_command_exits_1_and_says_why(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lock.main(["--check"], project) == 0
    (project / "requirements" / "dev.txt").unlink()
    assert lock.main(["--check"], project) == 1
    assert capsys.readouterr().err == "requirements/dev.txt is missing: run `make lock`\n"

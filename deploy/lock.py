"""The lock files: requirements/runtime.txt (what the image and production install), requirements/dev.txt
(runtime + the embedded and dev extras, for `make install` and CI) and requirements/build.txt (the build
backend the image builds the project's wheel with), every package pinned with its hashes.

    python deploy/lock.py            # `make lock`: resolve the three again from pyproject.toml
    python deploy/lock.py --upgrade  # `make lock UPGRADE=1`: the newest releases pyproject.toml allows
    python deploy/lock.py --check    # exit 1 when pyproject.toml's dependencies and the locks disagree

uv resolves (seconds, where pip-tools takes minutes); plain pip installs what it wrote
(`pip install --require-hashes`), so neither the image nor a fresh clone needs uv to install. Pins already in
a lock file are kept unless pyproject.toml rules them out: `make lock` after adding a dependency changes
only what it must. Each file records the digest of the dependency lists it was resolved from, so a change to
pyproject.toml's dependencies that was not followed by `make lock` is caught even where the old pins would
still satisfy it (a new extra, say).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# Each lock file and the extras it holds besides the project's own dependencies; "build" stands for the
# build system's requirements instead.
LOCKS = {
    "requirements/runtime.txt": (),
    "requirements/dev.txt": ("embedded", "dev"),
    "requirements/build.txt": ("build",),
}
DIGEST_LINE = "# pyproject-dependencies-sha256: "
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def _project(root: Path) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]


def requirements(extras: tuple[str, ...], root: Path = ROOT) -> list[Requirement]:
    if extras == ("build",):
        build_system = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]
        return [Requirement(text) for text in build_system["requires"]]
    project = _project(root)
    listed = list(project["dependencies"])
    for extra in extras:
        listed += project["optional-dependencies"][extra]
    return [Requirement(text) for text in listed]


def dependency_digest(extras: tuple[str, ...], root: Path = ROOT) -> str:
    """Of what the resolution depends on: Python's range and the requirements, normalised (comments,
    spacing and order in pyproject.toml do not count)."""
    inputs = {
        "requires-python": _project(root).get("requires-python", ""),
        "requirements": sorted(str(requirement) for requirement in requirements(extras, root)),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def pins(lock: Path) -> dict[str, Version]:
    return {canonicalize_name(name): Version(version) for name, version in PIN.findall(lock.read_text())}


def disagreements(root: Path = ROOT) -> list[str]:
    """What is wrong between pyproject.toml and the two lock files; empty when they agree."""
    problems = []
    for name, extras in LOCKS.items():
        lock = root / name
        if not lock.exists():
            problems.append(f"{name} is missing: run `make lock`")
            continue
        lines = lock.read_text().splitlines()
        recorded = next(
            (line.removeprefix(DIGEST_LINE) for line in lines if line.startswith(DIGEST_LINE)), None
        )
        if recorded != dependency_digest(extras, root):
            problems.append(f"{name} is out of date with pyproject.toml's dependencies: run `make lock`")
        locked = pins(lock)
        for requirement in requirements(extras, root):
            if requirement.marker and not requirement.marker.evaluate({"python_version": "3.11"}):
                continue
            version = locked.get(canonicalize_name(requirement.name))
            if version is None:
                problems.append(f"{name} does not pin {requirement.name}")
            elif not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"{name} pins {requirement.name}=={version}, outside {requirement}")
    runtime, dev = root / "requirements" / "runtime.txt", root / "requirements" / "dev.txt"
    if runtime.exists() and dev.exists():
        dev_pins = pins(dev)
        for package, version in pins(runtime).items():
            if dev_pins.get(package) != version:
                problems.append(
                    f"requirements/dev.txt has {package}=={dev_pins.get(package)}, runtime.txt {version}"
                )
    return problems


def _compile(name: str, constraints: str | None, upgrade: bool) -> None:
    lock, extras = ROOT / name, LOCKS[name]
    source = "-" if extras == ("build",) else "pyproject.toml"  # the build requirements come on stdin
    command = [
        sys.executable, "-m", "uv", "pip", "compile", source,
        "--quiet", "--generate-hashes", "--universal", "--python-version", "3.11",
        "--index-url", "https://pypi.org/simple",
        "--custom-compile-command", "make lock",
        "--output-file", name,
    ]  # fmt: skip
    if source == "pyproject.toml":
        for extra in extras:
            command += ["--extra", extra]
    if constraints:
        command += ["--constraint", constraints]
    if upgrade:
        command += ["--upgrade"]
    stdin = "\n".join(str(requirement) for requirement in requirements(extras)) if source == "-" else None
    subprocess.run(command, cwd=ROOT, check=True, input=stdin, text=True)
    # The digest goes right under uv's header of comment lines (uv rewrites the whole file each time).
    lines = lock.read_text().splitlines(keepends=True)
    header = 0
    while header < len(lines) and lines[header].startswith("#"):
        header += 1
    lines.insert(header, f"{DIGEST_LINE}{dependency_digest(extras)}\n")
    lock.write_text("".join(lines))


def lock(upgrade: bool = False) -> None:
    (ROOT / "requirements").mkdir(exist_ok=True)
    _compile("requirements/runtime.txt", None, upgrade)
    # The dev file is resolved within the runtime pins: tests run on the versions production runs.
    _compile("requirements/dev.txt", "requirements/runtime.txt", upgrade)
    _compile("requirements/build.txt", None, upgrade)


def main(arguments: list[str], root: Path = ROOT) -> int:
    if arguments == ["--check"]:
        problems = disagreements(root)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    if arguments not in ([], ["--upgrade"]):
        print(__doc__, file=sys.stderr)
        return 2
    lock(upgrade=arguments == ["--upgrade"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

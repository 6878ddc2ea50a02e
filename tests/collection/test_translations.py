"""Every text the platform shows exists in all 24 official languages: each catalogue has every message
of the source, translated (not fuzzy), with the same placeholders; and pages come out in the language."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.conf import settings

from eci_platform.embedded import REPOSITORY_ROOT
from tenants.models import Initiative
from tests.conftest import client_for

LOCALE = REPOSITORY_ROOT / "eci_platform" / "locale"
LANGUAGES = sorted(code for code, _name in settings.LANGUAGES if code != "en")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _catalogue(language: str) -> polib.POFile:
    return polib.pofile(str(LOCALE / language / "LC_MESSAGES" / "django.po"))


def test_there_is_a_catalogue_for_each_of_the_23_other_languages() -> None:
    assert len(LANGUAGES) == 23
    assert sorted(path.name for path in LOCALE.iterdir() if path.is_dir()) == LANGUAGES


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_with_its_placeholders(language: str) -> None:
    catalogue = _catalogue(language)
    reference = {entry.msgid for entry in _catalogue("fr")}
    assert {entry.msgid for entry in catalogue} == reference
    for entry in catalogue:
        assert entry.msgstr.strip(), f"{language}: no translation of {entry.msgid!r}"
        assert "fuzzy" not in entry.flags, f"{language}: fuzzy translation of {entry.msgid!r}"
        # A word may be the same in two languages ("Initiative", "Error"); a sentence is not.
        if len(entry.msgid.split()) > 2:
            assert entry.msgstr != entry.msgid, f"{language}: English copy of {entry.msgid!r}"
        assert sorted(PLACEHOLDER.findall(entry.msgstr)) == sorted(PLACEHOLDER.findall(entry.msgid)), (
            f"{language}: placeholders differ in {entry.msgid!r}"
        )


@pytest.mark.skipif(
    not shutil.which("xgettext"),
    reason="GNU gettext is not installed (apt-get install gettext)",
)
def test_the_catalogues_hold_every_message_of_the_source(tmp_path: Path) -> None:
    """makemessages over a copy of the source: any message missing from the catalogues fails here."""
    copy = tmp_path / "source"
    shutil.copytree(
        REPOSITORY_ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv", "node_modules", ".data", ".git", "staticfiles", "tests", "bench", "*.mo", "__pycache__"
        ),
    )
    environment = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": "postgres://x@127.0.0.1:1/x",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "PYTHONPATH": str(copy),
        "ECI_DATA_DIR": str(tmp_path),
    }
    command = [
        sys.executable,
        "manage.py",
        "makemessages",
        "--locale",
        "fr",
        "--no-location",
        "--verbosity",
        "0",
    ]
    subprocess.run(command, cwd=copy, env=environment, check=True, timeout=300)
    extracted = polib.pofile(str(copy / "eci_platform" / "locale" / "fr" / "LC_MESSAGES" / "django.po"))
    assert {entry.msgid for entry in extracted} == {entry.msgid for entry in _catalogue("fr")}, (
        "the catalogues are behind the source: run makemessages for every language and translate"
    )
    assert all(entry.msgstr for entry in extracted if not entry.obsolete)


@pytest.mark.django_db
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_form_comes_out_in_the_chosen_language(alpha: Initiative, language: str) -> None:
    submit = _catalogue(language).find("Submit my support")
    declaration_label = _catalogue(language).find("Family names")
    assert submit is not None and declaration_label is not None
    page = client_for(alpha).get(f"/sign/DE/?lang={language}").content.decode()
    assert submit.msgstr in page and declaration_label.msgstr in page
    assert f'<html lang="{language}">' in page

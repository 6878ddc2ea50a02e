"""Compile the platform's translations (eci_platform/locale/*/LC_MESSAGES/django.po) into the .mo files
Django reads, with polib: no GNU gettext tools are needed to build or deploy.

    python -m eci_platform.translations
"""

from __future__ import annotations

from pathlib import Path

import polib

LOCALE = Path(__file__).with_name("locale")


def compile_all() -> list[Path]:
    written = []
    for source in sorted(LOCALE.glob("*/LC_MESSAGES/django.po")):
        target = source.with_suffix(".mo")
        polib.pofile(str(source)).save_as_mofile(str(target))
        written.append(target)
    return written


if __name__ == "__main__":
    print(f"compiled {len(compile_all())} catalogues")

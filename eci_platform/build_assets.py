"""The image build's step that needs the settings: compile the 24 languages' translations and collect the
static files into STATIC_ROOT, with no secret and no service (the build mode, eci_platform/build_mode.py).

    STATIC_ROOT=/opt/eci/static python -m eci_platform.build_assets
"""

from __future__ import annotations

import os


def main() -> None:
    # Before anything reads the settings: production settings, every secret a placeholder.
    os.environ["ECI_BUILD_MODE"] = "1"
    os.environ["DEBUG"] = "0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "eci_platform.settings"
    from eci_platform.build_mode import assets_build_start
    from eci_platform.translations import compile_all

    print(f"compiled {len(compile_all())} catalogues")
    assets_build_start()
    import django
    from django.core.management import call_command

    django.setup()
    call_command("collectstatic", interactive=False, verbosity=1)


if __name__ == "__main__":
    main()

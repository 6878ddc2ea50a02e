#!/usr/bin/env python
"""Django's command-line entry point for the platform."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eci_platform.settings")
    if sys.argv[1:2] == ["dev"]:
        # The dev runner's embedded PostgreSQL/Redis must run before Django reads the settings naming them.
        from eci_platform.embedded import dev_runner_prepare

        dev_runner_prepare()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

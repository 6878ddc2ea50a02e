"""Migrate the public schema, the template schema new initiatives are cloned from, and every
initiative's schema. Run at each deployment (the Helm chart's migration job) and by `make dev`."""

from __future__ import annotations

from typing import Any

from tenants.management.commands._output import JsonCommand
from tenants.onboarding import platform_migrate


class Command(JsonCommand):
    help = "Migrate public, template and initiative schemas."

    def handle(self, *args: Any, **options: Any) -> None:
        platform_migrate(verbosity=0 if options["json"] else max(0, options["verbosity"] - 1))
        self.emit(options, {"migrated": True}, "Public, template and initiative schemas are migrated.")

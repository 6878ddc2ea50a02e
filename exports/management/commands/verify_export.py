"""verify_export: the verification of an export file (exports/verification/) as a management command, the
same as the console script `eci-verify-export` but for the default platform certificate, which here is the
platform's own (EXPORT_SIGNING_CERTIFICATE_FILE). Needs no database and no Redis: no system checks, no query.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from django.core.management.base import BaseCommand, CommandError, CommandParser

from exports.services import ExportRefusedError, platform_signing_identity
from exports.verification.cli import DESCRIPTION, arguments_add, verify_from_arguments
from exports.verification.report import VerificationRefusedError


def _platform_own_certificate() -> x509.Certificate:
    """The platform's own certificate, from the files the settings name (no database)."""
    try:
        return platform_signing_identity().certificate
    except ExportRefusedError as error:
        raise VerificationRefusedError(
            f"{error} Pass the published certificate with --platform-certificate."
        ) from None


class Command(BaseCommand):
    help = DESCRIPTION
    # An authority runs this without the platform's database: no system checks, no query.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        arguments_add(
            parser, platform_certificate_default="the platform's own (EXPORT_SIGNING_CERTIFICATE_FILE)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_from_arguments(options, platform_certificate_default=_platform_own_certificate)
        self.stdout.write(report.as_json_text())
        if report.error is not None:
            raise CommandError(report.error)

"""`eci-verify-export`: the verification of an export file as a console script, for competent authorities,
with no settings, no database and no Redis. The same arguments and output as `manage.py verify_export`,
which uses the argument definitions below; only the platform's certificate must be named, as there is no
platform configuration to take it from.

    eci-verify-export BE.xml.p7m --authority-key authority.key --platform-certificate platform.crt \\
        --out BE.xml

Prints one JSON object on stdout; exits with 0 when every check passed, 1 when the file was refused (the
reason also on stderr) and 2 for wrong arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography import x509

from exports.verification.report import VerificationReport
from exports.verification.verify import export_file_verify

PROGRAM = "eci-verify-export"
DESCRIPTION = (
    "Decrypt and verify an export file with a competent authority's private key: the GCM tag, the "
    "platform's signature, the XML against the XSD and the manifest. Prints one JSON object."
)
PLATFORM_CERTIFICATE_HELP = "The platform's export-signing certificate (PEM), as published"


def arguments_add(parser: argparse.ArgumentParser, *, platform_certificate_default: str | None) -> None:
    """The arguments of the verification. platform_certificate_default: what the platform certificate
    defaults to, in words for the help; None when there is no default (the argument is then required)."""
    parser.add_argument("file", help="The export file (<job>.xml.p7m, or renamed e.g. BE.xml.p7m).")
    parser.add_argument("--authority-key", required=True, help="The authority's RSA private key (PEM file).")
    parser.add_argument("--key-password-file", help="A file holding the private key's password (one line).")
    parser.add_argument(
        "--authority-certificate",
        help="The authority's certificate (PEM), to compare its fingerprint with the manifest's; "
        "by default the one in the key file, if any.",
    )
    if platform_certificate_default is None:
        parser.add_argument(
            "--platform-certificate",
            required=True,
            help=f"{PLATFORM_CERTIFICATE_HELP} (compare its fingerprint with the published one first).",
        )
    else:
        parser.add_argument(
            "--platform-certificate",
            help=f"{PLATFORM_CERTIFICATE_HELP}; by default {platform_certificate_default}.",
        )
    parser.add_argument(
        "--manifest",
        help="The manifest (JSON); by default the file's .manifest.json sibling, if there is one.",
    )
    parser.add_argument(
        "--out", help="Write the verified XML here (only when every check passed; mode 0600)."
    )
    parser.add_argument(
        "--json", action="store_true", help="Accepted for uniformity: the output is always JSON."
    )


def verify_from_arguments(
    options: Mapping[str, Any],
    *,
    platform_certificate_default: Callable[[], x509.Certificate] | None = None,
) -> VerificationReport:
    """Runs the verification on parsed arguments (argparse's names, as Django passes them too)."""
    return export_file_verify(
        options["file"],
        authority_key=options["authority_key"],
        key_password_file=options.get("key_password_file"),
        authority_certificate=options.get("authority_certificate"),
        platform_certificate=options.get("platform_certificate"),
        manifest=options.get("manifest"),
        out=options.get("out"),
        platform_certificate_default=platform_certificate_default,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=DESCRIPTION)
    arguments_add(parser, platform_certificate_default=None)
    options = vars(parser.parse_args(argv))
    report = verify_from_arguments(options)
    print(report.as_json_text(), flush=True)
    if report.error is not None:
        print(f"{PROGRAM}: {report.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

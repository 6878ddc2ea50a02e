"""A process that signs statements through the normal service until a deadline, then prints how many.
Used by tests and benchmarks that need signing to go on beside them:

    python -m tests.signer INITIATIVE_ID SECONDS COUNTRY DOCUMENT_TYPE FIRST_DIGIT
"""

from __future__ import annotations

import sys
import time

import django


def main() -> None:
    initiative_id, seconds, country, document_type, first_digit = sys.argv[1:6]
    django.setup()
    from collection.services import statement_record
    from tenants.models import Initiative

    initiative = Initiative.objects.get(pk=int(initiative_id))
    deadline = time.monotonic() + float(seconds)
    signed = 0
    with initiative:
        while time.monotonic() < deadline:
            number = f"{first_digit}{signed:09d}"
            statement_record(
                country=country,
                personal_data={
                    "first_names": "Signer",
                    "family_names": number,
                    "document_type": document_type,
                    "document_number": number,
                },
                form_revision="signer",
            )
            signed += 1
    print(signed)


if __name__ == "__main__":
    main()

"""Run as `python -m tests.receipts_check RECEIPTS.json` in the environment of a platform's process (its
DATABASE_URL, REDIS_URL and keys): for every receipt a load generator got, whether the statement is stored
and opens to the personal data that was sent. Prints one JSON object: checked, missing and different
(receipt ids only, never the data).

RECEIPTS.json: {"initiative": slug, "country": CC, "receipts": {statement id: personal data sent}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(receipts_file: str) -> None:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eci_platform.settings")
    django.setup()
    # Imported only now: the models need Django set up.
    from collection.models import Statement
    from collection.sealed import personal_data_decode
    from tenants.keyring.sealing import open_sealed
    from tenants.models import Initiative

    sent = json.loads(Path(receipts_file).read_text())
    initiative = Initiative.objects.get(slug=sent["initiative"])
    missing: list[str] = []
    different: list[str] = []
    with initiative:
        found = Statement.objects.in_bulk(list(sent["receipts"]))
        stored = {str(statement_id): row for statement_id, row in found.items()}
        for statement_id, personal_data in sent["receipts"].items():
            row = stored.get(statement_id)
            if row is None:
                missing.append(statement_id)
                continue
            sealed = bytes(row.sealed_personal_data)
            opened = personal_data_decode(open_sealed(initiative.pk, row.pk, row.country, sealed))
            if opened != personal_data or row.country != sent["country"]:
                different.append(statement_id)
    print(json.dumps({"checked": len(sent["receipts"]), "missing": missing, "different": different}))


if __name__ == "__main__":
    main(sys.argv[1])

"""The e-mail addresses' download as in production: no test transaction around the request (committed
data, autocommit), so the server-side cursor must outlive the view's return while the response streams,
across several fetches. The rest of the download is tested in test_contact_emails.py."""

from __future__ import annotations

import csv
import io

import pytest

from collection.services import statement_record
from regulation.annex_iii import FORM_REVISION
from tenants.db import connection
from tests.exports.conftest import Factory, MakeUser, personal_data_of
from tests.exports.organisers import signed_in

pytestmark = pytest.mark.usefixtures("_quick_password_hashing")


def test_the_stream_outlives_the_view_in_autocommit(
    exporting_factory: Factory, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("collection.selectors.CONTACT_EMAILS_FETCH", 2)
    exporting = exporting_factory({})
    addresses = [f"supporter{number}@example.org" for number in range(5)]
    with exporting.initiative:
        for number, address in enumerate(addresses):
            statement_record(
                country="DE",
                personal_data=personal_data_of("DE", number),
                form_revision=FORM_REVISION,
                contact_email=address,
            )
    client = signed_in(exporting.initiative, make_user(exporting.initiative))
    assert connection.get_autocommit() and not connection.in_atomic_block
    response = client.get("/manage/emails.csv")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["email"] and sorted(row[0] for row in rows[1:]) == addresses

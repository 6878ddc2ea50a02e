"""The organisers' dashboard (/manage/), its CSV files and the audit trail (/manage/audit/): the numbers
are the published ones /api/counts.json serves, against the thresholds in force on the registration date,
in each of the 24 languages; pausing, resuming and closing go through the lifecycle service, change the
public form's answer and are audited; bad input is a 4xx that writes nothing; one initiative's organisers
see nothing of another's."""

from __future__ import annotations

import csv
import datetime
import html
import io
import re
import time
import uuid
from typing import Any

import polib
import pytest
from babel.numbers import format_decimal
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from collection.services import counts_refresh
from eci_platform.embedded import REPOSITORY_ROOT
from regulation.member_states import member_states
from regulation.thresholds import MEMBER_STATES_REQUIRED
from tenants.models import AuditEvent, Initiative, InitiativeState, OrganiserMembership
from tenants.second_factor import VERIFIED_AT_KEY
from tests.collection.test_counts import make_statement, snapshot_write
from tests.conftest import client_for
from tests.exports.conftest import PASSWORD
from tests.exports.organisers import page_text, signed_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_quick_password_hashing")]

DASHBOARD = "/manage/"
AUDIT = "/manage/audit/"
CONTROL = "/manage/collection/"
COUNTS_CSV = "/manage/counts.csv"
DAILY_CSV = "/manage/daily.csv"
LANGUAGES = [code for code, _name in settings.LANGUAGES]
ROW = re.compile(
    r'<tr role="row" id="state-(?P<code>[A-Z]{2})"'
    r' data-count="(?P<count>\d+)" data-threshold="(?P<threshold>\d+)"'
)


def published_for_the_tests(registered_on: datetime.date) -> dict[str, int]:
    """DE over its threshold, FR exactly at it, MT one short and PL far from it."""
    states = member_states()
    return {
        "DE": states["DE"].threshold(registered_on) + 1_000,
        "FR": states["FR"].threshold(registered_on),
        "MT": states["MT"].threshold(registered_on) - 1,
        "PL": 1,
    }


def organiser_of(*initiatives: Initiative) -> User:
    user = get_user_model().objects.create_user(
        username=f"organiser-{uuid.uuid4().hex[:8]}@example.org", password=PASSWORD
    )
    for initiative in initiatives:
        OrganiserMembership.objects.create(user=user, initiative=initiative)
    return user


def msgstr(language: str, msgid: str) -> str:
    if language == "en":
        return msgid
    entry = polib.pofile(
        str(REPOSITORY_ROOT / "eci_platform/locale" / language / "LC_MESSAGES/django.po")
    ).find(msgid)
    assert entry is not None and entry.msgstr, (language, msgid)
    return str(entry.msgstr)


def published_counts(initiative: Initiative) -> dict[str, Any]:
    """What the public /api/counts.json says."""
    response = client_for(initiative).get("/api/counts.json")
    assert response.status_code == 200
    return dict(response.json())


def dashboard_rows(page: str) -> dict[str, tuple[int, int]]:
    return {match["code"]: (int(match["count"]), int(match["threshold"])) for match in ROW.finditer(page)}


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv") and "no-store" in response["Cache-Control"]
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def audit_events(initiative: Initiative, action: str = "initiative.state_changed") -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(initiative=initiative, action=action).order_by("sequence"))


def state_of(initiative: Initiative) -> str:
    initiative.refresh_from_db()
    return str(initiative.state)


@pytest.fixture
def alpha_organiser(alpha: Initiative) -> Client:
    return signed_in(alpha, organiser_of(alpha))


# -- the numbers ---------------------------------------------------------------------------------------------


def test_the_dashboard_shows_the_published_counts_and_thresholds_in_every_language(
    alpha: Initiative, alpha_organiser: Client
) -> None:
    published = published_for_the_tests(alpha.registered_on)
    snapshot_write(alpha, published)
    api = published_counts(alpha)
    expected = {code: (entry["count"], entry["threshold"]) for code, entry in api["countries"].items()}
    reached = sum(1 for count, threshold in expected.values() if count >= threshold)
    assert reached == 2  # DE over, FR exactly at its threshold
    for language in LANGUAGES:
        response = alpha_organiser.get(f"{DASHBOARD}?lang={language}")
        assert response.status_code == 200, language
        assert response["Content-Language"] == language
        page = page_text(response)
        assert f'<html lang="{language}">' in page
        assert dashboard_rows(page) == expected, language
        # The numbers as text, written the language's way, and the goal counted the same.
        for code in published:
            assert format_decimal(expected[code][0], locale=language) in page, (language, code)
            assert format_decimal(expected[code][1], locale=language) in page, (language, code)
        assert f'id="total-meter" min="0" max="1000000" value="{api["total"]}"' in page
        assert f'id="states-meter" min="0" max="{MEMBER_STATES_REQUIRED}" value="{reached}"' in page
        assert format_decimal(api["total"], locale=language) in page
        assert format_decimal(1_000_000, locale=language) in page
        # The page's own words in the language.
        for words in ("Dashboard", "Statements of support per Member State", "Timeline", "Team"):
            assert msgstr(language, words) in page, (language, words)
        assert "<script" not in page


def test_an_initiative_registered_before_the_2024_table_gets_the_older_thresholds(
    alpha: Initiative, alpha_organiser: Client
) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(registered_on=datetime.date(2024, 3, 1))
    states = member_states()
    # A count that meets the 2020 table's threshold of Germany but not the 2024 one.
    old, new = (
        states["DE"].thresholds["threshold_2020_to_2024"],
        states["DE"].thresholds["threshold_from_2024_term"],
    )
    assert old < new
    snapshot_write(alpha, {"DE": old})
    api = published_counts(alpha)
    page = page_text(alpha_organiser.get(f"{DASHBOARD}?lang=de"))
    rows = dashboard_rows(page)
    assert rows == {code: (entry["count"], entry["threshold"]) for code, entry in api["countries"].items()}
    assert {code: threshold for code, (_count, threshold) in rows.items()} == {
        code: state.thresholds["threshold_2020_to_2024"] for code, state in states.items()
    }
    assert rows["DE"] == (old, old)
    assert 'id="states-meter" min="0" max="7" value="1"' in page
    assert "1. Februar 2020" in page  # the table in force from, in German
    counts = {row["member_state"]: row for row in csv_rows(alpha_organiser.get(COUNTS_CSV))}
    assert counts["DE"]["threshold"] == str(old) and counts["DE"]["threshold_reached"] == "yes"

    # Registered under the 2024 table, the same count falls short.
    Initiative.objects.filter(pk=alpha.pk).update(registered_on=datetime.date(2024, 7, 16))
    rows = dashboard_rows(page_text(alpha_organiser.get(DASHBOARD)))
    assert rows["DE"] == (old, new)


def test_the_daily_series_adds_up_to_the_published_count_and_has_a_table(
    alpha: Initiative, alpha_organiser: Client
) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(
        collection_start=timezone.localdate() - datetime.timedelta(days=3)
    )
    alpha.refresh_from_db()
    with alpha:
        for country, days_ago in (("DE", 2), ("DE", 2), ("FR", 1), ("AT", 0)):
            make_statement(country, submitted_ago=datetime.timedelta(days=days_ago))
        counts_refresh()
        make_statement("DE")  # after the count: in neither the counts nor the series yet
    response = alpha_organiser.get(f"{DASHBOARD}?lang=en")
    page = page_text(response)
    today = timezone.localdate()
    daily = csv_rows(alpha_organiser.get(DAILY_CSV))
    assert [(row["day"], int(row["statements"])) for row in daily] == [
        ((today - datetime.timedelta(days=3)).isoformat(), 0),
        ((today - datetime.timedelta(days=2)).isoformat(), 2),
        ((today - datetime.timedelta(days=1)).isoformat(), 1),
        (today.isoformat(), 1),
    ]
    assert sum(int(row["statements"]) for row in daily) == published_counts(alpha)["total"] == 4
    # The chart is SVG drawn by the server, one bar a day, with the numbers as a table too.
    assert page.count("<rect ") == 4
    assert '<svg viewBox="0 0 720 260" role="img" aria-labelledby="daily-title daily-summary"' in page
    for row in daily:
        assert f'<time datetime="{row["day"]}">' in page
    assert "4 statements of support in 4 days" in page
    counts = {
        row["member_state"]: int(row["statements"]) for row in csv_rows(alpha_organiser.get(COUNTS_CSV))
    }
    assert counts == {code: published_counts(alpha)["countries"][code]["count"] for code in member_states()}


def test_the_timeline_and_the_team(alpha: Initiative, alpha_organiser: Client) -> None:
    other = organiser_of(alpha)
    page = page_text(alpha_organiser.get(f"{DASHBOARD}?lang=en"))
    for key in (
        "registered",
        "collection_start",
        "collection_end",
        "exports_due",
        "statements_destroyed",
        "emails_destroyed",
    ):
        assert f'id="timeline-{key}"' in page, key
    end = alpha.collection_end
    assert f'<time datetime="{end.isoformat()}">' in page
    assert other.username in page
    assert 'href="/manage/organisers/"' in page and 'href="/manage/audit/"' in page


# -- pausing, resuming, closing -----------------------------------------------------------------------------


def test_pause_resume_and_close_change_the_public_form_and_are_audited(
    alpha: Initiative, alpha_organiser: Client
) -> None:
    public = client_for(alpha)
    assert public.get("/sign/DE/?lang=en").status_code == 200
    before = len(audit_events(alpha))

    response = alpha_organiser.post(CONTROL, {"action": "pause", "reason": "Checking a suspicious wave"})
    assert (response.status_code, response["Location"]) == (303, DASHBOARD)
    assert state_of(alpha) == InitiativeState.PAUSED
    assert public.get("/sign/DE/?lang=en").status_code == 410
    assert "Collection is paused." in page_text(alpha_organiser.get(f"{DASHBOARD}?lang=en"))

    assert alpha_organiser.post(CONTROL, {"action": "resume", "reason": "All clear"}).status_code == 303
    assert state_of(alpha) == InitiativeState.COLLECTING
    assert public.get("/sign/DE/?lang=en").status_code == 200

    response = alpha_organiser.post(CONTROL, {"action": "close", "reason": "Goal met", "confirm": "on"})
    assert response.status_code == 303
    assert state_of(alpha) == InitiativeState.CLOSED
    assert alpha.closed_on == timezone.localdate()
    assert public.get("/sign/DE/?lang=en").status_code == 410

    events = audit_events(alpha)[before:]
    assert [(e.details["from_state"], e.details["to_state"], e.details["reason"]) for e in events] == [
        ("collecting", "paused", "Checking a suspicious wave"),
        ("paused", "collecting", "All clear"),
        ("collecting", "closed", "Goal met"),
    ]
    organiser = alpha_organiser.session["_auth_user_id"]
    assert {e.actor for e in events} == {get_user_model().objects.get(pk=organiser).get_username()}
    # In the audit trail, filtered by action, newest first.
    page = page_text(alpha_organiser.get(f"{AUDIT}?action=initiative.state_changed&lang=en"))
    assert page.index("Goal met") < page.index("All clear") < page.index("Checking a suspicious wave")
    assert "Events found: " in page
    # Closed: the dashboard offers no control any more, and the export deadline is counted from today.
    page = page_text(alpha_organiser.get(DASHBOARD))
    assert 'id="control-pause"' not in page and 'id="control-close"' not in page
    assert 'id="timeline-closed_early"' in page


def test_the_dashboard_answers_in_the_chosen_language_after_a_change(
    alpha: Initiative, alpha_organiser: Client
) -> None:
    alpha_organiser.get(f"{DASHBOARD}?lang=fr")  # remembered for the session
    response = alpha_organiser.post(CONTROL, {"action": "pause", "reason": "Pause"}, follow=True)
    assert msgstr("fr", "Collection is paused.") in page_text(response)
    assert '<html lang="fr">' in page_text(response)


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"action": "pause", "reason": ""}, 400, "Give a reason."),
        ({"action": "pause", "reason": "   "}, 400, "Give a reason."),
        ({"action": "pause"}, 400, "Give a reason."),
        ({"action": "pause", "reason": "x" * 501}, 400, "At most 500 characters."),
        ({"action": "close", "reason": "Goal met"}, 400, "Confirm that closing cannot be undone."),
        ({"action": "destroy", "reason": "Why not"}, 400, "Select a valid choice."),
        ({"reason": "No action"}, 400, "This field is required."),
        ({"action": "resume", "reason": "Not paused"}, 409, "Collection cannot be resumed now"),
    ],
)
def test_bad_collection_changes_are_refused_and_write_nothing(
    alpha: Initiative, alpha_organiser: Client, data: dict[str, str], status: int, message: str
) -> None:
    before = AuditEvent.objects.count()
    response = alpha_organiser.post(f"{CONTROL}?lang=en", data)
    assert response.status_code == status
    page = page_text(response)
    assert message in page and 'class="error-summary"' in page
    assert state_of(alpha) == InitiativeState.COLLECTING
    assert AuditEvent.objects.count() == before


def test_a_change_the_state_does_not_allow_is_a_409(alpha: Initiative, alpha_organiser: Client) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(state=InitiativeState.READY)
    before = AuditEvent.objects.count()
    response = alpha_organiser.post(
        f"{CONTROL}?lang=en", {"action": "close", "reason": "Early", "confirm": "on"}
    )
    assert response.status_code == 409
    assert "Collection cannot be closed now" in page_text(response)
    assert state_of(alpha) == InitiativeState.READY and AuditEvent.objects.count() == before
    assert alpha_organiser.get(CONTROL).status_code == 405


def test_a_change_needs_a_recent_second_factor_and_the_csrf_token(alpha: Initiative) -> None:
    user = organiser_of(alpha)
    client = signed_in(alpha, user)
    session = client.session
    session[VERIFIED_AT_KEY] = time.time() - settings.SECOND_FACTOR_REVERIFY_SECONDS - 60
    session.save()
    response = client.post(CONTROL, {"action": "pause", "reason": "Stale"})
    assert response.status_code == 200 and 'name="second_factor_code"' in response.content.decode()
    assert state_of(alpha) == InitiativeState.COLLECTING

    strict = Client(HTTP_HOST=f"alpha.{settings.PLATFORM_DOMAIN}", enforce_csrf_checks=True)
    strict.cookies = signed_in(alpha, user).cookies
    assert strict.post(CONTROL, {"action": "pause", "reason": "No token"}).status_code == 403
    assert state_of(alpha) == InitiativeState.COLLECTING


# -- the audit trail ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("since=yesterday", 400),
        ("until=2026-13-01", 400),
        ("since=2026-05-02&until=2026-05-01", 400),
        ("action=no.such.action", 400),
        ("page=abc", 400),
        ("page=1.5", 400),
        ("page=0", 404),
        ("page=999", 404),
    ],
)
def test_bad_audit_filters_and_pages_are_a_clear_4xx(
    alpha_organiser: Client, query: str, status: int
) -> None:
    response = alpha_organiser.get(f"{AUDIT}?{query}&lang=en")
    assert response.status_code == status
    assert 'class="error-summary"' in page_text(response)
    assert "<table" not in page_text(response)


def test_the_audit_trail_filters_by_day_and_pages(alpha: Initiative, alpha_organiser: Client) -> None:
    for number in range(30):
        alpha_organiser.post(
            CONTROL, {"action": "pause" if number % 2 == 0 else "resume", "reason": f"Round {number}"}
        )
    page = page_text(alpha_organiser.get(f"{AUDIT}?action=initiative.state_changed&lang=en"))
    assert "Round 29" in page and "Round 5" in page and "Round 4" not in page  # 25 a page, newest first
    assert "Page 1 of 2" in page and 'rel="next"' in page
    second = page_text(alpha_organiser.get(f"{AUDIT}?action=initiative.state_changed&page=2"))
    assert "Round 4" in second and "Round 0" in second and "Round 5" not in second and "Page 2 of 2" in second
    tomorrow = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    later = page_text(alpha_organiser.get(f"{AUDIT}?since={tomorrow}&lang=en"))
    assert "Events found: 0" in later and "Round" not in later


# -- one initiative's organisers see nothing of another's ----------------------------------------------------


def test_an_organiser_of_one_initiative_sees_nothing_of_another(alpha: Initiative, beta: Initiative) -> None:
    snapshot_write(alpha, {"DE": 123})
    snapshot_write(beta, {"DE": 777_777, "LU": 4_242})
    with beta:
        make_statement("LU")
    beta_only = organiser_of(beta)
    beta_client = signed_in(beta, beta_only)
    assert beta_client.post(CONTROL, {"action": "pause", "reason": "Beta-only reason"}).status_code == 303

    alpha_client = signed_in(alpha, organiser_of(alpha))
    # A's pages never show B's numbers or events.
    pages = [
        page_text(alpha_client.get(f"{DASHBOARD}?lang=en")),
        page_text(alpha_client.get(AUDIT)),
        alpha_client.get(COUNTS_CSV).content.decode(),
        alpha_client.get(DAILY_CSV).content.decode(),
    ]
    for page in pages:
        assert "777777" not in page and "777,777" not in page and "Beta-only reason" not in page
        assert "4242" not in page and "4,242" not in page and beta_only.username not in page
    assert dashboard_rows(pages[0])["DE"][0] == 123

    # On B's host, A's session gets nothing, and changes nothing.
    on_beta = client_for(beta)
    on_beta.cookies = alpha_client.cookies
    for path in (DASHBOARD, AUDIT, COUNTS_CSV, DAILY_CSV):
        response = on_beta.get(path)
        assert response.status_code == 403, path
        assert "777" not in response.content.decode()
    before = AuditEvent.objects.count()
    assert on_beta.post(CONTROL, {"action": "resume", "reason": "From alpha"}).status_code == 403
    assert state_of(beta) == InitiativeState.PAUSED and AuditEvent.objects.count() == before
    # Nobody signed in: to the sign-in page.
    anonymous = client_for(alpha)
    assert anonymous.get(DASHBOARD)["Location"] == "/manage/login/?next=/manage/"
    assert anonymous.get(COUNTS_CSV).status_code == 302


def test_the_dashboard_shows_only_aggregates(alpha: Initiative, alpha_organiser: Client) -> None:
    """No statement's data and no signatory's e-mail address reach the dashboard, its CSV or the trail."""
    with alpha:
        statement = make_statement("DE")
        counts_refresh()
    responses = [alpha_organiser.get(path) for path in (DASHBOARD, AUDIT, COUNTS_CSV, DAILY_CSV)]
    for response in responses:
        assert str(statement.pk) not in html.unescape(response.content.decode())

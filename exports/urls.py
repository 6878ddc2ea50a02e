"""The organisers' export pages, included under /manage/ on an initiative's site."""

from django.urls import path
from django.views.decorators.cache import never_cache

from exports import account_views, dashboard_views, second_factor_views, submission_views, team_views, views
from exports.access import organiser_required
from exports.downloads import DownloadKind

urlpatterns = [
    # The organisers' home (exports/dashboard_views.py), in the 24 official languages.
    path("", dashboard_views.dashboard_page, name="manage-dashboard"),
    path("collection/", dashboard_views.collection_control, name="manage-collection"),
    path("counts.csv", dashboard_views.counts_csv, name="manage-counts-csv"),
    path("daily.csv", dashboard_views.daily_csv, name="manage-daily-csv"),
    path("audit/", dashboard_views.audit_page, name="manage-audit"),
    path("login/", views.OrganiserLoginView.as_view(), name="manage-login"),
    path("login/code/", second_factor_views.login_code, name="manage-login-code"),
    path("login/enrol/", second_factor_views.login_enrol, name="manage-login-enrol"),
    path("logout/", views.OrganiserLogoutView.as_view(), name="manage-logout"),
    path("exports/", views.exports_page, name="manage-exports"),
    path("emails.csv", views.contact_emails_csv, name="manage-emails-csv"),
    path("exports/<int:job_id>/link/", views.export_link_create, name="manage-export-link"),
    path(
        "exports/<int:job_id>/download/<str:token>/",
        views.export_download,
        {"kind": DownloadKind.FILE.value},
        name="manage-export-download",
    ),
    path(
        "exports/<int:job_id>/manifest/<str:token>/",
        views.export_download,
        {"kind": DownloadKind.MANIFEST.value},
        name="manage-export-manifest",
    ),
    # Organisers and their accounts (exports/team_views.py, exports/account_views.py).
    path("organisers/", team_views.organisers_page, name="manage-organisers"),
    path(
        "organisers/<int:user_id>/remove/", team_views.organiser_remove_page, name="manage-organiser-remove"
    ),
    path("invitation/<str:token>/", account_views.invitation_page, name="manage-invitation"),
    path(
        "password/",
        never_cache(organiser_required(account_views.PasswordChangeView.as_view())),
        name="manage-password",
    ),
    path("password-reset/", account_views.PasswordResetView.as_view(), name="manage-password-reset"),
    path(
        "password-reset/sent/",
        account_views.PasswordResetSentView.as_view(),
        name="manage-password-reset-sent",
    ),
    path(
        "password-reset/complete/",
        account_views.PasswordResetCompleteView.as_view(),
        name="manage-password-reset-complete",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        account_views.PasswordResetConfirmView.as_view(),
        name="manage-password-reset-confirm",
    ),
    # Annex VII (REQ-28): the funding sources the organisers enter, and the submission to print.
    path("funding/", submission_views.funding_page, name="manage-funding"),
    path("submission/", submission_views.submission_page, name="manage-submission"),
    path("submission.json", submission_views.submission_json, name="manage-submission-json"),
]

"""URLs on an initiative's site `<slug>.<PLATFORM_DOMAIN>`."""

from django.urls import include, path

from collection import views

urlpatterns = [
    path("", views.initiative_home, name="initiative-home"),
    path("sign/", views.sign_choose, name="sign-choose"),
    path("sign/<str:country>/", views.sign_form, name="sign-form"),
    path("receipt/<uuid:statement_id>/", views.receipt, name="receipt"),
    path("api/counts.json", views.counts_api, name="counts-api"),
    path("share.png", views.share_image, name="share-image"),
    path("altcha/challenge.json", views.altcha_challenge, name="altcha-challenge"),
    # Organisers: sign-in and exports (the fuller console comes later).
    path("manage/", include("exports.urls")),
]

# Django's own error pages are English with lang="en": ours speak the visitor's language.
handler400 = "eci_platform.error_pages.bad_request"
handler403 = "eci_platform.error_pages.permission_denied"
handler404 = "eci_platform.error_pages.page_not_found"
handler500 = "eci_platform.error_pages.server_error"

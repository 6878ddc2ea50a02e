"""URLs on the platform domain: the operator console."""

from django.urls import path
from django.views.generic import RedirectView

from tenants.admin import operator_site

urlpatterns = [
    path("", RedirectView.as_view(url="/operator/", permanent=False)),
    path("operator/", operator_site.urls),
]

# The same error pages as on the initiatives' sites (in the language the locale middleware chose).
handler400 = "eci_platform.error_pages.bad_request"
handler403 = "eci_platform.error_pages.permission_denied"
handler404 = "eci_platform.error_pages.page_not_found"
handler500 = "eci_platform.error_pages.server_error"

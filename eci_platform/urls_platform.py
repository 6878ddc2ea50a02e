"""URLs on the platform domain: the operator console."""

from django.urls import path
from django.views.generic import RedirectView

from tenants.admin import operator_site

urlpatterns = [
    path("", RedirectView.as_view(url="/operator/", permanent=False)),
    path("operator/", operator_site.urls),
]

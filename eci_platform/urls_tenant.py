"""URLs on an initiative's site `<slug>.<PLATFORM_DOMAIN>`."""

from django.urls import path

from collection import views

urlpatterns = [
    path("", views.initiative_home, name="initiative-home"),
]

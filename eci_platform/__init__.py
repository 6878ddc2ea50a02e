"""The Django project package. Named `eci_platform`, not `platform`: a top-level `platform` package
would hide the standard library module of that name and break Django, Celery and pytest at import."""

from eci_platform.celery import app as celery_app

__all__ = ["celery_app"]

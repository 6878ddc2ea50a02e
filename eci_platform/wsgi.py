"""WSGI entry point (gunicorn, runserver): the signing lane in front of Django's handler (see
eci_platform.signing_lane); tenant state lives on the thread's database connection."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eci_platform.settings")
django_application = get_wsgi_application()

from eci_platform.signing_lane import SigningLaneApplication  # noqa: E402  (needs Django set up)

application = SigningLaneApplication(django_application)

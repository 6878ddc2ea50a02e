"""WSGI entry point (gunicorn): tenant state lives on the thread's database connection."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eci_platform.settings")
application = get_wsgi_application()

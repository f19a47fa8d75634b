"""WSGI entry point, served by gunicorn in production."""

import os

from django.core.wsgi import get_wsgi_application

from flakewatch.sqlite import ensure_sqlite_folder

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flakewatch.settings")
ensure_sqlite_folder()  # gunicorn on the embedded default, without manage.py
application = get_wsgi_application()

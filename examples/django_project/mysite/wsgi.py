"""WSGI entry point of the example project.

    portico --http :8000 --virtualenv target/examples-venv \
        --chdir examples/django_project --module mysite.wsgi:application
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()

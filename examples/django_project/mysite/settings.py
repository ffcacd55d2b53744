"""Settings of the minimal Django project served by Portico.

No database, no templates, no static files: just enough Django to route
requests to views, so the project runs from a fresh checkout.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A fixed key is fine for an example; set DJANGO_SECRET_KEY in production.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "portico-example-not-secret")

DEBUG = False

ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = []

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "mysite.urls"

WSGI_APPLICATION = "mysite.wsgi.application"

DATABASES = {}

USE_TZ = True

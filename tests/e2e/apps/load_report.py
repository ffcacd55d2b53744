"""App-loading test app: answers with JSON describing how and where it was loaded.

Wrapped in wsgiref.validate.validator, so a PEP 3333 violation by the server
becomes an error (500 and a traceback in the log) instead of passing silently.
"""

import json
import os
import platform
import sys
from wsgiref.validate import validator

IMPORT_CWD = os.getcwd()
IMPORT_ENV = {k: v for k, v in os.environ.items() if k.startswith("PORTICO_TEST_")}


def report(environ, start_response):
    body = json.dumps(
        {
            "app": "load_report",
            "module": __name__,
            "file": globals().get("__file__"),
            "import_cwd": IMPORT_CWD,
            "cwd": os.getcwd(),
            "import_env": IMPORT_ENV,
            "env": {k: v for k, v in os.environ.items() if k.startswith("PORTICO_TEST_")},
            "sys_path": sys.path,
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "executable": sys.executable,
            "python_version": platform.python_version(),
        },
        sort_keys=True,
    ).encode("utf-8")
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


application = validator(report)

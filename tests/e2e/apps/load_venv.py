"""App-loading test app that needs a module installed only in a test virtualenv.

The module `portico_venv_only_module` is written by the test into the
site-packages of a venv it makes; without that venv the import fails.
"""

import json
import sys
from wsgiref.validate import validator

import portico_venv_only_module


def report(environ, start_response):
    body = json.dumps(
        {
            "marker": portico_venv_only_module.MARKER,
            "module_file": portico_venv_only_module.__file__,
            "prefix": sys.prefix,
            "exec_prefix": sys.exec_prefix,
        }
    ).encode("utf-8")
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


application = validator(report)

"""App-loading test app that imports one module from each of two --pythonpath dirs.

The modules `portico_pp_first` and `portico_pp_second` are written by the test.
"""

import json
import sys
from wsgiref.validate import validator

import portico_pp_first
import portico_pp_second


def report(environ, start_response):
    body = json.dumps(
        {
            "first": portico_pp_first.MARKER,
            "second": portico_pp_second.MARKER,
            "sys_path": sys.path,
        }
    ).encode("utf-8")
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


application = validator(report)

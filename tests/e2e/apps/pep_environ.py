"""Test app: returns the WSGI environ as JSON (tests/e2e/test_pep3333.py).

{"environ": {key: value for str/bool/int/None values, tuples as lists},
 "types": {key: type name}}.  /errors writes to wsgi.errors first.
"""

import json


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/errors":
        errors = environ["wsgi.errors"]
        errors.write("pep-errors-write-marker\n")
        errors.writelines(["pep-errors-writelines-a\n", "pep-errors-writelines-b\n"])
        errors.flush()
    out, types = {}, {}
    for key, value in environ.items():
        types[key] = type(value).__name__
        if value is None or isinstance(value, (str, bool, int)):
            out[key] = value
        elif isinstance(value, tuple):
            out[key] = list(value)
    body = json.dumps({"environ": out, "types": types}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

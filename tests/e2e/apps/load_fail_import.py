"""App-loading test app that imports a module that does not exist."""

import portico_missing_dependency_xyz  # noqa: F401


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable\n"]

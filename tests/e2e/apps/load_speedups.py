"""Answers with MarkupSafe's C speedups module and an escape done by it."""

import markupsafe._speedups as speedups


def application(environ, start_response):
    body = f"markupsafe._speedups {speedups.__file__} {speedups._escape_inner('<b>')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]

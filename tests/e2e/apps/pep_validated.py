"""Test app wrapped in wsgiref.validate.validator, with every warning an error.

Routes: /hello, /echo (read(CONTENT_LENGTH)), /lines (iterate wsgi.input),
/write (the write() callable), /generator, /empty-204, /errors (wsgi.errors).
Any validator complaint becomes an exception (a 500 and a traceback in the log).
"""

import warnings
from wsgiref.validate import validator

warnings.simplefilter("error")

TEXT = ("Content-Type", "text/plain")


def inner(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        start_response("200 OK", [TEXT, ("Content-Length", "5")])
        return [b"hello"]
    if path == "/echo":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(n)
        start_response("200 OK", [TEXT])
        return [body]
    if path == "/lines":
        lines = [line for line in environ["wsgi.input"]]
        start_response("200 OK", [TEXT])
        return [b"%d:" % len(lines) + b"".join(lines)]
    if path == "/readlines":
        lines = environ["wsgi.input"].readlines()
        start_response("200 OK", [TEXT])
        return [b"%d:" % len(lines) + b"".join(lines)]
    if path == "/write":
        write = start_response("200 OK", [TEXT])
        write(b"written-")
        return [b"returned"]
    if path == "/generator":
        start_response("200 OK", [TEXT])

        def gen():
            yield b"gen-"
            yield b""
            yield b"erator"

        return gen()
    if path == "/empty-204":
        start_response("204 No Content", [])
        return []
    if path == "/errors":
        environ["wsgi.errors"].write("validated-errors-marker\n")
        environ["wsgi.errors"].writelines(["validated-writelines-marker\n"])
        environ["wsgi.errors"].flush()
        start_response("200 OK", [TEXT])
        return [b"logged"]
    start_response("404 Not Found", [TEXT])
    return [b"no route"]


application = validator(inner)
